-- Why samples land where they do on the map: input attributions of the
-- mapped Net1 (run experiments/introspect_mnist.lua first; its cached
-- classifier, autoencoder and estimator are read from --from).
--   lumen experiments/explain_mnist.lua [--from DIR] [--out DIR] [--data mnist|fashion]
--        [--data-dir DIR] [--subset N] [--per-class N] [--region-size N] [--error-zone N]
--        [--steps N] [--rule R] [--seed S] [--threads T]
--
-- On the test set (its first --subset images when given): for each class
-- arm, the --region-size correctly classified images of that class with the
-- lowest estimated error (deep in the arm); for the error zone, the
-- --error-zone images with the highest estimated error. For each, integrated
-- gradients (--steps, --rule, black baseline) of the predicted class's
-- output and of log10 e_hat (through classifier, recording, encoder and
-- estimator), with their completeness gaps (a trained Net1 is steep along
-- the path from black: measured on 4 images, Gauss-Legendre's largest gap of
-- log10 e_hat, which moves by about 13 there, was 20 at 50 steps, 4.4 at 200
-- and 0.3 at 1000; the class output's 0.1, 2e-3 and 2e-4). Writes to --out (default
-- results/explain_mnist):
--   class_arms.png     --per-class images of each arm: input, class and log10 e_hat maps
--   error_zone.png     the error zone's images, the same three panels
--   region_means.png   per region the mean image and the mean attributions
--   map_picks.png      where the picked images lie on the map
--   atlas.html         the interactive atlas of the test set (lumen.introspect.atlas)
--                      with both attributions of every picked image (click it) and
--                      the regions (pick one for its mean attributions)
--   explain.json       the picked images (1-based test indices), their places,
--                      estimated errors and gaps; also the chunk's return value
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect
local A = require 'lumen.introspect.analyses'
local study = require 'lumen.introspect.study'
local plot = lm.plot
local E = lm.explain

local opts, given = cli.parse(arg, {from = "results/introspect_mnist", out = "results/explain_mnist", data = "mnist",
  data_dir = "", subset = 0, per_class = 2, region_size = 50, error_zone = 20, steps = 200,
  rule = "gauss_legendre", seed = 1, threads = 0},
  "Input attributions on the mapped Net1: lumen experiments/explain_mnist.lua [options]\n"
    .. "(--data defaults to the data set of the run in --from)")
cli.check(opts, {data = {"mnist", "fashion"}, subset = "count0", per_class = "count", region_size = "count",
  error_zone = "count", steps = "count", seed = "count0", threads = "count0",
  rule = {"gauss_legendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"}})
opts.data = study.run_data(opts.from, given.data and opts.data)
if study.same_folder(opts.out, opts.from) then
  cli.usage_error("--out %s is the run in --from: its atlas.html would be overwritten", opts.out)
end
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
lm.manual_seed(opts.seed)
study.require_mnist_run(opts.from, "explain_mnist")
lm.mkdir(opts.out)
local t_start = lm.clock()

local d = lm.data.mnist{kind = opts.data, dir = opts.data_dir ~= "" and opts.data_dir or nil}
study.run_seed(opts.from, "explain_mnist", d.name) -- the run's data set, or an error
local test = d.test
if opts.subset > 0 then test = lm.data.head(test, math.min(opts.subset, test.x:size(1))) end
local K = #d.classes
local net = lm.models.net1{classes = K}
net:load(opts.from .. "/classifier.safetensors")
net:evaluate()
local recorder = I.Recorder(net)
local vae, est = study.load_map(opts.from, recorder, test.x:narrow(1, 1, 1))

-- ---- the map of the test set --------------------------------------------------------------------
local H, Y = recorder:record_set(test.x, {progress = false})
local Z = vae:encode_all(H)
local log_e = I.estimate(est, Z):to("cpu")
local pred = Y:argmax(2)
local labels, preds, le, zs = test.y:totable(), pred:totable(), log_e:totable(), Z:totable()

-- ---- the regions ---------------------------------------------------------------------------------
local regions = {}
for k = 1, K do
  local idx = {}
  for i = 1, #labels do if labels[i] == k and preds[i] == k then idx[#idx + 1] = i end end
  table.sort(idx, function(a, b) return le[a] < le[b] end) -- lowest estimated error first: deep in the arm
  local pick = {}
  for j = 1, math.min(opts.region_size, #idx) do pick[j] = idx[j] end
  if #pick > 0 then regions[#regions + 1] = {name = "arm " .. d.classes[k], class = k, indices = pick} end
end
do
  local order = {}
  for i = 1, #le do order[i] = i end
  table.sort(order, function(a, b) return le[a] > le[b] end)
  local pick = {}
  for j = 1, math.min(opts.error_zone, #order) do pick[j] = order[j] end
  regions[#regions + 1] = {name = "error zone", indices = pick}
end

-- ---- attributions --------------------------------------------------------------------------------
local ig_opts = {steps = opts.steps, rule = opts.rule}
local function attribute(indices)
  local x = test.x:index_select(lm.tensor(indices, "int32"))
  local target = {}
  for j, i in ipairs(indices) do target[j] = preds[i] end
  local a_class, gap_class = E.integrated_gradients(net, x, {steps = ig_opts.steps, rule = ig_opts.rule,
    target = target})
  local a_err, gap_err = E.log_error(recorder, vae, est, x, {method = "integrated_gradients", steps = ig_opts.steps,
    rule = ig_opts.rule})
  return x, a_class, a_err, gap_class, gap_err
end

local summary = {data = d.name, from = opts.from, test_images = test.x:size(1), steps = opts.steps, rule = opts.rule,
  baseline = "black image (0)", regions = {}, samples = {}}
local max_gap_class, max_gap_err = 0, 0
local shown = {arm = {x = {}, c = {}, e = {}, titles = {}}, zone = {}}
local means = {x = {}, c = {}, e = {}, titles = {}}
-- for the atlas: each picked image's attributions once (an image can be in an arm and the error zone)
local in_atlas = {rows = {}, keep = {}, at = 0, class = {}, err = {}, seen = {}, regions = {}}
local t_attr = lm.clock()
for _, r in ipairs(regions) do
  local x, a_class, a_err, gap_class, gap_err = attribute(r.indices)
  local gc, ge = gap_class:totable(), gap_err:totable()
  in_atlas.class[#in_atlas.class + 1], in_atlas.err[#in_atlas.err + 1] = a_class, a_err
  for _, i in ipairs(r.indices) do
    in_atlas.at = in_atlas.at + 1
    if not in_atlas.seen[i] then
      in_atlas.seen[i] = true
      in_atlas.rows[#in_atlas.rows + 1], in_atlas.keep[#in_atlas.keep + 1] = i, in_atlas.at
    end
  end
  in_atlas.regions[#in_atlas.regions + 1] = {name = r.name, rows = r.indices}
  local mean_le = 0
  for j, i in ipairs(r.indices) do
    max_gap_class = math.max(max_gap_class, math.abs(gc[j]))
    max_gap_err = math.max(max_gap_err, math.abs(ge[j]))
    mean_le = mean_le + le[i] / #r.indices
    summary.samples[#summary.samples + 1] = {index = i, region = r.name, label = labels[i], predicted = preds[i],
      z = zs[i], log10_e_hat = le[i], gap_class = gc[j], gap_log_error = ge[j],
      -- f(x) - f(baseline) = sum(attributions) - gap
      change_class = a_class[j]:sum():item() - gc[j], change_log_error = a_err[j]:sum():item() - ge[j],
      class_attribution_sum = a_class[j]:sum():item(), log_error_attribution_sum = a_err[j]:sum():item()}
  end
  summary.regions[#summary.regions + 1] = {name = r.name, n = #r.indices, mean_log10_e_hat = mean_le}
  means.x[#means.x + 1], means.c[#means.c + 1], means.e[#means.e + 1] = x:mean(1), a_class:mean(1), a_err:mean(1)
  means.titles[#means.titles + 1] = string.format("%s (%d)", r.name, #r.indices)
  local function caption(j)
    local i = r.indices[j]
    return string.format("#%d %s>%s %.1f", i, d.classes[labels[i]], d.classes[preds[i]], le[i])
  end
  if r.class then
    for j = 1, math.min(opts.per_class, #r.indices) do
      local s = shown.arm
      s.x[#s.x + 1], s.c[#s.c + 1], s.e[#s.e + 1], s.titles[#s.titles + 1] = x[j], a_class[j], a_err[j], caption(j)
    end
  else
    local titles = {}
    for j = 1, #r.indices do titles[j] = caption(j) end
    shown.zone = {x = x, c = a_class, e = a_err, titles = titles}
  end
end
local seconds_attr = lm.clock() - t_attr

local labels_of_maps = {"IG: predicted class", "IG: log10 e_hat"}
local files = {}
local function grid(name, x, c, e, titles, title)
  if #titles == 0 then return end
  local path = opts.out .. "/" .. name
  E.figure(path, x, {c, e}, {titles = titles, labels = labels_of_maps, shape = {1, 28, 28}, title = title,
    cols = math.min(4, #titles)})
  files[#files + 1] = name
end
if #shown.arm.titles > 0 then
  grid("class_arms.png", lm.stack(shown.arm.x), lm.stack(shown.arm.c), lm.stack(shown.arm.e), shown.arm.titles,
    "Class arms: why the network is sure (caption: test index, label>prediction, log10 e_hat)")
end
if shown.zone.x then
  grid("error_zone.png", shown.zone.x, shown.zone.c, shown.zone.e, shown.zone.titles,
    "Error zone: the highest estimated errors (red raises the score explained)")
end
grid("region_means.png", lm.stack(means.x), lm.stack(means.c), lm.stack(means.e), means.titles,
  "Mean attributions per region of the map")

-- where the picks lie: the test map over the estimated error
do
  local fig = plot.figure{width = 760, height = 640, title = "Picked images on the map"}
  local ax = fig:axes{rect = {75, 60, 520, 520}, xlabel = "z1", ylabel = "z2", xlim = {-4, 4}, ylim = {-4, 4}}
  A.error_heatmap(ax, est, {lim = 4, colorbar = "log10 e_hat"})
  local colours = {}
  for i = 1, #labels do colours[i] = plot.with_alpha(plot.CLASS_COLORS[(labels[i] - 1) % 10 + 1], 0.35) end
  ax:scatter(Z:select(2, 1), Z:select(2, 2), {colors = colours, radius = 1.5})
  local px, py, pc = {}, {}, {}
  for _, s in ipairs(summary.samples) do
    px[#px + 1], py[#py + 1] = s.z[1], s.z[2]
    pc[#pc + 1] = s.region == "error zone" and 0x000000FF or plot.CLASS_COLORS[(s.label - 1) % 10 + 1]
  end
  ax:scatter(px, py, {colors = pc, radius = 4, outline = 0xFFFFFFFF})
  fig:save(opts.out .. "/map_picks.png")
  files[#files + 1] = "map_picks.png"
end

-- the atlas of the test set with the picks' attributions
do
  local keep = lm.tensor(in_atlas.keep, "int32")
  study.atlas(opts.out .. "/atlas.html", {name = "Net1", data = d, recorder = recorder, est = est,
    test = test, H_test = H, Y_test = Y, Z_test = Z,
    attributions = {rows = in_atlas.rows, regions = in_atlas.regions,
      maps = {{name = labels_of_maps[1], values = lm.cat(in_atlas.class, 1):index_select(keep)},
        {name = labels_of_maps[2], values = lm.cat(in_atlas.err, 1):index_select(keep)}}}})
end
files[#files + 1] = "atlas.html"

summary.max_abs_gap_class, summary.max_abs_gap_log_error = max_gap_class, max_gap_err
-- the median of |gap| / |f(x) - f(baseline)| over the attributed images
local function median_relative(gap_key, change_key)
  local r = {}
  for _, s in ipairs(summary.samples) do r[#r + 1] = math.abs(s[gap_key]) / math.max(math.abs(s[change_key]), 1e-12) end
  table.sort(r)
  return r[(#r + 1) // 2]
end
summary.median_relative_gap_class = median_relative("gap_class", "change_class")
summary.median_relative_gap_log_error = median_relative("gap_log_error", "change_log_error")
summary.attributed = #summary.samples
summary.seconds_attributions = seconds_attr
summary.seconds = lm.clock() - t_start
summary.threads = lm.get_num_threads()
summary.files = files
lm.json.write(opts.out .. "/explain.json", summary)
print(string.format("%d images attributed in %.1f s (%d steps, %s); max |gap| class %.2g, log10 e_hat %.2g",
  #summary.samples, seconds_attr, opts.steps, opts.rule, max_gap_class, max_gap_err))
print("wrote " .. opts.out .. "/{" .. table.concat(files, ", ") .. ", explain.json}")
return summary
