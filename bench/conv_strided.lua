-- The CPU's forward pass of strided convolutions: im2col + GEMM against the
-- direct kernel (core/cpu_conv_direct_fwd.c) where 'auto' takes it, per layer
-- shape (ResNet-18's stride-2 layers at widths 16 and 64), batch 128, best
-- of 5 rounds with the two alternated in each. The results set
-- lm_cpu_conv_direct_forward_applies's rule.
--   lumen bench/conv_strided.lua [threads] [batch]
local lm = require 'lumen'
local F = lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
local batch = tonumber(arg[2]) or 128
lm.manual_seed(1)
local shapes = { -- {channels in, out, input size, kernel, padding}, stride 2
  {16, 32, 32, 3, 1}, {32, 64, 16, 3, 1}, {64, 128, 8, 3, 1},      -- width 16
  {64, 128, 32, 3, 1}, {128, 256, 16, 3, 1}, {256, 512, 8, 3, 1},   -- width 64
  {16, 32, 32, 1, 0}, {64, 128, 32, 1, 0},                           -- downsampling 1x1
}
print(string.format("# %s, %d thread(s), batch %d, stride 2, forward, best of 5, OpenBLAS %s",
  os.date("!%Y-%m-%d %H:%M UTC"), lm.get_num_threads(), batch, lm.blas_info().kernel or "?"))
print(string.format("%-22s %9s %9s %7s %8s", "C -> O @ size, kernel", "gemm ms", "auto ms", "ratio", "GFLOP/s"))
lm.no_grad(function()
  for _, s in ipairs(shapes) do
    local c, o, size, k, pad = table.unpack(s)
    local x, w = lm.randn(batch, c, size, size), lm.randn(o, c, k, k) * (1 / math.sqrt(c * k * k))
    local times = {}
    for round = 1, 7 do
      for _, algo in ipairs{"gemm", "auto"} do
        lm.set_conv_algorithm(algo)
        local t0 = lm.clock()
        F.conv2d(x, w, nil, {stride = 2, padding = pad})
        local t = lm.clock() - t0
        if round > 2 then times[algo] = math.min(times[algo] or math.huge, t) end
      end
    end
    lm.set_conv_algorithm("auto")
    local out = (size + 2 * pad - k) // 2 + 1
    print(string.format("%-22s %9.2f %9.2f %7.2f %8.0f", string.format("%d -> %d @ %d, %dx%d", c, o, size, k, k),
      1e3 * times.gemm, 1e3 * times.auto, times.auto / times.gemm,
      2 * batch * o * c * k * k * out * out / times.auto / 1e9))
  end
end)
