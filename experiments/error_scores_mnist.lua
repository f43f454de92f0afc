-- Error scores of the mapped Net1 against its own confidence (issue 15;
-- docs/analyses/error-scores.md), over the models the main experiment
-- cached (run experiments/introspect_mnist.lua first; the classifier and the
-- autoencoder are reused, never retrained):
--   lumen experiments/error_scores_mnist.lua [--out DIR] [--data mnist|fashion]
--        [--data-dir DIR] [--seed S] [--threads T] [--est-epochs N]
--        [--long-epochs N] [--wide-epochs N] [--heldout-epochs N] [--folds K]
--        [--resamples N] [--recording=false] [--name STEM]
--
-- The variants, how each is fitted and how one is chosen on validation
-- (the test set is measured once, at the end): lumen.introspect.error_scores.
-- The split is the run's (its options.json's seed); --seed seeds the
-- estimators, folds and bootstrap. Writes DIR/error_scores.json (also the
-- chunk's return value) and DIR/error_scores.md (--name: another stem), and
-- prints the table.
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect
local ES = require 'lumen.introspect.error_scores'
local study = require 'lumen.introspect.study'

local opts, given = cli.parse(arg, {out = "results/introspect_mnist", data = "mnist", data_dir = "", seed = 1,
  threads = 2,
  est_epochs = 20, long_epochs = 60, wide_epochs = 20, heldout_epochs = 100, folds = 5, resamples = 200,
  recording = true, name = "error_scores"},
  "Error scores of the mapped Net1: lumen experiments/error_scores_mnist.lua [options]\n"
    .. "(--data defaults to the data set of the run in --out)")
cli.check(opts, {data = {"mnist", "fashion"}, seed = "count0", threads = "count0", est_epochs = "count",
  long_epochs = "count", wide_epochs = "count", heldout_epochs = "count", folds = "count", resamples = "count"})
opts.data = study.run_data(opts.out, given.data and opts.data)
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
study.require_mnist_run(opts.out, "error_scores_mnist")
-- the report goes into the run's own folder: a --name that is the stem of a
-- file of the run (options.json, metrics.json, index.html, ...) would
-- overwrite it or stand beside it as if it were the run's; a report of this
-- script's under that name is replaced
if opts.name == "" or opts.name:find("/", 1, true) or opts.name:sub(1, 1) == "." then
  cli.usage_error("--name is a file name stem in --out, got '%s'", opts.name)
end
for _, entry in ipairs(lm.list_dir(opts.out)) do
  local stem, ext = entry.name:match("^(.*)%.([^.]+)$")
  if stem == opts.name then
    local ours = false
    if ext == "md" or ext == "json" then
      local f = assert(io.open(opts.out .. "/" .. entry.name, "rb"))
      local text = f:read("a")
      f:close()
      local ok, report = pcall(lm.json.decode, text)
      ours = ext == "md" and text:find("^# Error scores\n") or ext == "json" and ok and type(report) == "table"
        and report.variants ~= nil
    end
    if not ours then
      cli.usage_error("--name %s would write beside %s/%s, a file of the run: choose another name", opts.name,
        opts.out, entry.name)
    end
  end
end
local t_start = lm.clock()

-- ---- the cached run and the three splits -------------------------------------------------------------
local d = lm.data.mnist{kind = opts.data, dir = opts.data_dir ~= "" and opts.data_dir or nil}
-- study.mnist splits with the run's seed, which its options.json records (the same data set, checked)
local split_seed = study.run_seed(opts.out, "error_scores_mnist", d.name)
local train, val = lm.data.split(d.train, {fraction = 0.1, seed = split_seed}) -- the run's split
local sets = {train = train, val = val, test = d.test}
local net = lm.models.net1()
net:load(opts.out .. "/classifier.safetensors")
net:evaluate()
local recorder = I.Recorder(net)
local vae, est = study.load_map(opts.out, recorder, train.x:narrow(1, 1, 1))

local R = ES.record{net = net, recorder = recorder, vae = vae, sets = sets, log = function(name, r)
  print(string.format("%-5s %6d images, %4d misclassified, %.1f %% of log10 e at the floor", name, #r.wrong,
    r.errors, 100 * r.floor_share))
end}

local results = ES.compare(R, {est = est, vae = vae, seed = opts.seed, est_epochs = opts.est_epochs,
  long_epochs = opts.long_epochs, wide_epochs = opts.wide_epochs, heldout_epochs = opts.heldout_epochs,
  folds = opts.folds, resamples = opts.resamples, recording = opts.recording, data = d.name, from = opts.out,
  progress = function(name) print(string.format("   %-40s done (%.0f s)", name, lm.clock() - t_start)) end})
results.split_seed = split_seed
results.seconds = lm.clock() - t_start
ES.report(results, opts.out, opts.name)
return results
