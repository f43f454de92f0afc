-- The paper's analyses of the mapped Net1 (Fig. 3, 6, 7) and two beyond it,
-- over the models the main experiment cached (run
-- experiments/introspect_mnist.lua first):
--   lumen experiments/analyses_mnist.lua [--from DIR] [--out DIR] [--data-dir DIR]
--        [--grid N] [--fgsm-sample I] [--fgsm-samples LIST] [--fgsm-steps N] [--fgsm-eps E]
--        [--seed S] [--pattern-samples LIST] [--noise-sample I] [--noisy-from DIR]
--        [--noisy train|skip]
-- Test images are 1-based (the paper's 0-based #907 is 908 here); a LIST is
-- indices and ranges, e.g. 1-40 or 3,7,10-12.
--
-- Writes to --out (default results/analyses_mnist), with numbers in
-- analyses.json (also the chunk's return value) and links in index.html:
--   expected_activations.png  E[h|H_k] per class in the reordered network, each layer
--                             normalised to 1 (Eq. 6-10, Fig. 3)
--   brainbow.png              the network before and after reordering (Eq. 11)
--   sample_patterns.png       the test images --pattern-samples (default the first 40),
--                             each with its activation pattern and its own map point,
--   sample_points.png         and all of them on one map (Fig. 4)
--   noise_constellations.png  200 noisy copies of one image on the map, and accuracy
--                             against sigma (Fig. 5); with the noise-trained Net1 of
--                             introspect_mnist.lua --noise-max 1 --out DIR beside it
--                             (--noisy-from DIR, default results/introspect_mnist_noisy;
--                             trained here when missing unless --noisy skip)
--   fgsm_paths.png            targeted FGSM from one test sample to every other class
--   fgsm_six.png              the same from each of the test images --fgsm-samples
--                             (default the first six), in one figure (Fig. 6)
--   violins.png               e_hat of correct and wrong test samples per class (Fig. 7 top)
--   risk_coverage.png         accuracy when rejecting the least confident inputs
--   detection.md              how well each score flags errors, noise and FGSM inputs
--   atlas.html                the interactive map with the constellations and FGSM
--                             paths as overlays, units sorted by the decoded E[h|H_k]
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect
local A = require 'lumen.introspect.analyses'
local Fig = require 'lumen.introspect.figures'
local study = require 'lumen.introspect.study'
local plot = lm.plot

local opts, given = cli.parse(arg, {from = "results/introspect_mnist", out = "results/analyses_mnist", data_dir = "",
  data = "mnist", grid = 100, fgsm_sample = 1, fgsm_steps = 100, fgsm_eps = 0.01, seed = 1,
  detection_samples = 2000, pattern_samples = "1-40", fgsm_samples = "1-6", noise_sample = 908,
  noisy_from = "results/introspect_mnist_noisy", noisy = "train"},
  "The paper's analyses of a mapped Net1: lumen experiments/analyses_mnist.lua [options]\n"
    .. "(--data defaults to the data set of the run in --from)")
cli.check(opts, {data = {"mnist", "fashion"}, noisy = {"train", "skip"}, grid = "count", fgsm_sample = "count",
  fgsm_steps = "count", fgsm_eps = "positive", seed = "count0", detection_samples = "count", noise_sample = "count"})
opts.data = study.run_data(opts.from, given.data and opts.data)
if study.same_folder(opts.out, opts.from) then
  cli.usage_error("--out %s is the run in --from: its index.html and atlas.html would be overwritten", opts.out)
end
study.require_mnist_run(opts.from, "analyses_mnist") -- before the output folder is made
lm.mkdir(opts.out)
lm.manual_seed(opts.seed)

local t_start = lm.clock()
local d = lm.data.mnist{kind = opts.data, dir = opts.data_dir ~= "" and opts.data_dir or nil}
-- the run's own split (its seed, from its options.json): the training
-- latents must not take in the run's validation images
local train_set = lm.data.split(d.train, {fraction = 0.1, seed = study.run_seed(opts.from, "analyses_mnist", d.name)})
local test = d.test
-- a Net1, its recorder and the map a run of the main experiment cached in `dir`
local function load_run(dir)
  local m = {net = lm.models.net1()}
  m.net:load(dir .. "/classifier.safetensors")
  m.net:evaluate()
  m.recorder = I.Recorder(m.net)
  m.vae, m.est = study.load_map(dir, m.recorder, train_set.x:narrow(1, 1, 1))
  return m
end
local main = load_run(opts.from)
local net, recorder, vae, est = main.net, main.recorder, main.vae, main.est
local layer_sizes = recorder.layer_sizes -- 200 units in each of Net1's 12 hidden layers

local H_train, Y_train = recorder:record_set(train_set.x)
local Z_train = vae:encode_all(H_train)
local H_test, Y_test = recorder:record_set(test.x)
local Z_test = vae:encode_all(H_test)
local E_test = I.estimate(est, Z_test)
local pred = Y_test:argmax(2)
local correct_t = pred:eq(test.y)
local results = {data = d.name, from = opts.from}
for _, name in ipairs{"fgsm_sample", "noise_sample"} do
  if opts[name] < 1 or opts[name] > test.x:size(1) then
    error(string.format("analyses_mnist: --%s %d is not a test image (1..%d)", (name:gsub("_", "-")), opts[name],
      test.x:size(1)), 0)
  end
end
local K = #d.classes
local pattern_samples = Fig.parse_indices(opts.pattern_samples, "analyses_mnist: --pattern-samples")
local fgsm_samples = Fig.parse_indices(opts.fgsm_samples, "analyses_mnist: --fgsm-samples")
for _, list in ipairs{{"pattern-samples", pattern_samples}, {"fgsm-samples", fgsm_samples}} do
  for _, i in ipairs(list[2]) do
    if i > test.x:size(1) then
      error(string.format("analyses_mnist: --%s: %d is not a test image (1..%d)", list[1], i, test.x:size(1)), 0)
    end
  end
end

-- ---- 1. expected activations and unit sorting (Eq. 6-10) ------------------------------------------
local grid = A.grid{lim = 4, size = opts.grid}
local Eh, Ez, bws = A.expected_activations(vae, Z_train, train_set.y, K, grid)
local direct = A.class_means(H_train, train_set.y, K)
local cmp = A.compare(Eh, direct)
local orders = A.sort_units(Eh, layer_sizes)
local classes_of_units = A.unit_classes(Eh):totable()
local per_class_units = {}
for k = 1, K do per_class_units[k] = 0 end
for _, c in ipairs(classes_of_units) do per_class_units[c] = per_class_units[c] + 1 end
results.expected_activations = {grid = opts.grid, lim = grid.lim, kde_bandwidths = bws,
  decoded_vs_class_means = cmp, units_per_class = per_class_units, expected_latents = Ez:totable()}
print(string.format("E[h|H_k]: decoded vs class means: correlation %.3f, relative error %.3f",
  cmp.correlation, cmp.relative_error))

-- the ten per-class panels of the reordered network, each layer normalised to
-- 1 over the ten classes as in the paper (Fig. 3)
local fig3 = Fig.expected_activations(opts.out .. "/expected_activations.png", {Eh = Eh,
  layer_sizes = layer_sizes, orders = orders, classes = d.classes,
  title = "Expected activations E[h | class] of the reordered Net1, each layer normalised to 1 " ..
    "(rows: layers 1-12, bottom to top)"})
results.expected_activations.layer_max = fig3.layer_max

-- ---- 2. brainbow (Eq. 11) ---------------------------------------------------------------------------
-- the paper's Eq. 11, each layer scaled to full intensity (A.brainbow's mode 'eq11')
local colours = A.brainbow(Eh, plot.CLASS_COLORS, {layer_sizes = layer_sizes})
local bfig = plot.figure{width = 1100, height = 640,
  title = "Artificial brainbow (Eq. 11): Net1's units coloured by the classes that drive them"}
local left = bfig:axes{rect = {60, 70, 450, 500}, title = "as trained", xlim = {0, 1}, ylim = {0, 12},
  xlabel = "units of a layer", ylabel = "layer", yticks = 6}
A.draw_network(left, colours, layer_sizes)
local right = bfig:axes{rect = {560, 70, 450, 500}, title = "units sorted by class", xlim = {0, 1}, ylim = {0, 12},
  xlabel = "units of a layer", yticks = 6}
A.draw_network(right, colours, layer_sizes, orders)
local legend = {}
for k, name in ipairs(d.classes) do legend[k] = {name, plot.CLASS_COLORS[k]} end
right:legend(legend, "outside")
bfig:save(opts.out .. "/brainbow.png")

-- ---- 3. sample activation patterns (Fig. 4) -------------------------------------------------------
do
  local samples = Fig.sample_grid(opts.out .. "/sample_patterns.png", {recorder = recorder, vae = vae, est = est,
    x = test.x, labels = test.y, indices = pattern_samples, layer_sizes = layer_sizes, orders = orders,
    classes = d.classes, background = Z_test:narrow(1, 1, math.min(2000, Z_test:size(1))),
    title = string.format("%d test images: label -> prediction, activations in the reordered Net1 (each layer " ..
      "normalised to 1), and the image's place on the map", #pattern_samples)})
  -- all of them on one map
  local mfig = plot.figure{width = 760, height = 640,
    title = "The same images on the map (numbers: test index; black: misclassified)"}
  local max_ = mfig:axes{rect = {70, 50, 540, 540}, xlabel = "z1", ylabel = "z2", xlim = {-4, 4}, ylim = {-4, 4}}
  max_:scatter(Z_test:select(2, 1), Z_test:select(2, 2), {color = 0xB0B0B060, radius = 1})
  local lab_t = test.y:totable()
  for _, s in ipairs(samples) do
    local wrong_one = s.label ~= s.prediction
    max_:scatter({s.z[1]}, {s.z[2]}, {color = wrong_one and 0x000000FF or plot.CLASS_COLORS[lab_t[s.index]],
      radius = 4, outline = wrong_one and 0xFF2020FF or 0x000000FF})
    max_:text(s.z[1] + 0.08, s.z[2] + 0.08, tostring(s.index), {size = 11})
  end
  local keys = {}
  for k, name in ipairs(d.classes) do keys[k] = {name, plot.CLASS_COLORS[k]} end
  keys[#keys + 1] = {"misclassified", 0x000000FF}
  max_:legend(keys, "outside")
  mfig:save(opts.out .. "/sample_points.png")
  results.sample_patterns = {samples = samples}
end

-- ---- 4. noise constellations (Fig. 5) ---------------------------------------------------------------
local constellation -- Net1's, for the atlas
local sigmas = {0.05, 0.1, 0.2, 0.3}
local sweep = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}
do
  -- a Net1 trained with domain randomisation (docs/analyses/noise.md): its
  -- run is made here the first time (--noisy train, about 6 minutes on 2
  -- cores) unless --noisy skip
  local noisy_estimator = opts.noisy_from .. "/estimator.safetensors"
  if study.missing{noisy_estimator} and opts.noisy == "train" then
    print("== training and mapping a Net1 with noise injection (sigma in [0, 1]) into " .. opts.noisy_from)
    study.mnist{noise_max = 1, out = opts.noisy_from, data = opts.data, seed = opts.seed, data_dir = opts.data_dir}
  end
  local noisy = not study.missing{noisy_estimator} and load_run(opts.noisy_from) or nil
  if noisy then -- a noise-trained run of the same data set
    study.run_seed(opts.noisy_from, "analyses_mnist (--noisy-from)", d.name)
    local ran = study.run_options(opts.noisy_from)
    if ran and (ran.noise_max or 0) <= 0 then
      error(string.format("analyses_mnist: %s is a run without noise (--noise-max %s), not a noise-trained Net1",
        opts.noisy_from, tostring(ran.noise_max)), 0)
    end
  end
  local columns = noisy and 2 or 1
  local nfig = plot.figure{width = math.max(560 * columns + 20, 980), height = 1130,
    title = string.format("Noise constellations of test image %d (a %s): 200 noisy copies per sigma; "
      .. "background: estimated log10 error (yellow: high)",
      opts.noise_sample, d.classes[test.y[opts.noise_sample]])}
  local noise_results = {sample = opts.noise_sample}
  local function panel(rect, m, title)
    return A.constellation_panel(nfig, rect, {recorder = m.recorder, vae = m.vae, est = m.est,
      x = test.x:narrow(1, opts.noise_sample, 1), sigmas = sigmas, n = 200, title = title})
  end
  noise_results.standard, constellation = panel({70, 60, 460, 460}, main, "Net1")
  if noisy then
    noise_results.noise_trained = panel({630, 60, 460, 460}, noisy, "Net1 trained with noise (sigma in [0, 1])")
  end
  -- accuracy against sigma over the whole test set
  local ax = nfig:axes{rect = {70, 700, 460 + (columns - 1) * 560, 360}, xlabel = "sigma of the added noise",
    ylabel = "test accuracy", title = "Accuracy under noise"}
  local acc = A.accuracy_under_noise(net, test, sweep)
  ax:line(sweep, acc, {color = plot.CLASS_COLORS[1], marker = true})
  local legend_items = {{"Net1", plot.CLASS_COLORS[1]}}
  noise_results.accuracy = {sigma = sweep, standard = acc}
  if noisy then
    local acc2 = A.accuracy_under_noise(noisy.net, test, sweep)
    ax:line(sweep, acc2, {color = plot.CLASS_COLORS[2], marker = true})
    legend_items[2] = {"Net1 trained with noise", plot.CLASS_COLORS[2]}
    noise_results.accuracy.noise_trained = acc2
  end
  ax:legend(legend_items, "lower left")
  nfig:save(opts.out .. "/noise_constellations.png")
  results.noise = noise_results
end

-- ---- 5. targeted FGSM paths (Fig. 6) ------------------------------------------------------------
local sample = opts.fgsm_sample
local fgsm_paths
results.fgsm, fgsm_paths = A.fgsm_figure(opts.out .. "/fgsm_paths.png", {net = net, recorder = recorder, vae = vae,
  est = est, x = test.x:narrow(1, sample, 1), label = test.y[sample], classes = d.classes,
  steps = opts.fgsm_steps, eps = opts.fgsm_eps,
  title = string.format("Targeted FGSM from test sample %d (a %s): %d steps of %.3g", sample,
    d.classes[test.y[sample]], opts.fgsm_steps, opts.fgsm_eps)})
results.fgsm.sample = sample
print(string.format("FGSM from test sample %d: %.0f %% of the targets reached", sample,
  100 * results.fgsm.success_rate))
-- Fig. 6: several test images in one figure
results.fgsm_six = Fig.fgsm_grid(opts.out .. "/fgsm_six.png", {net = net, recorder = recorder, vae = vae, est = est,
  x = test.x, labels = test.y, indices = fgsm_samples, classes = d.classes, steps = opts.fgsm_steps,
  eps = opts.fgsm_eps, title = string.format("Targeted FGSM from %d test images to every other class: " ..
    "%d steps of %.3g (markers: the prediction flips)", #fgsm_samples, opts.fgsm_steps, opts.fgsm_eps)})
for _, r in ipairs(results.fgsm_six) do
  print(string.format("FGSM from test image %d (a %s): %d of %d targets reached", r.index, r.label, r.reached, K - 1))
end

-- ---- 6. reliability violins (Fig. 7) -----------------------------------------------------------------
local by_class = Fig.violins(opts.out .. "/violins.png", {log_e_hat = E_test, labels = test.y, predictions = pred,
  classes = d.classes,
  title = "Estimated log10 error per class: correct (colour) and wrong (dark grey) test samples; sensitivity above"})
local sens = {}
for k = 1, K do sens[d.classes[k]] = by_class[k].sensitivity end
results.sensitivity = sens

-- ---- 8. risk-coverage ----------------------------------------------------------------------------------
local correct = {}
for i, v in ipairs(correct_t:totable()) do correct[i] = v == 1 end
local confidence = (-E_test):totable()
local baseline = I.baseline_scores(net, test.x) -- max-sigmoid's order, from the logits (no float32 ties)
local cov_c, acc_c = A.risk_coverage(confidence, correct, 50)
local cov_b, acc_b = A.risk_coverage(baseline, correct, 50)
local rfig = plot.figure{width = 760, height = 520, title = "Accuracy when rejecting the least confident test inputs"}
local rax = rfig:axes{xlabel = "coverage (fraction of inputs kept)", ylabel = "accuracy on kept inputs"}
rax:line(cov_c, acc_c, {color = plot.CLASS_COLORS[1]})
rax:line(cov_b, acc_b, {color = plot.CLASS_COLORS[2], dashed = true})
rax:legend({{"c = -log10 e_hat", plot.CLASS_COLORS[1]}, {"max sigmoid", plot.CLASS_COLORS[2]}}, "lower left")
rfig:save(opts.out .. "/risk_coverage.png")
local at = A.accuracy_at_coverage
results.risk_coverage = {estimator = {at_90 = at(cov_c, acc_c, 0.9), at_80 = at(cov_c, acc_c, 0.8)},
  max_sigmoid = {at_90 = at(cov_b, acc_b, 0.9), at_80 = at(cov_b, acc_b, 0.8)}}

-- ---- 7. detection benchmark ---------------------------------------------------------------------------
-- the estimator's log10 e_hat, the reconstruction error, -log p(z) under a
-- kernel density of 5,000 training latents and the max-sigmoid baseline,
-- each flagging the misclassified, noisy (sigma 0.3) and FGSM inputs
-- (docs/analyses/detection.md)
local bench = A.detection_benchmark{net = net, recorder = recorder, vae = vae, est = est, x = test.x, y = test.y,
  correct = correct_t, n = opts.detection_samples, classes = K,
  reference = Z_train:narrow(1, 1, math.min(5000, Z_train:size(1)))}
results.detection, results.detection_note = bench.detection, bench.note
lm.write_file(opts.out .. "/detection.md",
  "# Detection benchmark\n\n" .. bench.note .. "\n\n" .. bench.markdown .. "\n")
print(bench.markdown)

-- ---- the atlas, with the constellations and FGSM paths as overlays ------------------------------------
do
  local overlays = {}
  for k, b in ipairs(constellation.by_sigma) do
    overlays[#overlays + 1] = {name = string.format("noise constellation of test %d (a %s), sigma %.2f",
      opts.noise_sample, d.classes[test.y[opts.noise_sample]], b.sigma),
      kind = "points", z = b.z,
      color = plot.with_alpha(plot.viridis(0.15 + 0.8 * (k - 1) / (#constellation.by_sigma - 1)), 0.8)}
  end
  for _, p in ipairs(fgsm_paths) do
    overlays[#overlays + 1] = {name = string.format("FGSM path of test %d (a %s) to class %s%s", sample,
      d.classes[test.y[sample]], d.classes[p.target],
      p.flip and (" (flips at step " .. p.flip .. ")") or " (target not reached)"), kind = "path", z = p.z,
      color = plot.CLASS_COLORS[p.target]}
  end
  study.atlas(opts.out .. "/atlas.html", {name = "Net1", data = d, recorder = recorder, est = est, Eh = Eh,
    train = train_set, test = test, H_train = H_train, Y_train = Y_train, Z_train = Z_train,
    H_test = H_test, Y_test = Y_test, Z_test = Z_test, overlays = overlays})
end

results.seconds = lm.clock() - t_start
lm.json.write(opts.out .. "/analyses.json", results)
local html = {"<!doctype html><html><head><meta charset='utf-8'><title>Lumen: analyses of Net1</title>",
  "<style>body{font-family:sans-serif;max-width:1150px;margin:2em auto}" ..
  "img{max-width:100%;border:1px solid #ddd}</style></head><body>",
  "<h1>Analyses of Net1 on " .. d.name .. "</h1><p>Numbers: <a href='analyses.json'>analyses.json</a>, " ..
  "<a href='detection.md'>detection.md</a>; the interactive <a href='atlas.html'>atlas</a> with the constellations " ..
  "and FGSM paths as overlays</p>"}
for _, f in ipairs{"expected_activations.png", "brainbow.png", "sample_patterns.png", "sample_points.png",
    "noise_constellations.png", "fgsm_paths.png", "fgsm_six.png", "violins.png", "risk_coverage.png"} do
  html[#html + 1] = string.format("<h2>%s</h2><img src='%s'>", f, f)
end
html[#html + 1] = "</body></html>\n"
lm.write_file(opts.out .. "/index.html", table.concat(html, "\n"))
print(string.format("analyses: %.1f s; report: %s/index.html", results.seconds, opts.out))
return results
