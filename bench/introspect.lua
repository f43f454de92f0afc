-- InfoVAE training epoch (Net1-sized recordings: 54,000 x 2400, batch 128,
-- multi-scale MMD) and real-time interrogation (classify + record + encode +
-- estimate) in samples per second.
--   lumen bench/introspect.lua [threads] [epochs]
-- The epoch time is the best of `epochs` (default BENCH_EPOCHS or 3);
-- BENCH_ROWS (default 54000) shrinks the recording for short checks. A last
-- line "json: {...}" repeats the numbers for bench/torch_best.py.
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
local I = lm.introspect
local threads = tonumber(arg[1]) or lm.get_num_threads()
local epochs = tonumber(arg[2]) or tonumber(os.getenv("BENCH_EPOCHS") or "") or 3
local rows = tonumber(os.getenv("BENCH_ROWS") or "") or 54000
lm.set_num_threads(threads)
lm.manual_seed(1)

local H = lm.randn(rows, 2400)
local vae = I.InfoVAE{inputs = 2400, mmd_weight = 500, bw = {0.1, 1, 10, 100, 1000}}
-- warm-up on a slice, then one timed epoch
I.fit_autoencoder(vae, H:narrow(1, 1, 2560), {epochs = 1, tty = false})
-- the standardisation statistics outside the timed epoch, as in the PyTorch peer
vae:fit_standardization(H)
collectgarbage()
-- the best of three epochs (this VM's speed varies from minute to minute)
local t_epoch = math.huge
for _ = 1, epochs do
  local t0 = lm.clock()
  I.fit_autoencoder(vae, H, {epochs = 1, tty = false, fit_standardization = false})
  t_epoch = math.min(t_epoch, lm.clock() - t0)
end

local net = lm.models.net1()
local rec = I.Recorder(net)
local est = I.Estimator()
-- three untimed calls first: the first calls at a new batch size take fresh
-- pages for their activations, which later calls reuse
local function rate(batch, reps)
  local x = lm.rand(batch, 784)
  for _ = 1, 3 do I.interrogate(rec, vae, est, x) end
  local t = lm.clock()
  for _ = 1, reps do I.interrogate(rec, vae, est, x) end
  return batch * reps / (lm.clock() - t)
end
local one, batched = rate(1, 300), rate(1000, 30)
print(string.format("lumen, %d thread(s): InfoVAE epoch (%d x 2400, batch 128, best of %d): %.2f s; "
  .. "interrogation: %.0f samples/s one at a time, %.0f samples/s in batches of 1000",
  threads, rows, epochs, t_epoch, one, batched))
print(string.format('json: {"framework": "lumen", "bench": "introspect", "mode": "full", "threads": %d, '
  .. '"rows": %d, "epochs": %d, "steps": %d, "epoch_s": %.6f, "step_s": %.9f, "interrogate_one_per_s": %.1f, '
  .. '"interrogate_batch_per_s": %.1f, "openblas_core": "%s"}', threads, rows, epochs, rows // 128, t_epoch,
  t_epoch / (rows // 128), one, batched, os.getenv("OPENBLAS_CORETYPE") or ""))
