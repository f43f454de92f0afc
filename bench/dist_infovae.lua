-- An InfoVAE epoch (stage 3 of the introspection: 2400 -> 200 x 3 -> 2 and
-- back, Adam, batch 128, reconstruction + 500 x multi-scale MMD), data
-- parallel:
--   lumen bench/dist_infovae.lua [threads] [epochs] [rows]               (one process)
--   mpirun -n K lumen bench/dist_infovae.lua [threads] [epochs] [rows]   (K processes)
-- The recording is generated (rows x 2400, Net1's width; 30,000 rows by
-- default, about half of MNIST's with its snapshots), each rank holding its
-- contiguous part as study.run does. Every global batch of 128 is split by
-- owner; each step gathers the batch's codes for the MMD (2 floats a row)
-- and averages the gradients (lm.dist.average_gradients: one flat
-- all-reduce of the InfoVAE's 1.12 M parameters, 4.5 MB). The first epoch is
-- a warm-up; rank 0 prints the best of the others (the slowest rank's time)
-- and the share spent in collectives, which includes waiting for the other
-- rank.
local lm = require 'lumen'
if lm.dist.rank() == 0 then -- which OpenBLAS kernels ran (every benchmark says)
  print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
end
local I = require 'lumen.introspect'
local d = lm.dist
local threads = tonumber(arg[1]) or 1
local epochs = tonumber(arg[2]) or 3
local rows = tonumber(arg[3]) or 30000
lm.set_num_threads(threads)
local k = d.size()
assert(epochs >= 2, "epochs: a warm-up and at least one timed epoch")

-- this rank's part of a recording with some structure: ELU-like values
-- that depend on a class per row, so the InfoVAE has something to learn
local lo, hi = d.part(rows)
lm.manual_seed(1)
local centres = lm.randn(10, 2400)
lm.manual_seed(2 + d.rank())
local classes = {}
for r = lo, hi - 1 do classes[#classes + 1] = r % 10 + 1 end
local labels = lm.tensor(classes, "int32")
local H = (centres:index_select(labels) + lm.randn(hi - lo, 2400) * 0.5):elu()

lm.manual_seed(3)
local vae = I.InfoVAE{inputs = 2400, mmd_weight = 500, bw = {0.1, 1, 10, 100, 1000}}
local floats = 0
for _, p in ipairs(vae:parameters()) do floats = floats + p:numel() end
local times = lm.zeros(epochs, 2)
local c0, t0 = d.comm_stats().seconds, lm.clock()
I.fit_autoencoder(vae, H, {epochs = epochs, seed = 1, tty = false, rows = k > 1 and lm.arange(lo, hi - 1):int() or nil,
  log = function(e)
    local c, t = d.comm_stats().seconds, lm.clock()
    times[e][1], times[e][2] = t - t0, c - c0
    c0, t0 = c, t
    collectgarbage()
  end})
times = d.allreduce_(times, 'max'):totable() -- the slowest rank's epochs
local best, comm = math.huge, 0
for e = 2, epochs do
  if times[e][1] < best then best, comm = times[e][1], times[e][2] end
end
local steps = rows // 128
if d.is_main() then
  print(string.format("lumen infovae epoch, %d process(es) x %d thread(s): %.2f s (best of %d after a warm-up, %d "
    .. "steps of global batch 128, %.1f ms/step); collectives %.3f s = %.1f%% of the epoch (%.2f ms/step, "
    .. "all-reduce of %.2f MB/step)", k, threads, best, epochs - 1, steps, 1000 * best / steps, comm,
    100 * comm / best, 1000 * comm / steps, floats * 4 / 1e6))
  print(string.format('json: {"bench": "dist_infovae", "processes": %d, "threads": %d, "rows": %d, "epoch_s": %.4f, '
    .. '"comm_s": %.4f, "steps": %d, "bytes_per_step": %d}', k, threads, rows, best, comm, steps, floats * 4))
end
