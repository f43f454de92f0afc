-- The CPU's convolution algorithms per layer shape: im2col + GEMM against
-- Winograd F(2x2, 3x3), forward pass, batch 64, best of 5; the shapes of
-- ResNet-18 (CIFAR stem) and Net2. The results set the thresholds of
-- lm_cpu_conv_choice (core/cpu_conv.c).
--   lumen bench/conv_algorithms.lua [threads]
local lm = require 'lumen'
local F = lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
lm.manual_seed(1)
local shapes = { -- {channels in, out, size}
  {3, 64, 32}, {64, 64, 32}, {128, 128, 16}, {256, 256, 8}, {512, 512, 4}, -- ResNet-18, CIFAR stem
  {3, 96, 32}, {96, 96, 32}, {192, 192, 16}, {8, 8, 32}, {16, 16, 32}, {32, 32, 32}, -- Net2, narrow layers
}
local function best(fn)
  fn()
  local t = math.huge
  for _ = 1, 5 do
    local t0 = lm.clock()
    fn()
    t = math.min(t, lm.clock() - t0)
  end
  return t
end
print(string.format("# %s, %d thread(s), batch 64, forward, best of 5, OpenBLAS %s", os.date("!%Y-%m-%d %H:%M UTC"),
  lm.get_num_threads(), lm.blas_info().kernel or "?"))
print(string.format("%-14s %10s %10s %7s %12s", "C -> O @ size", "gemm ms", "winograd", "ratio", "max |diff|"))
for _, s in ipairs(shapes) do
  local c, o, size = s[1], s[2], s[3]
  local x, w = lm.randn(64, c, size, size), lm.randn(o, c, 3, 3) * (1 / math.sqrt(9 * c))
  local out = {}
  local times = {}
  for _, algo in ipairs{"gemm", "winograd"} do
    lm.set_conv_algorithm(algo)
    times[algo] = best(function() out[algo] = F.conv2d(x, w, nil, {padding = 1}) end)
  end
  print(string.format("%-14s %10.2f %10.2f %7.2f %12.2e", string.format("%d -> %d @ %d", c, o, size),
    1000 * times.gemm, 1000 * times.winograd, times.winograd / times.gemm,
    (out.gemm - out.winograd):abs():max():item()))
end
lm.set_conv_algorithm("auto")
