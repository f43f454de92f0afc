-- Error scores of the mapped Net2 against its own confidence on CIFAR-10
-- (issue 15; docs/analyses/error-scores.md), over the Net2 of
-- experiments/net2_cifar10.lua and the map introspect_cifar10.lua cached
-- from it (both reused, never retrained):
--   lumen experiments/error_scores_cifar10.lua [--out DIR] [--model PATH]
--        [--width W] [--device cpu|cuda] [--data-dir DIR] [--seed S] [--threads T]
--        [--est-epochs N] [--long-epochs N] [--wide-epochs N]
--        [--heldout-epochs N] [--folds K] [--resamples N] [--conv=false]
--        [--name STEM]
--
-- --out is introspect_cifar10.lua's folder (autoencoder.safetensors,
-- estimator.safetensors; error_scores.json and .md are written there) and
-- --model the Net2 it mapped, with its --width. The splits are that run's:
-- the seeded 10 % validation split of the training batches (the seed in
-- its metrics.json, as net2_cifar10.lua and introspect_cifar10.lua split
-- them; --seed seeds the estimators, folds and bootstrap) and the test
-- images available (the shared copy: the first 1,000), read once for the
-- report. Beside the MNIST study's variants (lumen.introspect.error_scores),
-- one estimator also sees the convolutions: each conv layer's ELU averaged
-- over space (--conv=false leaves it out).
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect
local ES = require 'lumen.introspect.error_scores'
local study = require 'lumen.introspect.study'

local opts, given = cli.parse(arg, {out = "results/introspect_cifar10",
  model = "results/net2_cifar10/model.safetensors",
  width = 1.0, device = "cpu", data_dir = "", seed = 1, threads = 2, est_epochs = 20, long_epochs = 60,
  wide_epochs = 20, heldout_epochs = 100, folds = 5, resamples = 200, conv = true, name = "error_scores"},
  "Error scores of the mapped Net2: lumen experiments/error_scores_cifar10.lua [options]\n"
    .. "(--width defaults to the one the run in --out recorded)")
cli.check(opts, {device = {"cpu", "cuda"},
  width = "positive", seed = "count0", threads = "count0", est_epochs = "count", long_epochs = "count",
  wide_epochs = "count", heldout_epochs = "count", folds = "count", resamples = "count"})
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
local check_network
opts.width, check_network = study.mapped_network(opts.out, "error_scores_cifar10", opts.width, given.width)
local missing = study.missing{opts.model, opts.out .. "/autoencoder.safetensors", opts.out .. "/estimator.safetensors"}
if missing then
  error(string.format("error_scores_cifar10: %s is missing; train and map Net2 first:\n" ..
    "  lumen experiments/net2_cifar10.lua && lumen experiments/introspect_cifar10.lua --out %s", missing, opts.out), 0)
end
local t_start = lm.clock()

local d = lm.data.cifar10{dir = opts.data_dir ~= "" and opts.data_dir or nil, dtype = "uint8"}
if not d.test then
  error("error_scores_cifar10: no CIFAR-10 test images in " .. d.folder .. " (test_batch.bin): nothing to report on", 0)
end
-- the runs' split: introspect_cifar10.lua splits with its seed (as net2_cifar10.lua
-- did), which its metrics.json records; --seed seeds the estimators, folds and bootstrap
local split_seed = study.run_seed(opts.out, "error_scores_cifar10")
local train, val = lm.data.split(d.train, {fraction = 0.1, seed = split_seed})
local net = lm.models.net2{width = opts.width}
net:load(opts.model)
check_network(net)
if opts.device ~= "cpu" then -- the recordings (through the convolutions) on the GPU; the estimators stay here
  if not lm.cuda.available() then error("--device " .. opts.device .. ": " .. lm.cuda.status(), 0) end
  net:to(opts.device)
end
net:evaluate()
local recorder = I.Recorder(net, {select = I.elus_after(net, "nn.Linear")}) -- introspect_cifar10.lua's recording
local conv = opts.conv and I.Recorder(net, {select = I.elus_after(net, "nn.Conv2d"), pool = 'mean'}) or nil
local vae, est = study.load_map(opts.out, recorder, train.x:narrow(1, 1, 1))

local R = ES.record{net = net, recorder = recorder, wide = conv, vae = vae,
  sets = {train = train, val = val, test = d.test}, log = function(name, r)
    print(string.format("%-5s %6d images, %4d misclassified, %.1f %% of log10 e at the floor (%.0f s)", name,
      #r.wrong, r.errors, 100 * r.floor_share, lm.clock() - t_start))
  end}

local results = ES.compare(R, {est = est, vae = vae, seed = opts.seed, est_epochs = opts.est_epochs,
  long_epochs = opts.long_epochs, wide_epochs = opts.wide_epochs, heldout_epochs = opts.heldout_epochs,
  folds = opts.folds, resamples = opts.resamples, data = d.name .. " (" .. (d.test_note or "test set") .. ")",
  from = opts.out .. " (Net2 " .. opts.model .. ")", wide_name = "conv", progress = function(name)
    print(string.format("   %-40s done (%.0f s)", name, lm.clock() - t_start))
  end})
results.width, results.split_seed = opts.width, split_seed
results.seconds = lm.clock() - t_start
ES.report(results, opts.out, opts.name)
return results
