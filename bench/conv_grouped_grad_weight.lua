-- The CPU's weight gradient of grouped 3x3 convolutions (RegNet's groups
-- of 16 channels, ResNeXt-50's 32 groups): im2col (a product a group)
-- against the direct kernel (core/cpu_conv_direct_gw.c, units within a
-- group) that 'auto' takes for them, each timed as the backward pass of a
-- layer whose input needs no gradient, best of 5 rounds with the two
-- alternated in each. The results set direct_grad_weight's rule for groups
-- (core/cpu_conv.c).
--   lumen bench/conv_grouped_grad_weight.lua [threads] [batch]
local lm = require 'lumen'
local F = lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
local batch = tonumber(arg[2]) or 8
lm.manual_seed(1)
local backward_rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/backward_rounds.lua")
local shapes = { -- {channels, groups, input size, stride}: channels in = out, padding 1
  {64, 4, 56, 1}, {144, 9, 28, 1}, {320, 20, 14, 1}, {784, 49, 7, 1},      -- RegNet-Y-800MF
  {144, 9, 56, 2}, {320, 20, 28, 2}, {784, 49, 14, 2},
  {128, 32, 56, 1}, {256, 32, 28, 1}, {512, 32, 14, 1}, {1024, 32, 7, 1},   -- ResNeXt-50 32x4d
}
print(string.format("# %s, %d thread(s), batch %d, grouped 3x3 padding 1, weight gradient only, best of 5, OpenBLAS %s",
  os.date("!%Y-%m-%d %H:%M UTC"), lm.get_num_threads(), batch, lm.blas_info().kernel or "?"))
print(string.format("%-26s %9s %9s %7s %8s %10s", "C (groups) @ size / stride", "gemm ms", "auto ms", "ratio",
  "GFLOP/s", "max rel"))
for _, s in ipairs(shapes) do
  local c, groups, size, stride = table.unpack(s)
  local x = lm.randn(batch, c, size, size)
  local w = (lm.randn(c, c // groups, 3, 3) * (1 / math.sqrt(9 * c / groups))):requires_grad(true)
  local opts = {padding = 1, stride = stride, groups = groups}
  local out = (size - 1) // stride + 1
  local gy = lm.randn(batch, c, out, out)
  local times, grads = backward_rounds({"gemm", "auto"}, function() return F.conv2d(x, w, nil, opts) end, gy, w)
  local rel = (grads.auto - grads.gemm):abs():max():item() / grads.gemm:abs():max():item()
  print(string.format("%-26s %9.3f %9.3f %7.2f %8.0f %10.2e", string.format("%d (%d) @ %d / %d", c, groups, size,
    stride), 1e3 * times.gemm, 1e3 * times.auto, times.auto / times.gemm,
    2 * batch * c * (c // groups) * 9 * out * out / times.auto / 1e9, rel))
end
