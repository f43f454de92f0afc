-- The main experiment: self-introspection of the paper's Net1 on MNIST.
--   lumen experiments/introspect_mnist.lua [--data mnist|fashion] [--seed S]
--        [--threads T] [--out DIR] [--fresh] [--cycles N] [--ae-epochs N]
--        [--est-epochs N] [--mmd-weight W] [--bandwidths B1,B2,..] [--subset N]
--        [--data-dir DIR]
--
-- Stages (each cached in DIR and reused on a rerun unless --fresh):
--   1. classifier: Net1 trained as in experiments/net1_mnist.lua, recording a
--      fixed seeded subset of 500 training samples at the end of every cycle;
--   2. recording: every hidden ELU output of the training and test sets
--      (2400 values a sample), in evaluation mode;
--   3. autoencoder: an InfoVAE (2400 -> 200 -> 200 -> 200 -> 2 and back) on the
--      standardised recording, reconstruction + mmd_weight x MMD;
--   4. estimator: 2 -> 200 -> 200 -> 200 -> 1 on log10 of the classifier's
--      per-sample error;
--   5. figures, metrics.json and index.html.
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect
local plot = lm.plot

local opts = cli.parse(arg, {data = "mnist", seed = 1, threads = 0, out = "", fresh = false, cycles = 25,
  ae_epochs = 20, est_epochs = 20, mmd_weight = 500, subset = 0, trajectory_samples = 500,
  bandwidths = "0.1,1,10,100,1000", data_dir = ""},
  "Self-introspection of Net1: lumen experiments/introspect_mnist.lua [options]")
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
if opts.out == "" then opts.out = "results/introspect_" .. opts.data end
os.execute("mkdir -p '" .. opts.out .. "'")
if opts.fresh then os.execute("rm -f '" .. opts.out .. "'/*.safetensors") end
lm.manual_seed(opts.seed)

local timings = {}
local function stage(name, fn)
  print("== " .. name)
  local t = lm.clock()
  local results = table.pack(fn())
  timings[name] = lm.clock() - t
  print(string.format("   %s: %.1f s", name, timings[name]))
  return table.unpack(results, 1, results.n)
end

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
  lm.train{model = net, optimizer = opt, schedule = clr, cycles = opts.cycles, train = train_set,
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

-- ---- 2. recording --------------------------------------------------------------------------------
local H_train, Y_train, H_test, Y_test = stage("recording", function()
  local a, b = recorder:record_set(train_set.x)
  local c, e = recorder:record_set(test_set.x)
  return a, b, c, e
end)
print(string.format("   %d x %d activations (train), %d x %d (test)", H_train:size(1), H_train:size(2),
  H_test:size(1), H_test:size(2)))

-- ---- 3. autoencoder --------------------------------------------------------------------------------
local bw
-- A multi-scale MMD kernel (bandwidths times the latent size): with the
-- single kernel of DESIGN.md (bw = 2) the latents drifted to a mean of 36 and a
-- standard deviation of 68, far outside where that narrow kernel has any
-- gradient; summing kernels from 0.1 to 1000 keeps a pull at every distance
-- and gave a latent with mean 0.0 and std 0.99 at the same kNN accuracy.
if opts.bandwidths ~= "" then
  bw = {}
  for v in opts.bandwidths:gmatch("[^,]+") do bw[#bw + 1] = tonumber(v) end
end
local vae = I.InfoVAE{inputs = H_train:size(2), mmd_weight = opts.mmd_weight, bw = bw}
stage("autoencoder", function()
  local path = opts.out .. "/autoencoder.safetensors"
  if exists(path) then vae:load(path); vae:evaluate(); return end
  -- the training-history snapshots join the training recording, so the
  -- trajectories of early cycles lie on the learned map too
  local H_ae = H_train
  if #snapshots > 0 then
    local parts = {H_train}
    for _, s in ipairs(snapshots) do parts[#parts + 1] = s end
    H_ae = lm.cat(parts, 1)
  end
  I.fit_autoencoder(vae, H_ae, {epochs = opts.ae_epochs, seed = opts.seed,
    log = function(e, r) print(string.format("   epoch %d: loss %.4f (%.1f s)", e, r.loss, r.seconds)) end})
  vae:save(path)
end)
local Z_train, Z_test = vae:encode_all(H_train), vae:encode_all(H_test)

-- ---- 4. estimator ------------------------------------------------------------------------------------
local T_train, T_test = I.log_errors(Y_train, train_set.y), I.log_errors(Y_test, test_set.y)
local est = I.Estimator()
stage("estimator", function()
  local path = opts.out .. "/estimator.safetensors"
  if exists(path) then est:load(path); est:evaluate(); return end
  I.fit_estimator(est, Z_train, T_train, {epochs = opts.est_epochs, seed = opts.seed,
    log = function(e, r) print(string.format("   epoch %d: loss %.4f (%.1f s)", e, r.loss, r.seconds)) end})
  est:save(path)
end)
local E_test = I.estimate(est, Z_test)

-- ---- 5. metrics ----------------------------------------------------------------------------------------
local metrics = stage("metrics", function()
  local pred = Y_test:argmax(2)
  local correct_t = pred:eq(test_set.y)
  local correct = {}
  for i, v in ipairs(correct_t:totable()) do correct[i] = v == 1 end
  local confidence = (-E_test):totable()           -- c = -log10(e_hat): high = likely right
  local baseline = Y_test:max(2):totable()         -- max-sigmoid
  local wrong = {}
  for i, c in ipairs(correct) do wrong[i] = not c end
  local neg_conf, neg_base = {}, {}
  for i = 1, #confidence do neg_conf[i], neg_base[i] = -confidence[i], -baseline[i] end
  local recon = lm.no_grad(function()
    local x = vae:prepare(H_test)
    return lm.nn.functional.mse(vae.decoder(vae.encoder(x)), x):item() / H_test:size(2)
  end)
  return {
    data = d.name,
    classifier_test_accuracy = correct_t:mean():item(),
    misclassified = #correct - correct_t:sum():item(),
    autoencoder_reconstruction_per_unit = recon,
    latent_mean = Z_test:mean(1):totable(), latent_std = Z_test:std(1):totable(),
    latent_knn10_accuracy = I.knn_accuracy(Z_test, test_set.y, 10),
    estimator_mse_log10 = lm.nn.functional.mse(E_test:view(-1, 1), T_test:view(-1, 1)):item() * 2,
    auroc_correct = I.auroc(confidence, correct), auroc_correct_baseline = I.auroc(baseline, correct),
    aupr_error = I.aupr(neg_conf, wrong), aupr_error_baseline = I.aupr(neg_base, wrong),
    mmd_weight = opts.mmd_weight, ae_epochs = opts.ae_epochs, seed = opts.seed,
    threads = lm.get_num_threads(), seconds = timings,
  }
end)
for _, k in ipairs{"classifier_test_accuracy", "latent_knn10_accuracy", "auroc_correct", "auroc_correct_baseline",
  "aupr_error", "aupr_error_baseline", "estimator_mse_log10", "autoencoder_reconstruction_per_unit"} do
  print(string.format("   %-36s %.4f", k, metrics[k]))
end
print(string.format("   latent mean (%.2f, %.2f), std (%.2f, %.2f)", metrics.latent_mean[1], metrics.latent_mean[2],
  metrics.latent_std[1], metrics.latent_std[2]))

-- ---- 6. figures --------------------------------------------------------------------------------------
stage("figures", function()
  local function class_colors(labels)
    local c = {}
    for i, l in ipairs(labels:totable()) do c[i] = plot.with_alpha(plot.CLASS_COLORS[l], 0.55) end
    return c
  end
  local legend = {}
  for k, name in ipairs(d.classes) do legend[k] = {name, plot.CLASS_COLORS[k]} end
  local function map(Z, labels, title, path, n)
    n = math.min(n or Z:size(1), Z:size(1))
    local fig = plot.figure{width = 760, height = 640, title = title}
    local ax = fig:axes{rect = {70, 50, 520, 520}, xlabel = "z1", ylabel = "z2", xlim = {-4, 4}, ylim = {-4, 4}}
    local zs = Z:narrow(1, 1, n)
    ax:scatter(zs:select(2, 1), zs:select(2, 2), {colors = class_colors(labels:narrow(1, 1, n)), radius = 1.6})
    ax:legend(legend, "outside")
    fig:save(path)
  end
  map(Z_train, train_set.y, "Activation map: training set by class", opts.out .. "/map_train.png", 20000)
  map(Z_test, test_set.y, "Activation map: test set by class", opts.out .. "/map_test.png")
  -- estimator heat map over [-4, 4]^2 with the test points, misclassified marked
  local grid, G = {}, 80
  local pts = {}
  for i = 1, G do for j = 1, G do pts[#pts + 1] = {-4 + (j - 0.5) * 8 / G, -4 + (i - 0.5) * 8 / G} end end
  local vals = I.estimate(est, lm.tensor(pts)):totable()
  for i = 1, G do grid[i] = {} for j = 1, G do grid[i][j] = vals[(i - 1) * G + j] end end
  local fig = plot.figure{width = 760, height = 640, title = "Estimated log10 error over the map"}
  local ax = fig:axes{rect = {70, 50, 520, 520}, xlabel = "z1", ylabel = "z2", xlim = {-4, 4}, ylim = {-4, 4}}
  ax:heatmap(grid, {xlim = {-4, 4}, ylim = {-4, 4}, colorbar = "log10 e_hat"})
  ax:scatter(Z_test:select(2, 1), Z_test:select(2, 2), {color = 0xFFFFFF50, radius = 1})
  local wx, wy = {}, {}
  local pred = Y_test:argmax(2):totable()
  local lab = test_set.y:totable()
  local zt = Z_test:totable()
  for i = 1, #lab do if pred[i] ~= lab[i] then wx[#wx + 1], wy[#wy + 1] = zt[i][1], zt[i][2] end end
  ax:scatter(wx, wy, {color = 0xFF2020FF, radius = 2.2, outline = 0x000000FF})
  ax:legend({{"test sample", 0xDDDDDDFF}, {"misclassified", 0xFF2020FF}}, "lower left")
  fig:save(opts.out .. "/map_error.png")
  -- learning trajectories: each recorded sample across cycles, grey to its class colour
  if #snapshots > 1 then
    local tfig = plot.figure{width = 760, height = 640, title = "Learning trajectories over training cycles"}
    local tax = tfig:axes{rect = {70, 50, 520, 520}, xlabel = "z1", ylabel = "z2", xlim = {-4, 4}, ylim = {-4, 4}}
    local tz = {}
    for c, s in ipairs(snapshots) do tz[c] = vae:encode_all(s):totable() end
    local labels = train_set.y:index_select(traj_index):totable()
    for i = 1, #labels do
      local col = plot.CLASS_COLORS[labels[i]]
      local r, g, b = (col >> 24) / 255, ((col >> 16) & 255) / 255, ((col >> 8) & 255) / 255
      for c = 2, #tz do
        local t = (c - 1) / (#tz - 1) -- fades from grey to the class colour
        local mix = plot.rgba(0.75 * (1 - t) + r * t, 0.75 * (1 - t) + g * t, 0.75 * (1 - t) + b * t, 0.25 + 0.5 * t)
        tax:line({tz[c - 1][i][1], tz[c][i][1]}, {tz[c - 1][i][2], tz[c][i][2]}, {color = mix, width = 1})
      end
    end
    tax:legend(legend, "outside")
    tfig:save(opts.out .. "/trajectories.png")
  end
end)

lm.json.write(opts.out .. "/metrics.json", metrics)

-- ---- 7. report ---------------------------------------------------------------------------------------
local html = {[[<!doctype html><html><head><meta charset="utf-8"><title>Lumen: introspection of Net1</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}img{max-width:49%;border:1px solid #ddd}
table{border-collapse:collapse}td{padding:2px 12px;border-bottom:1px solid #eee}</style></head><body>]],
  "<h1>Self-introspection of Net1 on " .. d.name .. "</h1><table>"}
local keys = {}
for k, v in pairs(metrics) do if type(v) ~= "table" then keys[#keys + 1] = k end end
table.sort(keys)
for _, k in ipairs(keys) do
  local v = metrics[k]
  html[#html + 1] = string.format("<tr><td>%s</td><td>%s</td></tr>", k, type(v) == "number" and string.format("%.4f", v) or tostring(v))
end
html[#html + 1] = string.format("<tr><td>latent mean / std</td><td>(%.3f, %.3f) / (%.3f, %.3f)</td></tr></table>",
  metrics.latent_mean[1], metrics.latent_mean[2], metrics.latent_std[1], metrics.latent_std[2])
for _, f in ipairs{"map_train.png", "map_test.png", "map_error.png", "trajectories.png", "classifier_run/learning_curve.png"} do
  if exists(opts.out .. "/" .. f) then html[#html + 1] = string.format('<img src="%s" alt="%s">', f, f) end
end
html[#html + 1] = "</body></html>\n"
local f = assert(io.open(opts.out .. "/index.html", "w"))
f:write(table.concat(html, "\n"))
f:close()
print("report: " .. opts.out .. "/index.html")
RESULT = metrics
