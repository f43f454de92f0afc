-- The GEMM floor of one InfoVAE epoch: only the matrix products an epoch of
-- the main experiment's InfoVAE needs (54,000 x 2400 in batches of 128;
-- 2400 -> 200 -> 200 -> 200 -> 2 and back), forward and both backward
-- products of every layer except the input gradient of the first, through
-- the same OpenBLAS sgemm, with nothing else. Any implementation of that
-- epoch on this BLAS takes at least this long.
--   lumen bench/infovae_gemm_floor.lua [THREADS]
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
local threads = tonumber(arg[1] or 1)
lm.set_num_threads(threads)
lm.manual_seed(1)
local B, steps = 128, 54000 // 128
local sizes = {2400, 200, 200, 200, 2, 200, 200, 200, 2400}
local W, X, DY = {}, {}, {}
for l = 1, #sizes - 1 do
  W[l] = lm.randn(sizes[l + 1], sizes[l]) * 0.01        -- [out, in], as nn.Linear
  X[l] = lm.randn(B, sizes[l])                         -- the layer's input
  DY[l] = lm.randn(B, sizes[l + 1])                    -- the gradient of its output
end
local function step()
  for l = 1, #W do
    local _ = lm.matmul(X[l], W[l]:t())                -- forward  [B, out]
    local _ = lm.matmul(DY[l]:t(), X[l])               -- dW       [out, in]
    if l > 1 then local _ = lm.matmul(DY[l], W[l]) end -- dX       [B, in]
  end
end
local flop = 0
for l = 1, #W do flop = flop + 2 * B * sizes[l] * sizes[l + 1] * (l > 1 and 3 or 2) end
for _ = 1, 10 do step() end
local best = math.huge
for _ = 1, 3 do
  local t = lm.clock()
  for _ = 1, steps do step() end
  best = math.min(best, lm.clock() - t)
end
print(string.format("lumen, %d thread(s): InfoVAE epoch GEMMs only (%d steps, %.1f GFLOP): %.2f s, %.1f GFLOP/s",
  threads, steps, flop * steps / 1e9, best, flop * steps / 1e9 / best))
