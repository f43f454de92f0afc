-- Depthwise convolutions on the CPU (MobileNet's 3x3 on 56x56 planes,
-- ConvNeXt's 7x7 on 28x28): one layer's forward pass, and its forward and
-- backward (input, weight and bias gradients) of sum(y * r), milliseconds,
-- best of BENCH_REPS (default 5) after two untimed. The peer is
-- bench/conv_depthwise_torch.py (the same layers); bench/run_conv_depthwise.sh
-- runs both at 1 and 2 threads.
--   lumen bench/conv_depthwise.lua [threads] [auto|gemm]
-- The second argument sets lm.set_conv_algorithm: auto takes the direct
-- depthwise kernel (core/cpu_conv_depthwise.c), gemm im2col with a product
-- a group.
local lm = require 'lumen'
local F = lm.nn.functional
local threads = tonumber(arg[1]) or lm.get_num_threads()
lm.set_conv_algorithm(arg[2] or "auto")
lm.set_num_threads(threads)
lm.manual_seed(1)

local best_ms = dofile((arg[0]:match("^(.*)/") or ".") .. "/best_ms.lua") -- (BENCH_REPS)

-- name, input shape, kernel, stride, padding
local layers = {
  {"depthwise 3x3, x 32x64x56x56", {32, 64, 56, 56}, 3, 1, 1},
  {"depthwise 7x7, x 32x96x28x28", {32, 96, 28, 28}, 7, 1, 3},
  {"depthwise 3x3 stride 2, x 32x64x56x56", {32, 64, 56, 56}, 3, 2, 1},
}
for _, l in ipairs(layers) do
  local name, shape, k, stride, pad = table.unpack(l)
  local c = shape[2]
  local x = lm.randn(shape):requires_grad(true)
  local w = (lm.randn(c, 1, k, k) * 0.1):requires_grad(true)
  local b = lm.randn(c):requires_grad(true)
  local opts = {stride = stride, padding = pad, groups = c}
  local r = lm.randn(F.conv2d(x:detach(), w:detach(), nil, opts):shape())
  local fwd = best_ms(function() lm.no_grad(function() return F.conv2d(x, w, b, opts) end) end)
  local both = best_ms(function()
    x.grad, w.grad, b.grad = nil, nil, nil
    local loss = (F.conv2d(x, w, b, opts) * r):sum()
    loss:backward()
    collectgarbage("step")
  end)
  print(string.format("lumen %s, %d thread(s): forward %.1f ms, forward+backward %.1f ms "
    .. "(OpenBLAS %s, convolutions %s)", name, threads, fwd, both, lm.blas_info().kernel or "?",
    lm.get_conv_algorithm()))
end
