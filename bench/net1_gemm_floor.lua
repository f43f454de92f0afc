-- The GEMM floor of one Net1 training epoch: only the matrix products an
-- epoch of bench/net1_epoch.lua needs (60,000 MNIST images in batches of 128,
-- the last partial batch included; 784 -> 200 x 12 -> 10), forward and both
-- backward products of every layer except the input gradient of the first,
-- through the same OpenBLAS sgemm, with nothing else. Any implementation of
-- that epoch on this BLAS takes at least this long.
--   lumen bench/net1_gemm_floor.lua [THREADS]
local lm = require 'lumen'
local threads = tonumber(arg[1] or 1)
lm.set_num_threads(threads)
lm.manual_seed(1)
local sizes = {784}
for _ = 1, 12 do sizes[#sizes + 1] = 200 end
sizes[#sizes + 1] = 10
local function operands(B)
  local W, X, DY = {}, {}, {}
  for l = 1, #sizes - 1 do
    W[l] = lm.randn(sizes[l + 1], sizes[l]) * 0.01        -- [out, in], as nn.Linear
    X[l] = lm.randn(B, sizes[l])                         -- the layer's input
    DY[l] = lm.randn(B, sizes[l + 1])                    -- the gradient of its output
  end
  return {W = W, X = X, DY = DY}
end
local full, last = operands(128), operands(60000 % 128)
local function step(o)
  for l = 1, #o.W do
    local _ = lm.matmul(o.X[l], o.W[l]:t())                  -- forward  [B, out]
    local _ = lm.matmul(o.DY[l]:t(), o.X[l])                 -- dW       [out, in]
    if l > 1 then local _ = lm.matmul(o.DY[l], o.W[l]) end   -- dX       [B, in]
  end
end
local steps = 60000 // 128
local flop = 0
for l = 1, #sizes - 1 do flop = flop + 2 * sizes[l] * sizes[l + 1] * (l > 1 and 3 or 2) end
flop = flop * 60000
for _ = 1, 10 do step(full) end
local best = math.huge
for _ = 1, 3 do
  local t = lm.clock()
  for _ = 1, steps do step(full) end
  step(last)
  best = math.min(best, lm.clock() - t)
end
print(string.format(
  "lumen, %d thread(s), OpenBLAS %s: Net1 epoch GEMMs only (%d steps, %.1f GFLOP): %.3f s, %.1f GFLOP/s",
  threads, lm.blas_info().kernel or "?", steps + 1, flop / 1e9, best, flop / 1e9 / best))
