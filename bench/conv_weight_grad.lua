-- The CPU's algorithms for a 3x3 padding-1 convolution's weight gradient,
-- per layer shape (stride 1, and ResNet's stride-2 layers, "/2"): im2col
-- + GEMM, Winograd F(2x2, 3x3) (on planes of up to 8x8, where it applies)
-- and the direct kernel (core/cpu_conv_direct_gw.c), each timed as the
-- backward pass of a layer whose input needs no gradient (so the weights'
-- gradient is all it computes), batch 128, best of 5 rounds with the
-- algorithms alternated in each. The results set direct_grad_weight's rule
-- in core/cpu_conv.c.
--   lumen bench/conv_weight_grad.lua [threads] [batch]
local lm = require 'lumen'
local F = lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
local batch = tonumber(arg[2]) or 128
lm.manual_seed(1)
local shapes = { -- {channels in, out, input size [, stride]}
  {3, 16, 32}, {16, 16, 32}, {16, 32, 16}, {32, 32, 16}, {32, 64, 8}, {64, 64, 8}, {128, 128, 4}, -- ResNet-18 width 16
  {64, 64, 32}, {128, 128, 16}, {256, 256, 8}, {512, 512, 4},                                       -- width 64
  {3, 96, 32}, {96, 96, 32}, {96, 192, 16}, {192, 192, 16}, {192, 192, 8}, {128, 128, 8},          -- Net2, others
  {16, 32, 32, 2}, {32, 64, 16, 2}, {64, 128, 8, 2},                                               -- stride 2, width 16
  {32, 64, 32, 2}, {64, 128, 32, 2}, {128, 256, 16, 2},                                            -- width 32, 64
}
print(string.format("# %s, %d thread(s), batch %d, weight gradient only, best of 5, OpenBLAS %s",
  os.date("!%Y-%m-%d %H:%M UTC"), lm.get_num_threads(), batch, lm.blas_info().kernel or "?"))
print(string.format("%-16s %9s %9s %9s  %-9s %8s %11s", "C -> O @ size", "gemm ms", "winograd", "direct",
  "auto", "GFLOP/s", "max rel"))
for _, s in ipairs(shapes) do
  local c, o, size, stride = s[1], s[2], s[3], s[4] or 1
  local out = (size - 1) // stride + 1
  local x = lm.randn(batch, c, size, size)
  local w = (lm.randn(o, c, 3, 3) * (1 / math.sqrt(9 * c))):requires_grad(true)
  local gy = lm.randn(batch, o, out, out)
  local times, grads = {}, {}
  local function run(algo) -- seconds of one backward pass under algo
    lm.set_conv_algorithm(algo)
    w.grad = nil
    local y = F.conv2d(x, w, nil, {padding = 1, stride = stride})
    local t0 = lm.clock()
    y:backward(gy)
    grads[algo] = w.grad
    return lm.clock() - t0
  end
  -- Winograd's weight gradient runs on planes of up to 8x8 (larger ones go
  -- the direct way under 'winograd' too)
  local algos = size <= 8 and stride == 1 and {"gemm", "winograd", "direct", "auto"} or {"gemm", "direct", "auto"}
  -- two untimed rounds (the first runs take fresh pages for the workspaces),
  -- then five rounds, the algorithms alternated within each: the best of each
  for round = 1, 7 do
    for _, algo in ipairs(algos) do
      local t = run(algo)
      if round > 2 then times[algo] = math.min(times[algo] or math.huge, t) end
    end
  end
  lm.set_conv_algorithm("auto")
  local scale = grads.gemm:abs():max():item()
  local rel = (grads.direct - grads.gemm):abs():max():item() / scale
  if grads.winograd then rel = math.max(rel, (grads.winograd - grads.gemm):abs():max():item() / scale) end
  local fastest = "gemm"
  for _, a in ipairs{"winograd", "direct"} do if times[a] and times[a] < times[fastest] then fastest = a end end
  local label = string.format("%d -> %d @ %d%s", c, o, size, stride == 2 and "/2" or "")
  print(string.format("%-16s %9.2f %9s %9.2f  %-9s %8.0f %11.2e", label,
    1e3 * times.gemm, times.winograd and string.format("%.2f", 1e3 * times.winograd) or "-", 1e3 * times.direct,
    string.format("%.2f%s", 1e3 * times.auto, times.auto <= 1.1 * times[fastest] and "" or "!"),
    2 * batch * o * c * 9 * out * out / times.auto / 1e9, rel))
end
