-- The CPU's forward pass of stride-1 3x3 convolutions with few output
-- channels: im2col + GEMM and Winograd F(2x2, 3x3) against the direct
-- kernel (core/cpu_conv_direct_fwd.c) that 'auto' takes for them, per layer
-- shape (DenseNet-121's 128 -> 32 growth layers at each block's size, the
-- narrow layers of small CIFAR networks, and wider ones where 'auto' keeps
-- the others), best of 5 rounds with the three alternated in each
-- (bench/algorithm_rounds.lua). The results set
-- lm_cpu_conv_direct_forward_applies's stride-1 rule.
--   lumen bench/conv_narrow.lua [threads] [batch]
local lm = require 'lumen'
local F = lm.nn.functional
local rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/algorithm_rounds.lua")
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
local batch = tonumber(arg[2]) or 8
lm.manual_seed(1)
local shapes = { -- {channels in, out, size}
  {128, 32, 56}, {128, 32, 28}, {128, 32, 14}, {128, 32, 10}, {128, 32, 8}, -- DenseNet-121 (and smaller planes)
  {32, 32, 56}, {64, 32, 28}, {256, 32, 14}, {128, 24, 14}, {16, 32, 32},
  {3, 16, 32}, {8, 8, 32}, {10, 10, 32}, {16, 16, 32}, {32, 16, 32}, {64, 16, 16}, -- CIFAR-sized narrow layers
  {64, 48, 28}, {128, 64, 14},                                               -- wider: 'auto' keeps Winograd
}
local algorithms = {"gemm", "winograd", "auto"}
print(string.format("# %s, %d thread(s), batch %d, 3x3 stride 1 padding 1, forward, best of 5, OpenBLAS %s",
  os.date("!%Y-%m-%d %H:%M UTC"), lm.get_num_threads(), batch, lm.blas_info().kernel or "?"))
print(string.format("%-16s %9s %12s %9s %16s %8s %10s", "C -> O @ size", "gemm ms", "winograd ms", "auto ms",
  "auto / best other", "GFLOP/s", "max |diff|"))
lm.no_grad(function()
  for _, s in ipairs(shapes) do
    local c, o, size = table.unpack(s)
    local x, w = lm.randn(batch, c, size, size), lm.randn(o, c, 3, 3) * (1 / math.sqrt(9 * c))
    local times, out = rounds(algorithms, function() return F.conv2d(x, w, nil, {padding = 1}) end)
    print(string.format("%-16s %9.3f %12.3f %9.3f %16.2f %8.0f %10.2e", string.format("%d -> %d @ %d", c, o, size),
      1e3 * times.gemm, 1e3 * times.winograd, 1e3 * times.auto, times.auto / math.min(times.gemm, times.winograd),
      2 * batch * o * c * 9 * size * size / times.auto / 1e9, (out.gemm - out.auto):abs():max():item()))
  end
end)
