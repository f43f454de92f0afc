-- The loader's batch (a gather of 128 shuffled rows) inside a Net1 training
-- loop and in a loop of its own: between training steps the data set's
-- page-table entries leave the TLB, which huge pages on the data set
-- (lm_cpu_advise_huge_pages in the IDX reader) avoid.
--   lumen bench/loader_gather.lua [threads] [float|uint8]
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
local F = lm.nn.functional
local threads = tonumber(arg[1]) or lm.get_num_threads()
local dtype = arg[2] or "uint8"
lm.set_num_threads(threads)
lm.manual_seed(1)
local d = lm.data.mnist{dtype = dtype}
local net = lm.models.net1()
local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
local eye = lm.data.one_hot(lm.arange(1, 10, 'int32'), 10):float()
local loader = lm.data.loader(d.train, {batch_size = 128, seed = 1})
local it = loader:epoch_iter()
local t_batch, t_rest, n = 0, 0, 0
local function step(train)
  local t0 = lm.clock()
  local x, y = it()
  if not x then
    it = loader:epoch_iter()
    x, y = it()
  end
  local t1 = lm.clock()
  if train then
    opt:zero_grad()
    F.mse(net(x), eye:index_select(y)):backward()
    opt:step()
    collectgarbage("step")
  end
  t_batch, t_rest, n = t_batch + (t1 - t0), t_rest + (lm.clock() - t1), n + 1
end
for _ = 1, 50 do step(true) end
t_batch, t_rest, n = 0, 0, 0
for _ = 1, 300 do step(true) end
print(string.format("lumen loader, %s MNIST, %d thread(s): batch inside training %.1f us (step %.1f us)",
  dtype, threads, t_batch / n * 1e6, t_rest / n * 1e6))
t_batch, t_rest, n = 0, 0, 0
for _ = 1, 300 do step(false) end
print(string.format("batch in a loop of its own %.1f us", t_batch / n * 1e6))
