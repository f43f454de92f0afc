-- Integrated gradients (50 Gauss-Legendre steps, black baseline, the
-- predicted class) on the paper's Net1, in samples per second: batches of
-- `batch` samples, each pass holding all 50 path points of every sample
-- (batch x 50 rows). The peer is bench/explain_torch.py (the same
-- computation in PyTorch, at the same thread count).
--   lumen bench/explain.lua [threads] [batch] [repeats]
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))

local threads = tonumber(arg[1]) or lm.get_num_threads()
local batch = tonumber(arg[2]) or 16
local repeats = tonumber(arg[3]) or 10
lm.set_num_threads(threads)
lm.manual_seed(1)

local net = lm.models.net1()
net:evaluate()
local x = lm.rand(batch, 784)
local opts = {steps = 50, rule = "gauss_legendre", batch_size = batch * 50}

lm.explain.integrated_gradients(net, x, opts) -- warm the allocator's cache
collectgarbage()
local best = math.huge
for _ = 1, 3 do
  local t0 = lm.clock()
  for _ = 1, repeats do
    lm.explain.integrated_gradients(net, x, opts)
    collectgarbage("step")
  end
  best = math.min(best, lm.clock() - t0)
end
local _, gap = lm.explain.integrated_gradients(net, x, opts)
print(string.format("lumen integrated gradients, Net1, 50 steps, batch %d, %d thread(s): %.1f samples/s " ..
  "(max |gap| %.2g)", batch, threads, batch * repeats / best, gap:abs():max():item()))
