-- Self-introspection of the paper's Net2 on CIFAR-10: the same stages as
-- experiments/introspect_mnist.lua (lumen.introspect.study) over a Net2
-- trained by experiments/net2_cifar10.lua (a GPU's work: pass its
-- model.safetensors with --model).
--   lumen experiments/introspect_cifar10.lua [--model PATH] [--device cpu|cuda]
--        [--subset N] [--data-dir DIR] [--out DIR] [--fresh] [--seed S]
--        [--threads T] [--ae-epochs N] [--est-epochs N] [--mmd-weight W]
--        [--bandwidths B1,B2,..] [--trajectories PATH]
--
-- Recorded: the outputs of Net2's dense layers (docs/design.md), the ELUs after
-- its three Linear(512): 1,536 values a sample. The map is learned on the
-- training split (the first --subset images of it when given: recording
-- all 45,000 through the convolutions is minutes of CPU time); as in the
-- MNIST study, the seeded 10 % validation split chooses the estimator's
-- cycle (cycles of --est-period iterations, at most --est-cycles) and the
-- test images (the shared copy: the first 1,000) are read once, for the
-- report; without a test file the validation split is reported.
--
-- Two of the paper's figures come out beside the maps:
--   trajectories.png  the learning trajectories (Fig. 2e): the snapshots
--                     net2_cifar10.lua recorded after every cycle
--                     (--trajectories, default trajectories.safetensors beside
--                     --model), encoded on the final map; left out, with a
--                     notice, when that file is missing
--   violins.png       the estimated log10 error of the correctly and wrongly
--                     classified test images per class, with each class's
--                     sensitivity (Fig. 7 bottom), on the test images
--                     available (the shared copy: the first 1,000)
-- The whole CIFAR-10 part of the paper is one command on a GPU machine:
--   lumen experiments/net2_cifar10.lua --device cuda && \
--   lumen experiments/introspect_cifar10.lua --device cuda
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect
local Fig = require 'lumen.introspect.figures'
local study = require 'lumen.introspect.study'

local opts = cli.parse(arg, {model = "results/net2_cifar10/model.safetensors", device = "cpu", subset = 0,
  data_dir = "", out = "results/introspect_cifar10", fresh = false, seed = 1, threads = 0, ae_epochs = 20,
  est_epochs = 20, est_period = 3000, est_cycles = 30, mmd_weight = 500, bandwidths = "0.1,1,10,100,1000",
  width = 1.0, trajectories = ""},
  "Self-introspection of Net2: lumen experiments/introspect_cifar10.lua [options]")
cli.check(opts, {device = {"cpu", "cuda"},
  subset = "count0", seed = "count0", threads = "count0", ae_epochs = "count", est_epochs = "count",
  est_period = "count", est_cycles = "count", mmd_weight = "nonnegative", width = "positive"})
local bw = cli.numbers(opts, "bandwidths", "positive")
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
if opts.device ~= "cpu" and not lm.cuda.available() then
  error("--device " .. opts.device .. ": " .. lm.cuda.status(), 0)
end
local f = io.open(opts.model, "rb")
if not f then
  error(string.format("introspect_cifar10: no trained Net2 at %s; train one first with\n" ..
    "  lumen experiments/net2_cifar10.lua --device cuda\n(or pass --model PATH)", opts.model), 0)
end
f:close()
-- the output folder is made once the prerequisites are there
lm.mkdir(opts.out)
if opts.fresh then -- the checkpoints and recordings study.run would reuse or rewrite
  for _, name in ipairs{"autoencoder", "estimator", "estimator_recording", "recording_train", "recording_test"} do
    os.remove(opts.out .. "/" .. name .. ".safetensors")
  end
  os.remove(opts.out .. "/options.json")
end
lm.manual_seed(opts.seed)

-- the images stay bytes (154 MB, not 614): the recorder reads them a block at a time
local d = lm.data.cifar10{dir = opts.data_dir ~= "" and opts.data_dir or nil, dtype = "uint8"}
-- the split net2_cifar10.lua trained on (same seed), so validation images are unseen
local train_set, val_set = lm.data.split(d.train, {fraction = 0.1, seed = opts.seed})
if opts.subset > 0 then train_set = lm.data.head(train_set, opts.subset) end
print(string.format("CIFAR-10 from %s: recording %d training and %d validation images", d.folder,
  train_set.x:size(1), val_set.x:size(1)))

local net = lm.models.net2{width = opts.width}
net:load(opts.model)
net:to(opts.device)
-- the cached maps are reused only for the same network and options
study.check_run_options(opts.out, {model = opts.model, weights = study.weights_fingerprint(net), width = opts.width,
  subset = opts.subset, seed = opts.seed, ae_epochs = opts.ae_epochs, est_epochs = opts.est_epochs,
  est_period = opts.est_period, est_cycles = opts.est_cycles, mmd_weight = opts.mmd_weight,
  bandwidths = bw}, "introspect_cifar10") -- (as numbers: 1000.0 is 1000)
local recorder = I.Recorder(net, {select = I.elus_after(net, "nn.Linear")}) -- the dense layers
local test_accuracy = d.test and lm.evaluate(net, d.test).accuracy
print(string.format("Net2 from %s: %s accuracy %.2f %%", opts.model, d.test_note or "test",
  100 * (test_accuracy or 0)))

-- the learning-trajectory snapshots of net2_cifar10.lua: the first N images
-- of the training split after every cycle (only those inside --subset)
local traj_path = opts.trajectories ~= "" and opts.trajectories or
  ((opts.model:match("^(.*)/[^/]*$") or ".") .. "/trajectories.safetensors")
local snapshots, traj_index = {}, nil
if study.missing{traj_path} then
  print("notice: no learning trajectories at " .. traj_path .. " (net2_cifar10.lua writes them): " ..
    "trajectories.png left out")
else
  local t = lm.load(traj_path)
  local n = math.min(t.subset_index:size(1), train_set.x:size(1))
  traj_index = t.subset_index:narrow(1, 1, n)
  if traj_index:max():item() > train_set.x:size(1) then
    error(string.format("introspect_cifar10: %s indexes training images beyond the %d used here", traj_path,
      train_set.x:size(1)), 0)
  end
  for k = 1, math.huge do
    if not t["cycle" .. k] then break end
    snapshots[k] = t["cycle" .. k]:narrow(1, 1, n)
  end
  print(string.format("learning trajectories: %d samples over %d cycles from %s", n, #snapshots, traj_path))
end

-- as the MNIST study: the validation split makes the choices (the
-- estimator's cycle kept), the test images are read once for the report;
-- without a test file the validation split is reported instead (and says so)
local metrics = study.run{
  name = "Net2", data = d, train = train_set, val = d.test and val_set or nil,
  test = d.test or val_set, test_name = d.test and (d.test_note or "test set") or "validation set",
  net = net, recorder = recorder, out = opts.out, ae_epochs = opts.ae_epochs, est_epochs = opts.est_epochs,
  mmd_weight = opts.mmd_weight, bw = bw, seed = opts.seed, device = opts.device,
  snapshots = snapshots, trajectory_index = traj_index,
  est_regime = {lr_max = 1e-3, period = opts.est_period, cycles = opts.est_cycles, patience = 5},
}
metrics.trajectory_cycles = #snapshots

-- Fig. 7 bottom: the estimated error of the test images per class
if d.test then
  local vae, est = study.load_map(opts.out, recorder, d.test.x:narrow(1, 1, 1))
  local H, Y = recorder:record_set(d.test.x)
  local E = I.estimate(est, vae:encode_all(H:to('cpu'))):to('cpu')
  local by_class = Fig.violins(opts.out .. "/violins.png", {log_e_hat = E, labels = d.test.y,
    predictions = Y:to('cpu'):argmax(2), classes = d.classes,
    title = string.format("Net2 on %d CIFAR-10 test images: estimated log10 error per class, correct (colour) " ..
      "and wrong (dark grey); sensitivity above", d.test.x:size(1))})
  metrics.test_sensitivity = {}
  for k, name in ipairs(d.classes) do metrics.test_sensitivity[name] = by_class[k].sensitivity end
end
metrics.classifier_test_accuracy_first1000 = test_accuracy
metrics.note = d.test and ("the map metrics are on " .. (d.test_note or "the test set") ..
  "; the validation split chose the estimator's cycle") or
  "no test images: the map metrics are on the validation split, which chose nothing of the map"
lm.json.write(opts.out .. "/metrics.json", metrics)
return metrics
