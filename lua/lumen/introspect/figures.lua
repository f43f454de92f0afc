-- The paper's many-panel figures (Pardo et al., Fig. 3, 4, 6 and 7), drawn
-- from the analyses of lumen.introspect.analyses for any recorded model
-- (experiments/analyses_mnist.lua and introspect_cifar10.lua use them):
--
--   local Fig = require 'lumen.introspect.figures'
--   Fig.expected_activations(path, {Eh, layer_sizes, orders, classes})   -- Fig. 3
--   Fig.sample_grid(path, {recorder, vae, est, x, labels, indices, ...})  -- Fig. 4
--   Fig.fgsm_grid(path, {net, recorder, vae, est, x, labels, indices, ...}) -- Fig. 6
--   Fig.violins(path, {log_e_hat, labels, predictions, classes})         -- Fig. 7
--
-- Each returns the numbers it drew, so tests and reports can check them.
local lm = require 'lumen'
local plot = require 'lumen.plot'
local A = require 'lumen.introspect.analyses'

local Fig = {}

-- ---- sample lists ----------------------------------------------------------------------------------

--- A list of 1-based sample indices from a command-line spec: numbers and
--- ranges separated by commas ("1-40", "3,7,10-12"), in the given order;
--- `who` names the option in errors.
function Fig.parse_indices(spec, who)
  local list = {}
  for part in tostring(spec):gmatch("[^,]+") do
    local a, b = part:match("^%s*(%d+)%s*%-%s*(%d+)%s*$")
    if a then
      a, b = math.tointeger(tonumber(a)), math.tointeger(tonumber(b))
      if b < a then error(string.format("%s: the range %s runs backwards", who, part), 2) end
      for i = a, b do list[#list + 1] = i end
    else
      local v = part:match("^%s*(%d+)%s*$")
      if not v then error(string.format("%s: '%s' is not an index or a range like 1-40", who, part), 2) end
      list[#list + 1] = math.tointeger(tonumber(v))
    end
  end
  if #list == 0 then error(who .. ": no indices given", 2) end
  return list
end

-- A.activation_rows of h for a heat map: narrower layers centred in the
-- widest one's width, the cells beside them NaN (drawn white by `cmap`).
local function network_rows(h, layer_sizes, orders)
  local rows = A.activation_rows(h, layer_sizes, orders)
  local widest = 0
  for _, s in ipairs(layer_sizes) do widest = math.max(widest, s) end
  for l, row in ipairs(rows) do
    local pad = (widest - #row) // 2
    local full = {}
    for p = 1, widest do full[p] = row[p - pad] or 0 / 0 end
    rows[l] = full
  end
  return rows, widest
end
local function cmap(t)
  if t ~= t then return 0xFFFFFFFF end
  return plot.viridis(t)
end

-- ---- Fig. 3: each layer normalised to 1 -----------------------------------------------------------

--- Activations E [K, Nh] (or one vector [Nh]) with each layer's block
--- (layer_sizes, in order) divided by that layer's largest value over all
--- rows and units, so every layer's maximum is 1, as the paper shows them;
--- negative values (ELU's, down to -1) become 0, and a layer with nothing
--- above 0 stays 0. Returns the normalised [K, Nh] (or [Nh]) and the
--- maximum of each layer.
function Fig.normalise_layers(E, layer_sizes)
  local vector = E:dim() == 1
  local M = (vector and E:view(1, -1) or E):clamp(0, math.huge)
  local total = 0
  for _, size in ipairs(layer_sizes) do total = total + size end
  if total ~= M:size(2) then
    error(string.format("normalise_layers: layer_sizes add up to %d units, the activations have %d", total,
      M:size(2)), 2)
  end
  local parts, maxima, first = {}, {}, 1
  for l, size in ipairs(layer_sizes) do
    local block = M:narrow(2, first, size)
    local top = block:max():item()
    maxima[l] = top
    parts[l] = top > 0 and block / top or block * 0
    first = first + size
  end
  local out = lm.cat(parts, 2)
  return vector and out:view(-1) or out, maxima
end

--- Fig. 3 as a file: E[h | H_k] of the reordered network, one panel per
--- class, a row per layer (layer 1 at the bottom), each layer normalised to
--- 1 over all classes (Fig.normalise_layers), so the panels share a scale
--- per layer. o: Eh [K, Nh], layer_sizes, orders (A.sort_units), classes
--- (names), title, columns (5). Returns {layer_max = the maximum of each
--- layer before normalising, shown = the normalised [K, Nh] in the
--- recorded order}.
function Fig.expected_activations(path, o)
  local K = #o.classes
  local shown, maxima = Fig.normalise_layers(o.Eh, o.layer_sizes)
  local cols = o.columns or 5
  local rows_n = (K + cols - 1) // cols
  local fig = plot.figure{width = 1100, height = 60 + 350 * rows_n, title = o.title}
  local panels = fig:grid(rows_n, cols, {left = 30, right = 110, hgap = 24, vgap = 60})
  for k = 1, K do
    local ax = panels[k]
    ax.title = o.classes[k]
    ax.xticks, ax.yticks = 2, 2
    local rows, widest = network_rows(shown:select(1, k), o.layer_sizes, o.orders)
    ax:heatmap(rows, {xlim = {0, widest}, ylim = {0, #o.layer_sizes}, vmin = 0, vmax = 1, cmap = cmap,
      colorbar = k == K and "E[h] / max of its layer" or nil})
  end
  fig:save(path)
  return {layer_max = maxima, shown = shown}
end

-- ---- Fig. 4: single images, their patterns and their places -------------------------------------

-- The indices list o.indices, checked against the set's size.
local function checked_indices(who, indices, n)
  if type(indices) ~= "table" or #indices == 0 then error(who .. ": indices must be a non-empty list", 3) end
  for _, i in ipairs(indices) do
    if math.type(i) ~= "integer" or i < 1 or i > n then
      error(string.format("%s: index %s is not in the set (1..%d)", who, tostring(i), n), 3)
    end
  end
end

--- Fig. 4 as a file: for each test image o.indices[n] of o.x, a panel with
--- the image, its activation pattern in the reordered network (each layer
--- normalised to 1 over the image's own units) and its own small map: the
--- image's point (class colour; black when misclassified, whose caption is
--- red) over the estimated error and a grey cloud of o.background
--- latents (optional [M, 2]). o: recorder, vae, est, x, labels [N],
--- indices, layer_sizes, orders, classes (names), image_shape ({28, 28};
--- {3, 32, 32} for colour), columns (4), title. Returns per panel {index,
--- label, prediction, z = {z1, z2}, log10_e_hat} (names of classes), in the
--- order of o.indices.
function Fig.sample_grid(path, o)
  checked_indices("sample_grid", o.indices, o.x:size(1))
  local idx = lm.tensor(o.indices, 'int32')
  local h, out = o.recorder:record(o.x:index_select(idx))
  h = h:to('cpu')
  local z = o.vae:encode_all(h):to('cpu')
  local e = lm.introspect.estimate(o.est, z):to('cpu'):totable()
  local pred = out:argmax(2):to('cpu'):totable()
  local zt, labels = z:totable(), o.labels:totable()
  local cols = o.columns or 4
  local n = #o.indices
  local rows_n = (n + cols - 1) // cols
  local pw, ph = 390, 160
  local fig = plot.figure{width = 20 + cols * pw, height = 60 + rows_n * ph, title = o.title}
  local heat = A.error_grid(o.est, {lim = 4, cells = 40})
  local bg = o.background and o.background:totable() or {}
  local bx, by = {}, {}
  for i, p in ipairs(bg) do bx[i], by[i] = p[1], p[2] end
  local shape = o.image_shape or {28, 28}
  local result = {}
  for k, i in ipairs(o.indices) do
    local c, r = (k - 1) % cols, (k - 1) // cols
    local x0, y0 = 10 + c * pw, 50 + r * ph
    local wrong = pred[k] ~= labels[i]
    fig:image(x0, y0 + 24, lm.data.to_float(o.x[i]):view(table.unpack(shape)), 2)
    fig:text(x0, y0 + 14, string.format("#%d: %s -> %s", i, o.classes[labels[i]], o.classes[pred[k]]),
      {size = 11, color = wrong and 0xD01010FF or 0x222222FF})
    local shown = Fig.normalise_layers(h:select(1, k), o.layer_sizes)
    local pax = fig:axes{rect = {x0 + 66, y0 + 24, 170, 110}, xticks = 2, yticks = 2}
    local rows, widest = network_rows(shown, o.layer_sizes, o.orders)
    pax:heatmap(rows, {xlim = {0, widest}, ylim = {0, #o.layer_sizes}, vmin = 0, vmax = 1, cmap = cmap})
    local max_ = fig:axes{rect = {x0 + 262, y0 + 24, 110, 110}, xlim = {-4, 4}, ylim = {-4, 4}, xticks = 2,
      yticks = 2}
    max_:heatmap(heat, {xlim = {-4, 4}, ylim = {-4, 4}})
    if #bx > 0 then max_:scatter(bx, by, {color = 0xFFFFFF40, radius = 0.6}) end
    -- misclassified: black (no class has it), the label above in red
    max_:scatter({zt[k][1]}, {zt[k][2]}, {color = wrong and 0x000000FF or plot.class_color(labels[i]),
      radius = 4, outline = 0xFFFFFFFF})
    result[k] = {index = i, label = o.classes[labels[i]], prediction = o.classes[pred[k]], z = zt[k],
      log10_e_hat = e[k]}
  end
  fig:save(path)
  return result
end

-- ---- Fig. 6: targeted FGSM from several images ----------------------------------------------------

--- Targeted FGSM (A.fgsm_path) from one input o.x [1, ...] of true class
--- o.label to every class but the one it is classified as (the true class
--- for a correctly classified input). o: net, recorder, vae, x, label, classes
--- (names), steps, eps. Returns {z0 = the start's latent {z1, z2},
--- start_prediction (a name), paths = {{target, xs, ys, z, flip,
--- predictions}, ...}, targets = {name -> {flip_step, success,
--- final_prediction}}, success_rate, xlim, ylim (a square view around
--- the paths)}.
function Fig.fgsm_run(o)
  local K = #o.classes
  local x = lm.data.to_float(o.x) -- the path's steps add to it
  local h0, out0 = o.recorder:record(x)
  local z0 = o.vae:encode_all(h0:to('cpu')):totable()[1]
  local points = {{z0}}
  local start = out0:argmax(2):to('cpu'):item()
  local run = {z0 = z0, start_prediction = o.classes[start], paths = {}, targets = {}}
  local reached = 0
  -- every class but the one the start is classified as (the true class, for
  -- a misclassified start, among them): that one would be reached at step 0
  for target = 1, K do
    if target ~= start then
      local p = A.fgsm_path(o.net, o.recorder, o.vae, x, target, {steps = o.steps, eps = o.eps, classes = K})
      local xs, ys = {}, {}
      points[#points + 1] = p.z:totable()
      for i, z in ipairs(points[#points]) do xs[i], ys[i] = z[1], z[2] end
      run.paths[#run.paths + 1] = {target = target, xs = xs, ys = ys, flip = p.flip, z = p.z,
        predictions = p.predictions}
      if p.flip then reached = reached + 1 end
      run.targets[o.classes[target]] = {flip_step = p.flip, success = p.flip ~= nil,
        final_prediction = o.classes[p.predictions[#p.predictions]]}
    end
  end
  run.success_rate = reached / (K - 1)
  run.xlim, run.ylim = A.square_view(points, 1)
  return run
end

--- Draws a Fig.fgsm_run into axes `ax` (limits run.xlim, run.ylim): the
--- estimated error of `est` behind, a line per target in its class colour,
--- a marker where the prediction flips, the start in white, and a legend
--- (o.legend: where, default "lower left"; false for none).
function Fig.draw_fgsm(ax, est, run, classes, o)
  o = o or {}
  A.error_heatmap(ax, est, {xlim = run.xlim, ylim = run.ylim, cells = o.cells or 80, colorbar = o.colorbar})
  local legend = {}
  for _, p in ipairs(run.paths) do
    local colour = plot.class_color(p.target)
    ax:line(p.xs, p.ys, {color = colour, width = 2})
    if p.flip then
      ax:scatter({p.xs[p.flip + 1]}, {p.ys[p.flip + 1]}, {color = colour, radius = 5, outline = 0x000000FF})
    end
    legend[#legend + 1] = {"to " .. classes[p.target] .. (p.flip and (" (step " .. p.flip .. ")") or " (failed)"),
      colour}
  end
  ax:scatter({run.z0[1]}, {run.z0[2]}, {color = 0xFFFFFFFF, radius = 7, outline = 0x000000FF})
  legend[#legend + 1] = {"start", 0x000000FF}
  if o.legend ~= false then ax:legend(legend, o.legend or "lower left") end
  return ax
end

--- Fig. 6 as one file: targeted FGSM paths from each of the images
--- o.indices of o.x (true classes o.labels) to every other class, a panel
--- per image. o: net, recorder, vae, est, x, labels, indices, classes
--- (names), steps (100), eps (0.01), columns (3), title. Returns per image
--- (in the order of o.indices) {index, label, start_prediction, targets,
--- success_rate} and the runs (Fig.fgsm_run) for overlays.
function Fig.fgsm_grid(path, o)
  checked_indices("fgsm_grid", o.indices, o.x:size(1))
  local cols = o.columns or 3
  local n = #o.indices
  local rows_n = (n + cols - 1) // cols
  local side, col_w, row_h = 420, 600, 500 -- each panel's legend to its right
  local fig = plot.figure{width = 20 + cols * col_w, height = 60 + rows_n * row_h, title = o.title}
  local labels = o.labels:totable()
  local summary, runs = {}, {}
  for k, i in ipairs(o.indices) do
    local run = Fig.fgsm_run{net = o.net, recorder = o.recorder, vae = o.vae, x = o.x:narrow(1, i, 1),
      label = labels[i], classes = o.classes, steps = o.steps or 100, eps = o.eps or 0.01}
    local c, r = (k - 1) % cols, (k - 1) // cols
    local ax = fig:axes{rect = {70 + c * col_w, 80 + r * row_h, side, side},
      xlabel = "z1", ylabel = "z2", xlim = run.xlim, ylim = run.ylim,
      title = string.format("test image %d (a %s, predicted %s)", i, o.classes[labels[i]], run.start_prediction)}
    Fig.draw_fgsm(ax, o.est, run, o.classes, {legend = "outside", cells = 60})
    local reached = 0
    for _, t in pairs(run.targets) do if t.success then reached = reached + 1 end end
    summary[k] = {index = i, label = o.classes[labels[i]], start_prediction = run.start_prediction,
      targets = run.targets, success_rate = run.success_rate, reached = reached}
    runs[k] = run
  end
  fig:save(path)
  return summary, runs
end

-- ---- Fig. 7: reliability violins --------------------------------------------------------------------

--- The wrongly classified samples' violins: near-black, drawn dark grey
--- (violins are filled translucent), apart from every class colour (the
--- eighth, tab10's grey, is horse on CIFAR-10).
Fig.WRONG_COLOR = 0x202020B3

--- Fig. 7 as a file: per class (true label), violins of the estimated
--- log10 error of the correctly (class colour) and wrongly (dark grey:
--- no class colour, not even tab10's lighter grey) classified samples, each class's sensitivity written above. o:
--- log_e_hat [N], labels [N], predictions [N], classes (names), title.
--- A class with no sample of a kind draws no violin for it. Returns
--- A.reliability_by_class's table (per class {correct, wrong,
--- sensitivity}).
function Fig.violins(path, o)
  local K = #o.classes
  local by_class = A.reliability_by_class(o.log_e_hat, o.labels, o.predictions, K)
  local fig = plot.figure{width = 1100, height = 560, title = o.title}
  local ax = fig:axes{rect = {80, 80, 980, 400}, ylabel = "log10 e_hat", xlim = {0.4, K + 0.6}}
  ax:categories(o.classes)
  for k = 1, K do
    local b = by_class[k]
    if #b.correct > 0 then
      ax:violin(k - 0.18, b.correct, {width = 0.34, color = plot.with_alpha(plot.class_color(k), 0.8)})
    end
    if #b.wrong > 0 then ax:violin(k + 0.18, b.wrong, {width = 0.34, color = Fig.WRONG_COLOR}) end
    -- sensitivity above each pair (the axes span 980 px over K + 0.2 units)
    local px = 80 + (k - 0.4) / (K + 0.2) * 980
    local s = b.sensitivity
    fig:text(px - 22, 66, s == s and string.format("%.1f %%", 100 * s) or "-", {size = 11})
  end
  fig:save(path)
  return by_class
end

return Fig
