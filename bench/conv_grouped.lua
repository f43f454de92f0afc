-- The CPU's forward pass of grouped 3x3 convolutions (RegNet's groups of 16
-- channels, ResNeXt's of 4 and 8... channels per group as given): im2col +
-- GEMM (a product a group) against the direct kernel
-- (core/cpu_conv_direct_fwd.c, a block a group) that 'auto' takes, best of
-- 5 rounds with the two alternated in each (bench/algorithm_rounds.lua).
-- The results set
-- lm_cpu_conv_direct_forward_applies's rule for groups.
--   lumen bench/conv_grouped.lua [threads] [batch]
local lm = require 'lumen'
local F = lm.nn.functional
local rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/algorithm_rounds.lua")
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
local batch = tonumber(arg[2]) or 8
lm.manual_seed(1)
local shapes = { -- {channels, groups, size, stride}: channels in = out
  {64, 4, 56, 1}, {144, 9, 28, 1}, {320, 20, 14, 1}, {144, 9, 56, 2}, {320, 20, 28, 2}, -- RegNet-Y-800MF
  {128, 32, 56, 1}, {256, 32, 28, 1}, {512, 32, 14, 1},                                -- ResNeXt-50 32x4d
  {64, 2, 32, 1}, {96, 3, 16, 1},                                                       -- 32 outputs a group
  {784, 49, 7, 1}, {784, 49, 14, 2}, {1024, 32, 7, 1}, {512, 32, 4, 1},                 -- 7x7 and 4x4 planes
}
print(string.format("# %s, %d thread(s), batch %d, grouped 3x3 padding 1, forward, best of 5, OpenBLAS %s",
  os.date("!%Y-%m-%d %H:%M UTC"), lm.get_num_threads(), batch, lm.blas_info().kernel or "?"))
print(string.format("%-26s %9s %9s %7s %8s %10s", "C (groups) @ size / stride", "gemm ms", "auto ms", "ratio",
  "GFLOP/s", "max |diff|"))
lm.no_grad(function()
  for _, s in ipairs(shapes) do
    local c, groups, size, stride = table.unpack(s)
    local x, w = lm.randn(batch, c, size, size), lm.randn(c, c // groups, 3, 3) * (1 / math.sqrt(9 * c / groups))
    local opts = {padding = 1, stride = stride, groups = groups}
    local times, out = rounds({"gemm", "auto"}, function() return F.conv2d(x, w, nil, opts) end)
    local o = out.auto:shape()[3]
    print(string.format("%-26s %9.3f %9.3f %7.2f %8.0f %10.2e", string.format("%d (%d) @ %d / %d", c, groups, size,
      stride), 1e3 * times.gemm, 1e3 * times.auto, times.auto / times.gemm,
      2 * batch * c * (c // groups) * 9 * o * o / times.auto / 1e9, (out.gemm - out.auto):abs():max():item()))
  end
end)
