-- A Net1 epoch on MNIST (batch 128, MSE, Adam, dropout 0.1), data parallel:
--   lumen bench/dist_net1.lua [threads] [epochs]                 (one process)
--   mpirun -n K lumen bench/dist_net1.lua [threads] [epochs]     (K processes)
-- The global batch stays 128: each of K ranks takes 128 / K rows of every
-- batch (the loader's shard) and the gradients are averaged after each
-- backward (lm.dist.average_gradients: one flat all-reduce of 601,210
-- floats, 2.4 MB, per step). Rank 0 prints the best epoch time, the share
-- of it spent in the all-reduce (the slowest rank's), and a model of the
-- all-reduce at 8, 64 and 512 ranks from the measured message size.
-- BENCH_MAX_STEPS caps the steps of an epoch (short checks).
local lm = require 'lumen'
if lm.dist.rank() == 0 then -- which OpenBLAS kernels ran (every benchmark says)
  print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
end
local F = lm.nn.functional
local d = lm.dist
local threads = tonumber(arg[1]) or 1
local epochs = tonumber(arg[2]) or 2
local max_steps = tonumber(os.getenv("BENCH_MAX_STEPS") or "")
lm.set_num_threads(threads)
local rank, k = d.rank(), d.size()
assert(128 % k == 0, "the number of ranks must divide 128")

local data = lm.data.mnist()
lm.manual_seed(1)
local net = lm.models.net1()
d.broadcast_parameters(net, 0)
local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
local loader = lm.data.loader(data.train, {batch_size = 128 // k, seed = 1, shard = d.shard()})
local eye = lm.data.one_hot(lm.arange(1, 10, 'int32'), 10):float()
local floats = 0
for _, p in ipairs(net:parameters()) do floats = floats + p:numel() end

local function epoch()
  local steps = 0
  for x, y in loader:epoch_iter() do
    opt:zero_grad()
    F.mse(net(x), eye:index_select(y)):backward()
    d.average_gradients(net)
    opt:step()
    collectgarbage("step")
    steps = steps + 1
    if max_steps and steps >= max_steps then break end
  end
  return steps
end

epoch() -- warm-up (allocator cache, threads, MPI connections)
local best, best_comm, steps = math.huge, 0, 0
for _ = 1, epochs do
  collectgarbage()
  d.barrier()
  local c0, t0 = d.comm_stats().seconds, lm.clock()
  steps = epoch()
  d.barrier()
  local t, c = lm.clock() - t0, d.comm_stats().seconds - c0
  -- the slowest rank's time and its communication
  local both = d.allreduce_(lm.tensor{t, c}, 'max'):totable()
  if both[1] < best then best, best_comm = both[1], both[2] end
end

if rank == 0 then
  local bytes = floats * 4
  print(string.format("lumen net1 epoch, %d process(es) x %d thread(s): %.2f s (best of %d, %d steps of global "
    .. "batch 128, %.1f ms/step); all-reduce %.3f s = %.1f%% of the epoch (%.2f ms/step, %.2f MB/step)",
    k, threads, best, epochs, steps, 1000 * best / steps, best_comm, 100 * best_comm / best,
    1000 * best_comm / steps, bytes / 1e6))
  -- A ring all-reduce sends 2 (p - 1) / p of the message over the slowest link in
  -- 2 (p - 1) steps of latency alpha. Links: 10 Gb/s Ethernet (1.25 GB/s, 25 us),
  -- 100 Gb/s InfiniBand (12.5 GB/s, 2 us). Weak scaling: every rank keeps a
  -- batch of 128 (the global batch grows with p), so its compute per step is
  -- one process's step at batch 128, estimated from this run as K x the
  -- per-rank compute (the step without the all-reduce).
  local compute = (best - best_comm) / steps * k
  for _, link in ipairs{{"10GbE", 1.25e9, 25e-6}, {"IB-100G", 12.5e9, 2e-6}} do
    local parts = {}
    for _, p in ipairs{8, 64, 512} do
      local ar = 2 * (p - 1) / p * bytes / link[2] + 2 * (p - 1) * link[3]
      parts[#parts + 1] = string.format("%d ranks %.2f ms (%.0f%% of a step)", p, 1000 * ar, 100 * ar / (ar + compute))
    end
    print(string.format("model, all-reduce of %.2f MB on %s, batch 128 per rank (compute %.1f ms/step): %s",
      bytes / 1e6, link[1], 1000 * compute, table.concat(parts, "; ")))
  end
  print(string.format('json: {"bench": "dist_net1", "processes": %d, "threads": %d, "epoch_s": %.4f, '
    .. '"comm_s": %.4f, "steps": %d, "bytes_per_step": %d}', k, threads, best, best_comm, steps, bytes))
end
