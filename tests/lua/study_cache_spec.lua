-- study.mnist's cache in --out (experiments/introspect_mnist.lua on tiny
-- generated data, about a second a run): a rerun reuses a model only when
-- the options, the data and the models it was made from are the same.
local lm = require 'lumen'
local study = require 'lumen.introspect.study'
local run_experiment = dofile("tests/helpers/run_experiment.lua")
local fake_mnist = dofile("tests/helpers/fake_mnist.lua")

-- A new temporary folder holding a generated MNIST (600 training, 200 test images).
local function data_folder()
  local dir = os.tmpname()
  os.remove(dir)
  return fake_mnist.write(dir, 600, 200)
end

-- introspect_mnist.lua's smallest run on the data in `data` into `out`, with `extra` arguments.
local function introspect(data, out, extra)
  local args = {"--data-dir", data, "--out", out, "--cycles", "2", "--ae-epochs", "2", "--est-epochs", "2",
    "--est-period", "20", "--est-cycles", "3", "--trajectory-samples", "50", "--threads", "1"}
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local threads = lm.get_num_threads()
  local ok, result = run_experiment("experiments/introspect_mnist.lua", args)
  lm.set_num_threads(threads) -- as the specs after this one expect (--threads 1 would stay)
  return ok, result
end

-- One fresh run on one generated data set, made once: a test that starts
-- from a run works on a copy of its folder (its options.json names the data folder).
local base
local function copy_of_base()
  if not base then
    local data = data_folder()
    local ok, metrics = introspect(data, data .. "/base")
    assert(ok, metrics)
    base = {data = data, out = data .. "/base", metrics = metrics}
  end
  local out = os.tmpname()
  os.remove(out)
  os.execute(string.format("cp -r '%s' '%s'", base.out, out))
  return base.data, out, base.metrics
end

describe("study.mnist's cached models", function()
  it("are refused for other data: another folder, changed files, the fallback's Fashion-MNIST", function()
    local dir, out = copy_of_base()
    local other = data_folder()
    local recorded = study.run_options(out)
    eq(recorded.data_folder, lm.real_path(dir .. "/mnist"))
    -- the same files in another folder
    local rok, rerr = introspect(other, out)
    -- the files changed in place (ten more test images)
    fake_mnist.write(dir, 600, 210)
    local cok, cerr = introspect(dir, out)
    local changed = study.files_fingerprint(lm.data.mnist{dir = dir}.files)
    fake_mnist.write(dir, 600, 200) -- as the base run's again, for the other tests
    -- no MNIST: Fashion-MNIST is loaded, and recorded as what the models learned
    os.rename(other .. "/mnist", other .. "/fashion-mnist")
    local fok, ferr = introspect(other, other .. "/out")
    local fashion = study.run_options(other .. "/out")
    os.rename(other .. "/fashion-mnist", other .. "/mnist")
    local mok, merr = introspect(other, other .. "/out")
    local other_mnist = lm.real_path(other .. "/mnist")
    eq(rok, false)
    eq(rerr, string.format("study.mnist: %s holds models made with the data in %s (this run: %s); replace them "
      .. "with --fresh, or use another --out", out, recorded.data_folder, other_mnist))
    eq(cok, false)
    eq(cerr, string.format("study.mnist: %s holds models made with data files of fingerprint %s (this run: %s); "
      .. "replace them with --fresh, or use another --out", out, recorded.data_files, changed))
    truthy(fok, ferr)
    eq(fashion.data, "fashion")
    eq(mok, false)
    truthy(merr:find("holds models made with --data fashion (this run: mnist), the data in " .. fashion.data_folder,
      1, true), merr)
  end)

  it("follow options.json only beside a model, and are refused without one", function()
    local dir = data_folder()
    local out = dir .. "/out"
    lm.mkdir(out)
    -- a run that failed before its first model recorded other options: replaced, not a refusal
    lm.json.write(out .. "/options.json", {seed = 9, cycles = 99})
    local ok, err = introspect(dir, out)
    local recorded = ok and study.run_options(out)
    -- models beside no record (removed, or JSON null): nothing says what made them
    os.remove(out .. "/options.json")
    local mok, merr = introspect(dir, out)
    lm.write_file(out .. "/options.json", "null")
    local nok, nerr = introspect(dir, out)
    os.execute("rm -rf '" .. dir .. "'")
    truthy(ok, err)
    eq(recorded.seed, 1)
    eq(recorded.cycles, 2)
    local refusal = "study.mnist: " .. out .. " holds models (classifier.safetensors) but no options.json saying "
      .. "what made them; replace them with --fresh, or use another --out"
    eq(mok, false)
    eq(merr, refusal)
    eq(nok, false)
    eq(nerr, refusal)
  end)

  it("are trained again when a model they were made from is, as in a fresh run", function()
    local dir, out, fresh = copy_of_base()
    -- an estimator that no run trained, in place of the one made from the models removed below
    local function planted()
      lm.manual_seed(77)
      local est = lm.introspect.Estimator()
      est:save(out .. "/estimator.safetensors")
      return study.weights_fingerprint(est)
    end
    local function estimator()
      local est = lm.introspect.Estimator()
      est:load(out .. "/estimator.safetensors")
      return study.weights_fingerprint(est)
    end
    os.remove(out .. "/autoencoder.safetensors")
    local bogus = planted()
    local aok, again = introspect(dir, out)
    local after_autoencoder = estimator()
    os.remove(out .. "/classifier.safetensors")
    os.remove(out .. "/classifier_run/checkpoint.safetensors")
    planted()
    local cok, cerr = introspect(dir, out)
    local after_classifier = estimator()
    truthy(aok, again)
    truthy(after_autoencoder ~= bogus, "the estimator was trained on the new autoencoder")
    -- the autoencoder and the estimator retrained beside the cached classifier: the same
    -- numbers as the fresh run, whose classifier's training moved the random stream
    for k, v in pairs(fresh) do
      if type(v) == "number" and k ~= "peak_rss_bytes" then eq(again[k], v, k) end
    end
    -- what the cached recording estimator's fit chose, and the cycles of the estimator's, as the fresh run
    eq(again.recording_estimator_epoch, fresh.recording_estimator_epoch)
    same(again.cycles, fresh.cycles)
    truthy(cok, cerr)
    truthy(after_classifier ~= bogus, "the estimator was trained on the new classifier's map")
  end)

  it("keep the trajectory snapshots with the classifier's checkpoint, and the report this run's figures", function()
    local dir, out = copy_of_base()
    local first = lm.load(out .. "/trajectories.safetensors")
    -- the classifier gone: its finished checkpoint resumes, training nothing; the snapshots come from their files
    os.remove(out .. "/classifier.safetensors")
    local rok, rerr = introspect(dir, out)
    local resumed = lm.load(out .. "/trajectories.safetensors")
    -- a checkpoint without its snapshots (as before they were kept) trains from the start
    os.remove(out .. "/classifier.safetensors")
    os.remove(out .. "/classifier_run/snapshot_cycle2.safetensors")
    local sok, serr = introspect(dir, out)
    local restarted = lm.load(out .. "/trajectories.safetensors")
    -- --fresh with one cycle draws no trajectories: the last run's figure goes, and one put there is not linked
    local fok, ferr = introspect(dir, out, {"--fresh", "--cycles", "1"})
    local gone = not io.open(out .. "/trajectories.png")
    lm.write_file(out .. "/trajectories.png", "stale")
    local cok, cerr = introspect(dir, out, {"--cycles", "1"})
    local f = assert(io.open(out .. "/index.html"))
    local index = f:read("a")
    f:close()
    for _, run in ipairs{{rok, rerr, resumed}, {sok, serr, restarted}} do
      truthy(run[1], run[2])
      eq(run[3].cycle3, nil)
      for _, k in ipairs{"cycle1", "cycle2"} do eq((run[3][k] - first[k]):abs():max():item(), 0, k) end
    end
    truthy(fok, ferr)
    truthy(gone, "--fresh removed trajectories.png")
    truthy(cok, cerr)
    truthy(index:find("map_error.png", 1, true) and not index:find("trajectories.png", 1, true), index)
  end)

  it("are recorded with the options in effect, bandwidths as numbers", function()
    local dir = data_folder()
    local out = dir .. "/out"
    -- --paper-period without --paper does nothing; 1000.0 is the default's 1000
    local ok, err = introspect(dir, out, {"--paper-period", "50", "--bandwidths", "0.1,1,10,100,1000.0"})
    local recorded = study.run_options(out)
    local pok, perr = introspect(dir, out)
    -- an older Lumen recorded the list as its command-line text: the same list
    local older = study.run_options(out)
    older.bandwidths = "0.1,1,10,100,1000"
    lm.json.write(out .. "/options.json", older)
    local ook, oerr = introspect(dir, out)
    local bok, berr = introspect(dir, out, {"--bandwidths", "0.1,1,10,100"})
    os.execute("rm -rf '" .. dir .. "'")
    truthy(ok, err)
    truthy(ook, oerr)
    eq(recorded.paper_period, nil)
    same(recorded.bandwidths, {0.1, 1, 10, 100, 1000})
    truthy(pok, perr)
    eq(bok, false)
    truthy(berr:find("holds models made with --bandwidths 0.1,1,10,100,1000 (this run: 0.1,1,10,100)", 1, true), berr)
  end)

  it("report counts as integers and the accuracy exactly; a damaged options.json by its name", function()
    local dir, out = copy_of_base()
    local function read(name)
      local f = assert(io.open(out .. "/" .. name))
      local text = f:read("a")
      f:close()
      return text
    end
    local metrics = lm.json.decode(read("metrics.json"))
    local text = read("options.json")
    lm.write_file(out .. "/options.json", text:sub(1, 40))
    local dok, derr = introspect(dir, out)
    eq(math.type(metrics.misclassified), "integer")
    eq(metrics.classifier_test_accuracy, (200 - metrics.misclassified) / 200)
    eq(dok, false)
    truthy(derr:find("^" .. (out .. "/options.json is damaged (json: "):gsub("%p", "%%%0")), derr)
  end)

  it("are all gone after --fresh, metrics.json too, even when the run then fails", function()
    local dir = os.tmpname()
    os.remove(dir)
    local out = dir .. "/out"
    lm.mkdir(out)
    lm.json.write(out .. "/metrics.json", {seed = 5})
    local ok = introspect(dir .. "/no-data", out, {"--fresh"})
    local left = io.open(out .. "/metrics.json")
    os.execute("rm -rf '" .. dir .. "'")
    eq(ok, false)
    truthy(not left, "metrics.json removed")
  end)

  it("fingerprint a data set's files by their sizes and ends", function()
    local path = os.tmpname()
    local function write(bytes) local f = assert(io.open(path, "wb")); f:write(bytes); f:close() end
    local MiB = 2 ^ 20
    write(string.rep("a", 3 * MiB))
    local before = study.files_fingerprint{path}
    write(string.rep("a", 3 * MiB - 1) .. "b")
    local last_byte = study.files_fingerprint{path}
    write(string.rep("a", 3 * MiB + 8))
    local longer = study.files_fingerprint{path}
    write(string.rep("a", 3 * MiB))
    local again = study.files_fingerprint{path}
    os.remove(path)
    eq(again, before)
    truthy(last_byte ~= before and longer ~= before and longer ~= last_byte, "each change tells")
  end)
end)
