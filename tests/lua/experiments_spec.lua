-- The small bundled experiments run and reach their goal.
local lm = require 'lumen'

-- Runs an experiment file with the given command-line arguments, its
-- printing silenced; returns pcall's status and error.
local function run_experiment(path, args)
  local saved_arg, print_ = _G.arg, print
  _G.arg = args or {}
  print = function() end
  local ok, err = pcall(dofile, path)
  print = print_
  _G.arg = saved_arg
  return ok, err
end

describe("experiments", function()
  it("custom_layer.lua trains a Lua-defined layer and a custom backward", function()
    RESULT = nil
    local ok, err = run_experiment("experiments/custom_layer.lua")
    truthy(ok, err)
    truthy(RESULT and RESULT < 1e-3, "final loss " .. tostring(RESULT))
  end)

  -- A generated CIFAR-10 folder in a new temporary directory: 5 training
  -- batches of n records, a test batch of 8; returns the directory.
  local function cifar_folder(n)
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir .. "/cifar10")
    local function batch(name, count, seed)
      local out = {}
      for i = 1, count do
        local label = (i + seed) % 10
        out[i] = string.char(label) .. string.rep(string.char((label * 25 + i) % 256), 3072)
      end
      local f = assert(io.open(dir .. "/cifar10/" .. name, "wb"))
      f:write(table.concat(out))
      f:close()
    end
    for b = 1, 5 do batch("data_batch_" .. b .. ".bin", n, b) end
    batch("test_batch.bin", 8, 0)
    return dir
  end

  it("net2_cifar10.lua runs training steps of the paper's Net2 on the CPU", function()
    local dir = cifar_folder(16)
    RESULT = nil
    local ok, err = run_experiment("experiments/net2_cifar10.lua",
      {"--data-dir", dir, "--steps", "2", "--batch", "8", "--width", "0.1", "--out", dir .. "/out"})
    os.execute("rm -rf " .. dir)
    truthy(ok, err)
    truthy(RESULT and RESULT.last_loss == RESULT.last_loss and RESULT.last_loss < 5, "a finite loss")
  end)

  it("introspect_cifar10.lua maps a saved Net2's dense layers, and says how to get one", function()
    local dir = cifar_folder(40)
    local ok, err = run_experiment("experiments/introspect_cifar10.lua",
      {"--data-dir", dir, "--model", dir .. "/none.safetensors", "--out", dir .. "/out"})
    eq(ok, false)
    truthy(tostring(err):find("no trained Net2 at " .. dir .. "/none.safetensors", 1, true), err)
    truthy(tostring(err):find("net2_cifar10.lua --device cuda", 1, true), err)
    lm.manual_seed(3)
    lm.models.net2{width = 0.1}:save(dir .. "/net2.safetensors")
    RESULT = nil
    ok, err = run_experiment("experiments/introspect_cifar10.lua",
      {"--data-dir", dir, "--model", dir .. "/net2.safetensors", "--width", "0.1", "--ae-epochs", "1",
       "--est-epochs", "1", "--out", dir .. "/out"})
    local map_ok, map_err, map_result = ok, err, RESULT
    -- FGSM paths on that map
    RESULT = nil
    local fok, ferr = run_experiment("experiments/fgsm_cifar10.lua",
      {"--data-dir", dir, "--model", dir .. "/net2.safetensors", "--width", "0.1", "--from", dir .. "/out",
       "--out", dir .. "/fgsm", "--steps", "3", "--sample", "2"})
    local fgsm = RESULT
    local fh = io.open(dir .. "/fgsm/fgsm_paths.png", "rb")
    local fgsm_png = fh ~= nil
    if fh then fh:close() end
    ok, err, RESULT = map_ok, map_err, map_result
    local have = {}
    for _, f in ipairs{"index.html", "atlas.html", "map_test.png", "map_error.png", "autoencoder.safetensors"} do
      local fh = io.open(dir .. "/out/" .. f, "rb")
      have[#have + 1] = fh and f or nil
      if fh then fh:close() end
    end
    os.execute("rm -rf " .. dir)
    truthy(ok, err)
    eq(#have, 5, "files written: " .. table.concat(have, ", "))
    eq(RESULT.model, "Net2")
    truthy(RESULT.classifier_test_accuracy_first1000 ~= nil, "the test accuracy is reported")
    truthy(fok, ferr)
    truthy(fgsm_png, "fgsm_paths.png written")
    eq(fgsm.sample, 2)
    truthy(fgsm.success_rate >= 0 and fgsm.success_rate <= 1)
  end)

  it("introspect_mnist.lua runs every stage on a small generated data set", function()
    local dir = os.tmpname()
    os.remove(dir)
    dofile("tests/helpers/fake_mnist.lua").write(dir, 600, 200)
    RESULT = nil
    local ok, err = run_experiment("experiments/introspect_mnist.lua",
      {"--data-dir", dir, "--cycles", "2", "--ae-epochs", "2", "--est-epochs", "2",
       "--trajectory-samples", "50", "--out", dir .. "/out"})
    local main_ok, main_err, main_result = ok, err, RESULT
    -- the analyses run over the cached models of that run
    RESULT = nil
    local aok, aerr = run_experiment("experiments/analyses_mnist.lua",
      {"--data-dir", dir, "--from", dir .. "/out", "--out", dir .. "/analyses", "--grid", "30",
       "--fgsm-steps", "20", "--detection-samples", "100", "--noise-sample", "3", "--noisy", "skip"})
    local analyses = RESULT
    local afiles = {}
    for _, f in ipairs{"index.html", "atlas.html", "analyses.json", "detection.md", "expected_activations.png", "brainbow.png",
      "fgsm_paths.png", "violins.png", "risk_coverage.png", "sample_patterns.png", "sample_points.png",
      "noise_constellations.png"} do
      local fh = io.open(dir .. "/analyses/" .. f, "rb")
      if fh then afiles[#afiles + 1] = f; fh:close() end
    end
    ok, err, RESULT = main_ok, main_err, main_result
    local files = {}
    for _, f in ipairs{"index.html", "atlas.html", "metrics.json", "map_train.png", "map_test.png", "map_error.png",
      "trajectories.png", "classifier.safetensors", "autoencoder.safetensors", "estimator.safetensors"} do
      local fh = io.open(dir .. "/out/" .. f, "rb")
      files[f] = fh ~= nil
      if fh then fh:close() end
    end
    os.execute("rm -rf " .. dir)
    truthy(ok, err)
    for f, present in pairs(files) do truthy(present, f .. " written") end
    for _, k in ipairs{"classifier_test_accuracy", "latent_knn10_accuracy", "auroc_correct",
      "auroc_correct_baseline", "estimator_mse_log10"} do
      truthy(type(RESULT[k]) == "number" and RESULT[k] == RESULT[k], k .. " is a number: " .. tostring(RESULT[k]))
    end
    truthy(RESULT.classifier_test_accuracy > 0.2, "the classifier learned the generated classes: "
      .. RESULT.classifier_test_accuracy)
    truthy(aok, aerr)
    eq(#afiles, 12, "analyses files: " .. table.concat(afiles, ", "))
    local c = analyses.expected_activations.decoded_vs_class_means
    truthy(c.correlation == c.correlation and c.relative_error >= 0, "decoded vs direct compared")
    local units = 0
    for _, n in ipairs(analyses.expected_activations.units_per_class) do units = units + n end
    eq(units, 2400, "every unit has a class")
    truthy(analyses.fgsm.success_rate >= 0 and analyses.fgsm.success_rate <= 1)
    truthy(analyses.detection["misclassified vs correct"].e_hat.auroc ~= nil)
  end)
end)

