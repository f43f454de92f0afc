-- The CPU's input gradient of strided convolutions, per layer shape:
-- im2col (the columns' gradient as one product, folded back) against the
-- direct kernel (core/cpu_conv_direct_gx.c), each timed as the backward
-- pass of a layer whose weights need no gradient (so the input's gradient
-- is all it computes), batch 128, best of 5 rounds with the two alternated
-- in each. The results set lm_cpu_conv_direct_grad_input_applies's rule.
--   lumen bench/conv_grad_input.lua [threads] [batch]
local lm = require 'lumen'
local F = lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
local batch = tonumber(arg[2]) or 128
lm.manual_seed(1)
local backward_rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/backward_rounds.lua")
local shapes = { -- {channels in, out, input size, kernel, padding}, stride 2
  {16, 32, 32, 3, 1}, {32, 64, 16, 3, 1}, {64, 128, 8, 3, 1},      -- ResNet-18 width 16
  {32, 64, 32, 3, 1}, {64, 128, 16, 3, 1},                          -- width 32
  {64, 128, 32, 3, 1}, {128, 256, 16, 3, 1}, {256, 512, 8, 3, 1},   -- width 64
  {16, 32, 32, 1, 0}, {32, 64, 16, 1, 0}, {64, 128, 8, 1, 0},       -- downsampling 1x1
  {64, 128, 32, 1, 0},
}
print(string.format("# %s, %d thread(s), batch %d, stride 2, input gradient only, best of 5, OpenBLAS %s",
  os.date("!%Y-%m-%d %H:%M UTC"), lm.get_num_threads(), batch, lm.blas_info().kernel or "?"))
print(string.format("%-22s %9s %9s %7s %8s %10s", "C -> O @ size, kernel", "gemm ms", "auto ms", "ratio", "GFLOP/s",
  "max rel"))
for _, s in ipairs(shapes) do
  local c, o, size, k, pad = table.unpack(s)
  local x = lm.randn(batch, c, size, size):requires_grad(true)
  local w = lm.randn(o, c, k, k) * (1 / math.sqrt(c * k * k))
  local out = (size + 2 * pad - k) // 2 + 1
  local gy = lm.randn(batch, o, out, out)
  local times, grads = backward_rounds({"gemm", "auto"},
    function() return F.conv2d(x, w, nil, {stride = 2, padding = pad}) end, gy, x)
  local rel = (grads.auto - grads.gemm):abs():max():item() / grads.gemm:abs():max():item()
  print(string.format("%-22s %9.2f %9.2f %7.2f %8.0f %10.2e", string.format("%d -> %d @ %d, %dx%d", c, o, size, k, k),
    1e3 * times.gemm, 1e3 * times.auto, times.auto / times.gemm,
    2 * batch * o * c * k * k * out * out / times.auto / 1e9, rel))
end
