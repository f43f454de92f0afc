-- The paper's Net2 on CIFAR-10 (all-convolutional, ELU):
--   2 x conv3x3(96), conv3x3(96, stride 2), 2 x conv3x3(192),
--   conv3x3(192, stride 2), conv1x1(192) + global average pooling,
--   3 x Linear(512), Linear(10) + Sigmoid; dropout keep 0.8 (nn.Dropout(0.2))
--   after every hidden layer; the paper's error (MSE on one-hot targets),
--   Adam with a triangular cyclic learning rate whose peak decays by 0.95 per
--   cycle; He-uniform convolutions, Glorot-uniform dense layers.
--
--   lumen experiments/net2_cifar10.lua [--cycles N] [--subset N] [--width F]
--        [--device cpu|cuda] [--seed S] [--threads T] [--out DIR] [--steps N]
--        [--data-dir DIR] [--trajectory-samples N] [--paper]
--
-- --paper: the paper's printed schedule: cycles of T = 5000 iterations
-- from a rate of 0 up to the peak (--lr-max: the paper gives no peak for
-- Net2), decaying by 0.95 a cycle, N = 100 cycles at most (output in
-- results/net2_cifar10_paper). Without it: cycles of --period-epochs epochs
-- over [--lr-min, --lr-max], --cycles of them.
--
-- Full training is work for a GPU (about 1.5 GFLOP per image per step: one
-- epoch is roughly 80 TFLOP, over ten minutes per epoch on 2 CPU cores).
-- On the CPU use --subset and --width to run a reduced version; --steps N
-- stops after N training steps (the test suite runs a few).
-- Learning trajectories (the paper's Fig. 2e): at the end of every cycle the
-- first --trajectory-samples images of the (seeded, shuffled) training split
-- (500; 0 for none) are recorded at Net2's dense layers, as
-- experiments/introspect_cifar10.lua records them, into
-- OUT/trajectories.safetensors ("cycle1", "cycle2", ... [N, units] and
-- "subset_index"), written after each cycle so a resumed run keeps them;
-- introspect_cifar10.lua draws them on the final map.
-- Evaluation: a seeded 10 % validation split of the 50,000 training images,
-- and the test images that are available (the shared copy has only the
-- first 1,000 of the 10,000: reported as such).
local lm = require 'lumen'
local cli = require 'lumen.cli'

local study = require 'lumen.introspect.study'

local opts, given = cli.parse(arg, {cycles = 30, period_epochs = 2, lr_min = 1e-5, lr_max = 5e-4, decay = 0.95,
  batch = 128, seed = 1, threads = 0, out = "results/net2_cifar10", subset = 0, width = 1.0,
  device = "cpu", steps = 0, patience = 5, fresh = false, data_dir = "", trajectory_samples = 500, paper = false},
  "Train the paper's Net2: lumen experiments/net2_cifar10.lua [options]")
cli.check(opts, {device = {"cpu", "cuda"},
  cycles = "count", period_epochs = "count", lr_min = "nonnegative", lr_max = "positive",
  decay = "positive", batch = "count", seed = "count0", threads = "count0", subset = "count0", width = "positive",
  steps = "count0", patience = "count", trajectory_samples = "count0"})
if opts.paper then
  for _, k in ipairs{"cycles", "period_epochs", "lr_min"} do
    if given[k] then
      cli.usage_error("--paper sets the schedule (100 cycles of 5000 iterations from 0): leave out --%s",
        k:gsub("_", "-"))
    end
  end
  opts.lr_min, opts.cycles = 0, 100
  if opts.out == "results/net2_cifar10" then opts.out = "results/net2_cifar10_paper" end
end
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
if opts.fresh then
  os.remove(opts.out .. "/checkpoint.safetensors")
  os.remove(opts.out .. "/trajectories.safetensors")
  os.remove(opts.out .. "/options.json")
end
-- a rerun resumes the checkpoint only for the options that wrote it
if opts.steps == 0 then
  lm.mkdir(opts.out)
  study.check_run_options(opts.out, {cycles = opts.cycles, period_epochs = opts.period_epochs, lr_min = opts.lr_min,
    lr_max = opts.lr_max, decay = opts.decay, batch = opts.batch, seed = opts.seed, subset = opts.subset,
    width = opts.width, patience = opts.patience, trajectory_samples = opts.trajectory_samples, paper = opts.paper},
    "net2_cifar10")
end
lm.manual_seed(opts.seed)

local d, train_set, val_set = study.cifar10_training_sets(opts)

local net = lm.models.net2{width = opts.width}
if opts.device ~= "cpu" then
  if not lm.cuda.available() then
    error("--device " .. opts.device .. ": " .. lm.cuda.status(), 0)
  end
  net:to(opts.device)
end
local nparams = lm.models.count_parameters(net)
local opt = lm.optim.Adam(net:parameters())
local steps_per_epoch = math.max(1, train_set.x:size(1) // opts.batch)
local period = opts.paper and 5000 or math.max(2, opts.period_epochs * steps_per_epoch)
local schedule = lm.optim.CyclicLR(opt, {min = opts.lr_min, max = opts.lr_max, decay = opts.decay, period = period})
print(string.format("Net2 (width %.2f): %d parameters, %d threads, %d cycles of %d iterations",
  opts.width, nparams, lm.get_num_threads(), opts.cycles, schedule.period))

if opts.steps > 0 then -- a fixed number of steps (smoke runs and timing)
  local first, last = study.fixed_steps{model = net, optimizer = opt, schedule = schedule, set = train_set,
    batch = opts.batch, seed = opts.seed, device = opts.device, steps = opts.steps,
    loss = function(out, y) return lm.nn.functional.mse(out, lm.data.one_hot(y, 10):float()) end}
  return {first_loss = first, last_loss = last, period = schedule.period, cycles = opts.cycles, lr = opt:lr(),
    out = opts.out}
end

-- the snapshots of the learning trajectories: the first N training images at
-- the dense layers after every cycle (cycles of a resumed run's past kept)
lm.mkdir(opts.out)
local traj_path = opts.out .. "/trajectories.safetensors"
local traj_n = math.min(opts.trajectory_samples, train_set.x:size(1))
local traj, on_validate = nil, nil
if traj_n > 0 then
  local recorder = lm.introspect.Recorder(net, {select = lm.introspect.elus_after(net, "nn.Linear")}) -- dense
  local traj_x = train_set.x:narrow(1, 1, traj_n)
  local f = io.open(traj_path, "rb")
  if f then
    f:close()
    traj = lm.load(traj_path)
    if traj.subset_index:size(1) ~= traj_n then
      error(string.format("net2_cifar10: %s holds %d samples a cycle, --trajectory-samples asks for %d " ..
        "(--fresh starts over)", traj_path, traj.subset_index:size(1), traj_n), 0)
    end
  else
    traj = {subset_index = lm.arange(1, traj_n):int()}
  end
  on_validate = function(_, run)
    local cycle = #run.history
    traj["cycle" .. cycle] = recorder:record(traj_x):to('cpu')
    for k = cycle + 1, math.huge do -- left from an interrupted run beyond this cycle
      if not traj["cycle" .. k] then break end
      traj["cycle" .. k] = nil
    end
    lm.save(traj_path, traj)
  end
end

local history = lm.train{
  model = net, optimizer = opt, schedule = schedule, cycles = opts.cycles,
  train = train_set, val = val_set, batch_size = opts.batch, seed = opts.seed, loss = "mse",
  early_stopping = {patience = opts.patience}, out = opts.out, resume = true, classes = d.classes,
  on_validate = on_validate,
}
local result = {validation = lm.evaluate(net, val_set).accuracy, cycles_run = #history, paper_preset = opts.paper,
  trajectory_samples = traj_n, trajectory_cycles = 0}
for k = 1, math.huge do
  if not (traj and traj["cycle" .. k]) then break end
  result.trajectory_cycles = k
end
if d.test then
  result.test = lm.evaluate(net, d.test).accuracy
  result.test_note = d.test_note
end
net:save(opts.out .. "/model.safetensors")
lm.json.write(opts.out .. "/test_metrics.json", result)
print(string.format("validation accuracy %.2f %%; %s accuracy %.2f %%", 100 * result.validation,
  d.test_note or "test", 100 * (result.test or 0)))
return result
