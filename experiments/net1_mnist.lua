-- The paper's Net1 on MNIST (or Fashion-MNIST):
--   784 -> 12 x [Linear(200), ELU, Dropout(0.1)] -> Linear(10), Sigmoid,
--   trained on the paper's error e = 1/2 ||y - y_hat||^2 with Adam and a
--   triangular cyclic learning rate; Glorot-uniform weights, zero biases.
--
--   lumen experiments/net1_mnist.lua [--data mnist|fashion] [--data-dir DIR] [--cycles N]
--        [--seed S] [--threads T] [--out DIR] [--paper] [--fresh] [--noise S | --noise-max S]
--
-- Default preset (97.8 % on MNIST in about 3 minutes on 2 cores): CLR
-- between 1e-5 and 1e-3 with a period of 2 epochs, 25 cycles (50 epochs), batch 128,
-- validation on a seeded 10 % split at the end of each cycle, early stopping
-- after 5 cycles without a better validation loss, best weights restored.
-- --paper: the paper's printed schedule (T = 3000 iterations, lr in
-- [0, 1e-5], 30 cycles); expect it to train far more slowly.
-- Writes DIR/model.safetensors, metrics.json, learning_curve.png; reruns
-- resume from DIR/checkpoint.safetensors unless --fresh.
local lm = require 'lumen'
local cli = require 'lumen.cli'

local study = require 'lumen.introspect.study'

local opts, given = cli.parse(arg, {data = "mnist", cycles = 25, period_epochs = 2, lr_min = 1e-5,
  lr_max = 1e-3, batch = 128, seed = 1, threads = 0, out = "", paper = false, fresh = false,
  patience = 5, noise = 0, noise_max = 0, data_dir = ""},
  "Train the paper's Net1: lumen experiments/net1_mnist.lua [options]\n"
    .. "(--out defaults to results/net1_<data>, with _paper for --paper)")
cli.check(opts, {data = {"mnist", "fashion"}, cycles = "count", period_epochs = "count", lr_min = "nonnegative",
  lr_max = "positive", batch = "count", seed = "count0", threads = "count0", patience = "count",
  noise = "nonnegative", noise_max = "nonnegative"})
for _, k in ipairs{"cycles", "period_epochs", "lr_min", "lr_max"} do
  if opts.paper and given[k] then
    cli.usage_error("--paper sets the schedule (30 cycles of 3000 iterations over [0, 1e-5]): leave out --%s",
      k:gsub("_", "-"))
  end
end
if given.noise and given.noise_max then cli.usage_error("--noise (a fixed sigma) or --noise-max, not both") end
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
if opts.out == "" then opts.out = "results/net1_" .. opts.data .. (opts.paper and "_paper" or "") end
lm.mkdir(opts.out)
if opts.fresh then
  os.remove(opts.out .. "/checkpoint.safetensors")
  os.remove(opts.out .. "/best.safetensors")
  os.remove(opts.out .. "/model.safetensors")
  os.remove(opts.out .. "/options.json")
end
-- a rerun resumes the checkpoint only for the options that wrote it
study.check_run_options(opts.out, {data = opts.data, cycles = opts.cycles, period_epochs = opts.period_epochs,
  lr_min = opts.lr_min, lr_max = opts.lr_max, batch = opts.batch, seed = opts.seed, paper = opts.paper,
  patience = opts.patience, noise = opts.noise, noise_max = opts.noise_max}, "net1_mnist",
  {models = {"checkpoint.safetensors", "best.safetensors", "model.safetensors"}})
lm.manual_seed(opts.seed)


local t0 = lm.clock()
local dir = opts.data_dir ~= "" and opts.data_dir or nil
local ok, d = pcall(lm.data.mnist, {kind = opts.data, dir = dir})
-- only a missing MNIST falls back: a damaged one is an error, not a silent change of data set
if not ok and opts.data == "mnist" and tostring(d):find("MNIST not found", 1, true) then
  print("notice: MNIST not found, using Fashion-MNIST instead (" .. tostring(d):match("^[^\n]*") .. ")")
  d = lm.data.mnist{kind = "fashion", dir = dir}
elseif not ok then
  error(d, 0)
end
local train_set, val_set = lm.data.split(d.train, {fraction = 0.1, seed = opts.seed})
print(string.format("%s from %s: %d training, %d validation, %d test images (%.1f s to load)",
  d.name, d.folder, train_set.x:size(1), val_set.x:size(1), d.test.x:size(1), lm.clock() - t0))

local net = lm.models.net1() -- Dropout(0.1): the paper's keep probability 0.9
local opt = lm.optim.Adam(net:parameters())
local steps_per_epoch = train_set.x:size(1) // opts.batch
local schedule
if opts.paper then
  schedule = lm.optim.CyclicLR(opt, {min = 0, max = 1e-5, period = 3000})
  opts.cycles = 30
else
  schedule = lm.optim.CyclicLR(opt, {min = opts.lr_min, max = opts.lr_max,
    period = opts.period_epochs * steps_per_epoch})
end
local noise
if opts.noise > 0 then noise = {sigma = opts.noise} end
if opts.noise_max > 0 then noise = {sigma_max = opts.noise_max} end
print(string.format("Net1: %d parameters, %d threads, seed %d, %d cycles of %d iterations, output %s",
  lm.models.count_parameters(net),
  lm.get_num_threads(), opts.seed, opts.cycles, schedule.period, opts.out))

local history = lm.train{
  model = net, optimizer = opt, schedule = schedule, cycles = opts.cycles,
  train = train_set, val = val_set, batch_size = opts.batch, seed = opts.seed,
  loss = "mse", early_stopping = {patience = opts.patience}, out = opts.out, resume = true,
  classes = d.classes, noise = noise, clip = noise and {0, 1} or nil, -- noisy images stay images
}

local test = lm.evaluate(net, d.test)
net:save(opts.out .. "/model.safetensors")
local train_seconds, steps = 0, 0
for _, h in ipairs(history) do train_seconds, steps = train_seconds + h.seconds, steps + h.steps end
local per_epoch = steps > 0 and train_seconds / steps * steps_per_epoch or 0
local summary = {data = d.name, test_accuracy = test.accuracy, test_loss = test.loss,
  test_per_class = test.per_class, test_confusion = test.confusion, seconds_per_epoch = per_epoch,
  threads = lm.get_num_threads(), seed = opts.seed, cycles_run = #history, paper_preset = opts.paper}
lm.json.write(opts.out .. "/test_metrics.json", summary)
print(string.format("%s test accuracy %.2f %% (loss %.5f); %.1f s per epoch on %d thread(s); "
  .. "model in %s/model.safetensors",
  d.name, 100 * test.accuracy, test.loss, per_epoch, lm.get_num_threads(), opts.out))
return summary
