-- A Net1 training epoch on MNIST (batch 128, MSE, Adam, dropout 0.1) and an
-- inference pass over the 10,000 test images, timed.
--   lumen bench/net1_epoch.lua [threads] [epochs]
-- The epoch time is the best of `epochs` (default BENCH_EPOCHS or 3) epochs;
-- BENCH_MAX_STEPS caps the steps of each (short checks only). A last line
-- "json: {...}" repeats the numbers for bench/torch_best.py.
-- Prints seconds, throughput and the GEMM share of the work: Net1 needs
-- 2 x (784x200 + 11 x 200x200 + 200x10) = 1.20 MFLOP per sample forward,
-- about three times that for a training step.
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
local F = lm.nn.functional
local threads = tonumber(arg[1]) or lm.get_num_threads()
local epochs = tonumber(arg[2]) or tonumber(os.getenv("BENCH_EPOCHS") or "") or 3
local max_steps = tonumber(os.getenv("BENCH_MAX_STEPS") or "")
if max_steps == 0 then max_steps = nil end
lm.set_num_threads(threads)
lm.manual_seed(1)

local d = lm.data.mnist()
local net = lm.models.net1()
local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
local loader = lm.data.loader(d.train, {batch_size = 128, seed = 1})
local eye = lm.data.one_hot(lm.arange(1, 10, 'int32'), 10):float()

local function epoch()
  local n = 0
  for x, y in loader:epoch_iter() do
    opt:zero_grad()
    F.mse(net(x), eye:index_select(y)):backward()
    opt:step()
    collectgarbage("step")
    n = n + x:size(1)
    if max_steps and n >= max_steps * 128 then break end
  end
  return n
end

local function inference()
  local correct = 0
  lm.no_grad(function()
    net:evaluate()
    for start = 1, 10000, 1000 do
      local x = d.test.x:narrow(1, start, 1000)
      correct = correct + net(x):argmax(2):eq(d.test.y:narrow(1, start, 1000)):sum():item()
    end
    net:train()
  end)
  return correct
end

-- warm-up: a short pass fills the allocator cache and starts the threads
local warm = lm.data.loader(lm.data.head(d.train, 2048), {batch_size = 128})
for x, y in warm:epoch_iter() do
  opt:zero_grad(); F.mse(net(x), eye:index_select(y)):backward(); opt:step()
end
collectgarbage()
local t_epoch, n = math.huge, 0
for _ = 1, epochs do
  collectgarbage()
  local t0 = lm.clock()
  n = epoch()
  t_epoch = math.min(t_epoch, lm.clock() - t0)
end
local t0 = lm.clock()
inference() -- the first pass takes fresh pages for batch-1000 activations
local t_first = lm.clock() - t0
t0 = lm.clock()
inference()
local t_infer = lm.clock() - t0
local flop_fwd = 2 * (784 * 200 + 11 * 200 * 200 + 200 * 10)
print(string.format("lumen net1 epoch, %d thread(s): %.2f s (best of %d; %d samples, %.0f samples/s, "
  .. "%.1f GFLOP/s of GEMM work); "
  .. "inference on 10,000 test images: %.3f s (%.0f samples/s; first pass %.3f s)", threads, t_epoch, epochs, n,
  n / t_epoch, 3 * flop_fwd * n / t_epoch / 1e9, t_infer, 10000 / t_infer, t_first))
print(string.format('json: {"framework": "lumen", "bench": "net1_epoch", "mode": "full", "threads": %d, '
  .. '"epochs": %d, "steps": %d, "epoch_s": %.6f, "step_s": %.9f, "infer_s": %.6f, "infer_first_s": %.6f, '
  .. '"openblas_core": "%s"}', threads, epochs, n // 128, t_epoch, t_epoch / (n // 128), t_infer, t_first,
  os.getenv("OPENBLAS_CORETYPE") or ""))
