-- The main experiment: self-introspection of the paper's Net1 on MNIST.
--   lumen experiments/introspect_mnist.lua [--data mnist|fashion] [--seed S]
--        [--threads T] [--out DIR] [--fresh] [--cycles N] [--ae-epochs N]
--        [--est-epochs N] [--mmd-weight W] [--bandwidths B1,B2,..] [--subset N]
--        [--data-dir DIR] [--noise-max S] [--record-to auto|memory|file]
--
-- Stages (each cached in DIR and reused on a rerun unless --fresh):
--   1. classifier: Net1 trained as in experiments/net1_mnist.lua (with
--      --noise-max S: on inputs with Gaussian noise of a sigma drawn in
--      [0, S] per minibatch, the paper's domain randomisation), recording a
--      fixed seeded subset of 500 training samples at the end of every cycle;
--   2. recording: every hidden ELU output of the training and test sets
--      (2400 values a sample), in evaluation mode; in memory, or streamed to
--      DIR/recording_*.safetensors and mapped back when it would not fit
--      (--record-to: auto decides by the memory available);
--   3. autoencoder: an InfoVAE (2400 -> 200 -> 200 -> 200 -> 2 and back) on the
--      standardised recording, reconstruction + mmd_weight x MMD;
--   4. estimator: 2 -> 200 -> 200 -> 200 -> 1 on log10 of the classifier's
--      per-sample error;
--   5. figures, metrics.json, atlas.html and index.html.
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect
local plot = lm.plot

local opts = cli.parse(arg, {data = "mnist", seed = 1, threads = 0, out = "", fresh = false, cycles = 25,
  ae_epochs = 20, est_epochs = 20, mmd_weight = 500, subset = 0, trajectory_samples = 500,
  bandwidths = "0.1,1,10,100,1000", data_dir = "", noise_max = 0, record_to = "auto"},
  "Self-introspection of Net1: lumen experiments/introspect_mnist.lua [options]")
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
if opts.out == "" then opts.out = "results/introspect_" .. opts.data end
lm.mkdir(opts.out)
if opts.fresh then -- the checkpoints and recordings this run and study.run would reuse or rewrite
  for _, name in ipairs{"classifier", "trajectories", "autoencoder", "estimator", "recording_train",
      "recording_test"} do
    os.remove(opts.out .. "/" .. name .. ".safetensors")
  end
end
lm.manual_seed(opts.seed)

local study = require 'lumen.introspect.study'
local timings = {}
local stage = study.stage_timer(timings)

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- ---- data ------------------------------------------------------------------------------------------
local d = stage("data", function()
  local dir = opts.data_dir ~= "" and opts.data_dir or nil
  local ok, data = pcall(lm.data.mnist, {kind = opts.data, dir = dir})
  if not ok and opts.data == "mnist" then
    print("notice: MNIST not found, using Fashion-MNIST instead")
    data = lm.data.mnist{kind = "fashion", dir = dir}
  elseif not ok then
    error(data, 0)
  end
  return data
end)
local train_set, val_set = lm.data.split(d.train, {fraction = 0.1, seed = opts.seed})
if opts.subset > 0 then train_set = lm.data.head(train_set, opts.subset) end
local test_set = d.test
print(string.format("   %s: %d training, %d validation, %d test images", d.name, train_set.x:size(1),
  val_set.x:size(1), test_set.x:size(1)))

-- ---- 1. classifier, with trajectory snapshots -------------------------------------------------------
local net = lm.models.net1()
local recorder = I.Recorder(net)
local traj_path = opts.out .. "/trajectories.safetensors"
local snapshots = {}
stage("classifier", function()
  local path = opts.out .. "/classifier.safetensors"
  if exists(path) and exists(traj_path) then
    net:load(path)
    local t = lm.load(traj_path)
    for i = 1, math.huge do
      if not t["cycle" .. i] then break end
      snapshots[i] = t["cycle" .. i]
    end
    print(string.format("   loaded %s and %d trajectory snapshots", path, #snapshots))
    return
  end
  -- a fixed, seeded subset of training samples, recorded after every cycle
  local seed, offset = lm.rng_state()
  lm.manual_seed(opts.seed + 100)
  local pick = lm.randperm(train_set.x:size(1)):narrow(1, 1, opts.trajectory_samples)
  lm.set_rng_state(seed, offset)
  local subset_x = train_set.x:index_select(pick)
  local opt = lm.optim.Adam(net:parameters())
  local steps = train_set.x:size(1) // 128
  local clr = lm.optim.CyclicLR(opt, {min = 1e-5, max = 1e-3, period = 2 * steps})
  -- --noise-max S: domain randomisation, Gaussian noise with sigma drawn
  -- uniformly in [0, S] for every minibatch, images clipped to [0, 1]
  local noise = opts.noise_max > 0 and {sigma_max = opts.noise_max} or nil
  lm.train{model = net, optimizer = opt, schedule = clr, cycles = opts.cycles, train = train_set,
    noise = noise, clip = noise and {0, 1} or nil,
    val = val_set, loss = "mse", early_stopping = {patience = 5}, seed = opts.seed,
    out = opts.out .. "/classifier_run", resume = true, classes = d.classes,
    on_validate = function()
      snapshots[#snapshots + 1] = (recorder:record(subset_x))
    end}
  net:save(path)
  local t = {subset_index = pick}
  for i, s in ipairs(snapshots) do t["cycle" .. i] = s end
  lm.save(traj_path, t)
end)
local traj_index = lm.load(traj_path).subset_index

-- ---- 2.-7. recording, map, estimator, metrics, figures, report -------------------------------------
local bw
if opts.bandwidths ~= "" then
  bw = {}
  for v in opts.bandwidths:gmatch("[^,]+") do bw[#bw + 1] = tonumber(v) end
end
RESULT = study.run{
  name = "Net1", data = d, train = train_set, test = test_set, net = net, recorder = recorder,
  snapshots = snapshots, trajectory_index = traj_index, out = opts.out, stage = stage, timings = timings,
  ae_epochs = opts.ae_epochs, est_epochs = opts.est_epochs, mmd_weight = opts.mmd_weight, bw = bw,
  seed = opts.seed, record_to = opts.record_to,
}
