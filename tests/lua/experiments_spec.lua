-- The small bundled experiments run and reach their goal.
local lm = require 'lumen'

-- runs an experiment in this process, its printing silenced
local run_experiment = dofile("tests/helpers/run_experiment.lua")

describe("experiments", function()
  it("custom_layer.lua trains a Lua-defined layer and a custom backward", function()
    local ok, final = run_experiment("experiments/custom_layer.lua")
    truthy(ok, final)
    truthy(final < 1e-3, "final loss " .. tostring(final))
  end)

  -- A generated CIFAR-10 folder (tests/helpers/fake_cifar.lua) in a new
  -- temporary directory: 5 training batches of n records, a test batch of
  -- 8; returns the directory.
  local function cifar_folder(n)
    local dir = os.tmpname()
    os.remove(dir)
    return dofile("tests/helpers/fake_cifar.lua").write(dir, n, 8)
  end

  it("net2_cifar10.lua trains the paper's Net2 on the CPU: the loss falls from its initial value", function()
    local dir = cifar_folder(40)
    local ok, result = run_experiment("experiments/net2_cifar10.lua",
      {"--data-dir", dir, "--steps", "10", "--batch", "8", "--width", "0.1", "--lr-max", "2e-3",
       "--period-epochs", "1", "--out", dir .. "/out"})
    os.execute("rm -rf " .. dir)
    truthy(ok, result)
    -- sigmoid outputs near 0.5 against one-hot targets: 1/2 (9 * 0.25 + 0.25) = 1.25
    truthy(result.first_loss > 1.0 and result.first_loss < 1.6, "initial loss near 1.25: " .. result.first_loss)
    -- measured 0.49-0.55 after 10 steps for seeds 1-3; an optimiser or a
    -- backward that does nothing stays near 1.25
    truthy(result.last_loss < 0.7 * result.first_loss, string.format("loss %.3f -> %.3f", result.first_loss,
      result.last_loss))
  end)

  it("train_cifar10.lua trains ResNet-18 with augmentation, in float32 and under autocast", function()
    local dir = cifar_folder(40)
    local args = {"--data-dir", dir, "--steps", "36", "--batch", "16", "--width", "4", "--epochs", "3",
      "--lr", "0.2", "--lr-min", "0.02", "--out", dir .. "/out"}
    local ok, result = run_experiment("experiments/train_cifar10.lua", args)
    args[#args + 1] = "--autocast"
    args[#args + 1] = "bfloat16"
    local bok, bresult = run_experiment("experiments/train_cifar10.lua", args)
    os.execute("rm -rf " .. dir)
    truthy(ok, result)
    truthy(bok, bresult)
    -- ten classes: cross-entropy starts near log 10 = 2.30; the grey level
    -- of each class is learnt in one cycle (measured for seeds 1-3: 0.42-0.63
    -- of the first loss after 36 steps, either precision; a backward or an
    -- optimiser that does nothing stays near 2.3, within batch noise of 0.2)
    for _, r in ipairs({result, bresult}) do
      truthy(r.first_loss > 1.8 and r.first_loss < 3.2, "initial loss near log 10: " .. r.first_loss)
      truthy(r.last_loss < 0.75 * r.first_loss, string.format("loss %.3f -> %.3f", r.first_loss, r.last_loss))
    end
    truthy(bresult.last_loss ~= result.last_loss, "--autocast reaches the model (autocast_spec checks what it does)")
    eq(result.period, 3 * (180 // 16), "one learning-rate cycle over 3 epochs of the 180 training images")
    eq(result.parameters, lm.models.count_parameters(lm.models.resnet18{num_classes = 10, stem = "cifar", width = 4}))
  end)

  it("train_cifar10.lua --arch vit trains the vision transformer with AdamW", function()
    local dir = cifar_folder(40)
    local ok, result = run_experiment("experiments/train_cifar10.lua",
      {"--data-dir", dir, "--arch", "vit", "--steps", "3", "--batch", "16", "--dim", "32", "--depth", "2",
       "--heads", "2", "--mlp-dim", "64", "--epochs", "2", "--out", dir .. "/out"})
    os.execute("rm -rf " .. dir)
    truthy(ok, result)
    eq(result.parameters, lm.models.count_parameters(lm.models.vit{image_size = 32, patch_size = 4,
      num_classes = 10, dim = 32, depth = 2, heads = 2, mlp_dim = 64}))
    truthy(result.first_loss > 1.8 and result.first_loss < 3.2, "initial loss near log 10: " .. result.first_loss)
    -- the transformer's defaults: from 1e-5 up to 1e-3 over 2 epochs of 11 steps, 3 steps in
    near(result.lr, 1e-5 + (1e-3 - 1e-5) * 3 / 11, 1e-12)
  end)

  it("net2_cifar10.lua --paper runs the paper's schedule: cycles of 5000 iterations from 0, 100 of them", function()
    local dir = cifar_folder(40)
    local ok, result = run_experiment("experiments/net2_cifar10.lua",
      {"--data-dir", dir, "--steps", "3", "--batch", "8", "--width", "0.1", "--lr-max", "1e-3", "--paper",
       "--out", dir .. "/out"})
    os.execute("rm -rf " .. dir)
    truthy(ok, result)
    same({result.period, result.cycles, result.out}, {5000, 100, dir .. "/out"})
    -- a rate of 0 at the start of a cycle rising to the peak at its middle: 3 of 2500 steps
    near(result.lr, 1e-3 * 3 / 2500, 1e-12)
  end)

  it("makes no output folder when a prerequisite is missing", function()
    local dir = os.tmpname()
    os.remove(dir)
    local ok, err = run_experiment("experiments/analyses_mnist.lua", {"--from", dir .. "/none", "--out", dir .. "/a"})
    eq(ok, false)
    truthy(tostring(err):find(dir .. "/none/classifier.safetensors is missing", 1, true), err)
    ok, err = run_experiment("experiments/introspect_pytorch.lua", {"--weights", dir .. "/w.safetensors",
      "--out", dir .. "/p"})
    eq(ok, false)
    truthy(tostring(err):find("cannot read the weights " .. dir .. "/w.safetensors", 1, true), err)
    eq(pcall(lm.list_dir, dir), false, "nothing written")
  end)

  it("introspect_cifar10.lua maps a saved Net2's dense layers, and says how to get one", function()
    local dir = cifar_folder(40)
    local ok, err = run_experiment("experiments/introspect_cifar10.lua",
      {"--data-dir", dir, "--model", dir .. "/none.safetensors", "--out", dir .. "/out"})
    eq(ok, false)
    truthy(tostring(err):find("no trained Net2 at " .. dir .. "/none.safetensors", 1, true), err)
    truthy(tostring(err):find("net2_cifar10.lua --device cuda", 1, true), err)
    eq(pcall(lm.list_dir, dir .. "/out"), false, "no output folder is made when the network is missing")
    lm.manual_seed(3)
    lm.models.net2{width = 0.1}:save(dir .. "/net2.safetensors")
    local metrics
    ok, metrics = run_experiment("experiments/introspect_cifar10.lua",
      {"--data-dir", dir, "--model", dir .. "/net2.safetensors", "--width", "0.1", "--ae-epochs", "1",
       "--est-epochs", "1", "--est-period", "10", "--est-cycles", "2", "--out", dir .. "/out"})
    -- FGSM paths on that map
    local fok, fgsm = run_experiment("experiments/fgsm_cifar10.lua",
      {"--data-dir", dir, "--model", dir .. "/net2.safetensors", "--width", "0.1", "--from", dir .. "/out",
       "--out", dir .. "/fgsm", "--steps", "3", "--sample", "2"})
    -- another network, or another width, against that map: refused, naming it
    lm.manual_seed(4)
    lm.models.net2{width = 0.1}:save(dir .. "/other.safetensors")
    local other_ok, other_err = run_experiment("experiments/fgsm_cifar10.lua",
      {"--data-dir", dir, "--model", dir .. "/other.safetensors", "--from", dir .. "/out", "--out", dir .. "/fgsm2",
       "--steps", "3", "--sample", "2"})
    local width_ok, width_err = run_experiment("experiments/fgsm_cifar10.lua",
      {"--data-dir", dir, "--model", dir .. "/net2.safetensors", "--width", "0.2", "--from", dir .. "/out",
       "--out", dir .. "/fgsm2", "--steps", "3", "--sample", "2"})
    local fh = io.open(dir .. "/fgsm/fgsm_paths.png", "rb")
    local fgsm_png = fh ~= nil
    if fh then fh:close() end
    local have = {}
    for _, f in ipairs{"index.html", "atlas.html", "map_test.png", "map_error.png", "autoencoder.safetensors"} do
      local out_file = io.open(dir .. "/out/" .. f, "rb")
      have[#have + 1] = out_file and f or nil
      if out_file then out_file:close() end
    end
    local report = io.open(dir .. "/out/index.html", "rb")
    local report_text = report and report:read("a") or ""
    if report then report:close() end
    -- the saved network's accuracy on the 8 test images, computed here independently
    local net = lm.models.net2{width = 0.1}
    net:load(dir .. "/net2.safetensors")
    net:evaluate()
    local test = lm.data.cifar10{dir = dir}.test
    local pred = lm.no_grad(function() return net(test.x):argmax(2) end):totable()
    local right = 0
    for i, p in ipairs(pred) do if p == test.y[i] then right = right + 1 end end
    os.execute("rm -rf " .. dir)
    truthy(ok, metrics)
    eq(#have, 5, "files written: " .. table.concat(have, ", "))
    -- counts in the report read as counts (they read "1.0000")
    truthy(#report_text > 0 and report_text:find("<td>[%w_]+</td><td>%d+</td>")
      and not report_text:find("<td>%-?%d+%.0000</td>"), "the report's counts: " .. report_text:sub(1, 3000))
    eq(metrics.model, "Net2")
    truthy(metrics.note:find("the map metrics are on", 1, true), metrics.note)
    eq(metrics.cycles.estimator.cycles, 2, "the 2-D estimator in the cyclic regime, its cycle chosen on validation")
    truthy(fok, fgsm)
    truthy(fgsm_png, "fgsm_paths.png written")
    eq(other_ok, false)
    eq(other_err, "fgsm_cifar10: --model is not the network the map in " .. dir .. "/out was made of (that was "
      .. dir .. "/net2.safetensors)")
    eq(width_ok, false)
    eq(width_err, "fgsm_cifar10: the map in " .. dir .. "/out is of a Net2 of width 0.1, not 0.2 (leave out --width)")
    eq(fgsm.sample, 2)
    eq(#pred, 8)
    near(metrics.classifier_test_accuracy_first1000, right / #pred, 1e-9, "test accuracy")
    -- a target is reached when some step predicts it, and the rate is their share
    local reached, n = 0, 0
    for name, t in pairs(fgsm.targets) do
      n = n + 1
      eq(t.success, t.flip_step ~= nil, "target " .. name)
      if t.success then reached = reached + 1; truthy(t.flip_step >= 0 and t.flip_step <= 3, "flip step") end
    end
    eq(n, 9, "one path per other class")
    near(fgsm.success_rate, reached / n, 1e-12, "success rate")
  end)

  it("net2_cifar10.lua records learning trajectories that introspect_cifar10.lua draws (Fig. 2e), " ..
      "with the test set's violins (Fig. 7 bottom)", function()
    local dir = cifar_folder(40)
    local ok, result = run_experiment("experiments/net2_cifar10.lua",
      {"--data-dir", dir, "--cycles", "2", "--subset", "40", "--batch", "8", "--width", "0.1",
       "--period-epochs", "1", "--trajectory-samples", "12", "--out", dir .. "/net2"})
    local traj = ok and lm.load(dir .. "/net2/trajectories.safetensors")
    local iok, metrics = run_experiment("experiments/introspect_cifar10.lua",
      {"--data-dir", dir, "--model", dir .. "/net2/model.safetensors", "--width", "0.1", "--subset", "40",
       "--ae-epochs", "1", "--est-epochs", "1", "--est-period", "10", "--est-cycles", "2", "--out", dir .. "/out"})
    local pngs = {}
    for _, f in ipairs{"trajectories.png", "violins.png"} do
      local fh = io.open(dir .. "/out/" .. f, "rb")
      if fh then pngs[#pngs + 1] = f; fh:close() end
    end
    -- each class's sensitivity on the 8 test images, computed here independently
    local net = lm.models.net2{width = 0.1}
    if ok then net:load(dir .. "/net2/model.safetensors") end
    net:evaluate()
    local test = lm.data.cifar10{dir = dir}.test
    local pred = lm.no_grad(function() return net(test.x):argmax(2) end):totable()
    os.execute("rm -rf " .. dir)
    truthy(ok, result)
    eq(result.cycles_run, 2)
    eq(result.trajectory_cycles, 2, "a snapshot per cycle")
    eq(traj.subset_index:size(1), 12)
    eq(traj.cycle1:shape_string(), "12x1536", "12 images at the three dense layers (3 x 512 units)")
    truthy(traj.cycle3 == nil, "no snapshot beyond the cycles run")
    truthy((traj.cycle1 - traj.cycle2):abs():max():item() > 0, "training moved the activations")
    truthy(iok, metrics)
    eq(metrics.trajectory_cycles, 2)
    eq(table.concat(pngs, ","), "trajectories.png,violins.png")
    local classes = lm.data.CIFAR10_CLASSES
    for k = 1, 10 do
      local n, right = 0, 0
      for i, y in ipairs(test.y:totable()) do
        if y == k then n = n + 1; if pred[i] == k then right = right + 1 end end
      end
      local s = metrics.test_sensitivity[classes[k]]
      if n == 0 then truthy(s ~= s, classes[k] .. " has no test image") else near(s, right / n, 1e-12, classes[k]) end
    end
  end)

  it("introspect_mnist.lua runs every stage on a small generated data set", function()
    local dir = os.tmpname()
    os.remove(dir)
    dofile("tests/helpers/fake_mnist.lua").write(dir, 600, 200)
    local ok, metrics = run_experiment("experiments/introspect_mnist.lua",
      {"--data-dir", dir, "--cycles", "2", "--ae-epochs", "2", "--est-epochs", "2", "--est-period", "20",
       "--est-cycles", "3",
       "--trajectory-samples", "50", "--out", dir .. "/out"})
    -- the analyses run over the cached models of that run
    local test_x = lm.data.mnist{dir = dir}.test.x
    local aok, analyses = run_experiment("experiments/analyses_mnist.lua",
      {"--data-dir", dir, "--from", dir .. "/out", "--out", dir .. "/analyses", "--grid", "30",
       "--fgsm-steps", "20", "--detection-samples", "100", "--noise-sample", "3", "--noisy", "skip"})
    local afiles = {}
    for _, f in ipairs{"index.html", "atlas.html", "analyses.json", "detection.md", "expected_activations.png",
      "brainbow.png", "fgsm_paths.png", "fgsm_six.png", "violins.png", "risk_coverage.png", "sample_patterns.png",
      "sample_points.png", "noise_constellations.png"} do
      local fh = io.open(dir .. "/analyses/" .. f, "rb")
      if fh then afiles[#afiles + 1] = f; fh:close() end
    end
    local files = {}
    for _, f in ipairs{"index.html", "atlas.html", "metrics.json", "map_train.png", "map_test.png", "map_error.png",
      "trajectories.png", "classifier.safetensors", "autoencoder.safetensors", "estimator.safetensors"} do
      local fh = io.open(dir .. "/out/" .. f, "rb")
      files[f] = fh ~= nil
      if fh then fh:close() end
    end
    -- the cached models are reused only for the options that made them
    local sok, serr = run_experiment("experiments/introspect_mnist.lua",
      {"--data-dir", dir, "--cycles", "2", "--ae-epochs", "2", "--est-epochs", "2", "--est-period", "20",
       "--est-cycles", "3", "--trajectory-samples", "50", "--out", dir .. "/out", "--seed", "2", "--mmd-weight", "7"})
    -- --fresh trains the classifier again, with its snapshots: it must not
    -- resume the finished run's checkpoint (which trained nothing and left
    -- the trajectories empty)
    local fok, fresh = run_experiment("experiments/introspect_mnist.lua",
      {"--data-dir", dir, "--cycles", "2", "--ae-epochs", "1", "--est-epochs", "1", "--est-period", "20",
       "--est-cycles", "1", "--trajectory-samples", "50", "--out", dir .. "/out", "--fresh"})
    local traj = fok and lm.load(dir .. "/out/trajectories.safetensors")
    -- --device cuda without a GPU: refused before any stage, saying why
    local cok, cerr = run_experiment("experiments/introspect_mnist.lua",
      {"--data-dir", dir, "--out", dir .. "/out", "--device", "cuda"})
    -- --graph on the CPU: refused the same way
    local gok, gerr = run_experiment("experiments/introspect_mnist.lua",
      {"--data-dir", dir, "--out", dir .. "/out", "--graph"})
    os.execute("rm -rf " .. dir)
    eq(gok, false)
    eq(gerr, "study.mnist: --graph captures the training steps as CUDA graphs: it needs --device cuda "
      .. "and one process")
    if not lm.cuda.available() then
      eq(cok, false)
      eq(cerr, "study.mnist: --device cuda, but " .. lm.cuda.status())
    end
    eq(sok, false)
    eq(serr, "study.mnist: " .. dir .. "/out holds models made with --mmd-weight 500 (this run: 7), --seed 1 "
      .. "(this run: 2); replace them with --fresh, or use another --out")
    truthy(fok, fresh)
    truthy(traj.cycle1 and traj.cycle2 and not traj.cycle3, "a snapshot for each of the 2 cycles after --fresh")
    truthy(ok, metrics)
    for f, present in pairs(files) do truthy(present, f .. " written") end
    for _, k in ipairs{"classifier_test_accuracy", "latent_knn10_accuracy", "auroc_correct",
      "auroc_correct_baseline", "estimator_mse_log10"} do
      truthy(type(metrics[k]) == "number" and metrics[k] == metrics[k], k .. " is a number: " .. tostring(metrics[k]))
    end
    -- chance is 0.1 on ten balanced classes; measured 0.70 after two cycles
    truthy(metrics.classifier_test_accuracy > 0.5, "the classifier learned the generated classes: "
      .. metrics.classifier_test_accuracy)
    eq(metrics.misclassified, math.floor((1 - metrics.classifier_test_accuracy) * 200 + 0.5), "misclassified count")
    -- the map keeps the classes apart (measured 1.0; chance 0.1)
    truthy(metrics.latent_knn10_accuracy > 0.8, "kNN-10 on the map: " .. metrics.latent_knn10_accuracy)
    truthy(aok, analyses)
    eq(#afiles, 13, "analyses files: " .. table.concat(afiles, ", "))
    -- Fig. 3: twelve layers, each normalised by its own maximum
    eq(#analyses.expected_activations.layer_max, 12)
    for l, m in ipairs(analyses.expected_activations.layer_max) do truthy(m > 0, "layer " .. l .. ": " .. m) end
    -- Fig. 4: the first 40 test images, each with its own point on the map
    -- (the generated set repeats some images: only those may share one)
    local samples, seen = analyses.sample_patterns.samples, {}
    eq(#samples, 40)
    for k, s in ipairs(samples) do
      eq(s.index, k)
      local key = string.format("%.6f,%.6f", s.z[1], s.z[2])
      if seen[key] then
        eq((test_x[k] - test_x[seen[key]]):abs():max():item(), 0, "images " .. seen[key] .. " and " .. k ..
          " share a point")
      end
      seen[key] = seen[key] or k
    end
    -- Fig. 6: the first six test images, every target reached or recorded as not
    eq(#analyses.fgsm_six, 6)
    for k, r in ipairs(analyses.fgsm_six) do
      eq(r.index, k)
      local reached, n = 0, 0
      for name, t in pairs(r.targets) do
        n = n + 1
        eq(t.success, t.flip_step ~= nil, "image " .. k .. ", target " .. name)
        if t.success then reached = reached + 1 end
      end
      eq(n, 9)
      eq(r.reached, reached)
      near(r.success_rate, reached / 9, 1e-12)
    end
    -- decoded E[h|H_k] resembles the class means of the recording (measured 0.90)
    local c = analyses.expected_activations.decoded_vs_class_means
    truthy(c.correlation > 0.6, "decoded vs class means correlate: " .. c.correlation)
    local units = 0
    for _, n in ipairs(analyses.expected_activations.units_per_class) do units = units + n end
    eq(units, 2400, "every unit has a class")
    -- targeted FGSM reaches most targets in 20 steps (measured 7 of 9; the
    -- sample starts correctly classified, so no target is reached at step 0)
    local reached, n = 0, 0
    for name, t in pairs(analyses.fgsm.targets) do
      n = n + 1
      eq(t.success, t.flip_step ~= nil, "target " .. name)
      if t.success then reached = reached + 1; truthy(t.flip_step >= 1 and t.flip_step <= 20, "flip step") end
    end
    eq(n, 9, "one path per other class")
    truthy(reached >= 5, reached .. " of 9 targets reached")
    near(analyses.fgsm.success_rate, reached / n, 1e-12, "success rate")
    -- accuracy under noise: at sigma 0 it is the clean accuracy, and heavy noise costs accuracy
    local acc = analyses.noise.accuracy
    eq(acc.sigma[1], 0)
    near(acc.standard[1], metrics.classifier_test_accuracy, 1e-6, "accuracy at sigma 0")
    truthy(acc.standard[#acc.standard] < acc.standard[1] - 0.2, "noise at sigma 1 lowers accuracy")
  end)
end)

