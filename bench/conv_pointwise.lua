-- The CPU's forward pass of 1x1 stride-1 convolutions: im2col + GEMM
-- (OpenBLAS, with the kernel set it runs) against the AVX-512 pointwise
-- kernel (core/cpu_conv_pointwise.c) that 'auto' takes for them, per layer
-- shape (DenseNet-121's bottlenecks, ResNet-50's, MobileNet's and
-- EfficientNet's expansions and projections), best of 5 rounds with the two
-- alternated in each (bench/algorithm_rounds.lua). Run it with OPENBLAS_CORETYPE set to each kernel set
-- to compare (the header says which one ran).
--   lumen bench/conv_pointwise.lua [threads] [batch]
local lm = require 'lumen'
local F = lm.nn.functional
local rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/algorithm_rounds.lua")
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
local batch = tonumber(arg[2]) or 8
lm.manual_seed(1)
local shapes = { -- {channels in, out, size}
  {160, 128, 56}, {320, 128, 28}, {640, 128, 14}, {992, 128, 7},   -- DenseNet-121 dense layers
  {256, 64, 56}, {64, 256, 56}, {512, 128, 28}, {1024, 256, 14}, {2048, 512, 7}, -- ResNet-50
  {16, 96, 112}, {96, 24, 56}, {40, 240, 28}, {1152, 192, 7},     -- MobileNet / EfficientNet
}
local algorithms = {"gemm", "auto"}
print(string.format("# %s, %d thread(s), batch %d, 1x1 stride 1, forward, best of 5, OpenBLAS %s",
  os.date("!%Y-%m-%d %H:%M UTC"), lm.get_num_threads(), batch, lm.blas_info().kernel or "?"))
print(string.format("%-18s %9s %9s %7s %8s %10s", "C -> O @ size", "gemm ms", "auto ms", "ratio", "GFLOP/s",
  "max |diff|"))
lm.no_grad(function()
  for _, s in ipairs(shapes) do
    local c, o, size = table.unpack(s)
    local x, w = lm.randn(batch, c, size, size), lm.randn(o, c, 1, 1) * (1 / math.sqrt(c))
    local times, out = rounds(algorithms, function() return F.conv2d(x, w) end)
    print(string.format("%-18s %9.3f %9.3f %7.2f %8.0f %10.2e", string.format("%d -> %d @ %d", c, o, size),
      1e3 * times.gemm, 1e3 * times.auto, times.auto / times.gemm,
      2 * batch * o * c * size * size / times.auto / 1e9, (out.gemm - out.auto):abs():max():item()))
  end
end)
