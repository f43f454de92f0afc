-- The CPU's input gradient of stride-1 convolutions, per layer shape:
-- im2col (the columns' gradient as one product a group, folded back),
-- Winograd where it applies, and 'auto', which computes it as the forward
-- convolution of the output gradient with the weights transposed and
-- flipped wherever the 1x1 or the direct forward kernel takes that
-- convolution or the layer is grouped (core/cpu_conv.c,
-- grad_input_as_forward). Each timed as the backward pass of a layer whose
-- weights need no gradient (the input's gradient is all it computes), best
-- of 5 rounds with the algorithms alternated in each.
--   lumen bench/conv_grad_input_stride1.lua [threads] [batch]
local lm = require 'lumen'
local F = lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
local batch = tonumber(arg[2]) or 8
lm.manual_seed(1)
local backward_rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/backward_rounds.lua")
local shapes = { -- {channels in, out, groups, size, kernel}, padding (kernel - 1) / 2
  {64, 64, 4, 56, 3}, {144, 144, 9, 28, 3}, {320, 320, 20, 14, 3}, {784, 784, 49, 7, 3},  -- RegNet-Y-800MF
  {128, 128, 32, 56, 3}, {256, 256, 32, 28, 3}, {1024, 1024, 32, 7, 3},                 -- ResNeXt-50 32x4d
  {64, 256, 1, 56, 1}, {256, 64, 1, 56, 1}, {512, 128, 1, 28, 1}, {1024, 256, 1, 14, 1}, -- ResNet-50's 1x1
  {2048, 512, 1, 7, 1}, {144, 320, 1, 28, 1}, {32, 64, 1, 112, 1},
  {16, 16, 1, 32, 3}, {32, 32, 1, 16, 3},                                                -- narrow (CIFAR)
}
print(string.format("# %s, %d thread(s), batch %d, stride 1, input gradient only, best of 5, OpenBLAS %s",
  os.date("!%Y-%m-%d %H:%M UTC"), lm.get_num_threads(), batch, lm.blas_info().kernel or "?"))
print(string.format("%-28s %9s %9s %9s %7s %10s", "C -> O (groups) @ size, k", "gemm ms", "wino ms", "auto ms",
  "ratio", "max rel"))
for _, s in ipairs(shapes) do
  local c, o, groups, size, k = table.unpack(s)
  local pad = (k - 1) // 2
  local x = lm.randn(batch, c, size, size):requires_grad(true)
  local w = lm.randn(o, c // groups, k, k) * (1 / math.sqrt(c // groups * k * k))
  local gy = lm.randn(batch, o, size, size)
  local algorithms = (k == 3 and groups == 1) and {"gemm", "winograd", "auto"} or {"gemm", "auto"}
  local times, grads = backward_rounds(algorithms,
    function() return F.conv2d(x, w, nil, {padding = pad, groups = groups}) end, gy, x)
  local best_other = math.min(times.gemm, times.winograd or math.huge)
  local rel = (grads.auto - grads.gemm):abs():max():item() / grads.gemm:abs():max():item()
  print(string.format("%-28s %9.3f %9s %9.3f %7.2f %10.2e", string.format("%d -> %d (%d) @ %d, %dx%d", c, o, groups,
    size, k, k), 1e3 * times.gemm, times.winograd and string.format("%.3f", 1e3 * times.winograd) or "-",
    1e3 * times.auto, times.auto / best_other, rel))
end
