-- The paper's analyses of a mapped classifier (Pardo et al., Eq. 6-11 and
-- Fig. 3-7; docs/design.md), for any model with a recorder, an InfoVAE and an
-- estimator from lm.introspect:
--
--   local A = require 'lumen.introspect.analyses'
--   local grid = A.grid{lim = 4, size = 100}
--   local Eh, Ez = A.expected_activations(vae, Z, labels, 10, grid)   -- Eq. 6-9
--   local unit_class = A.unit_classes(Eh)                             -- Eq. 10
--   local order = A.sort_units(Eh, layer_sizes)                       -- reordered net
--   local colours = A.brainbow(Eh, lm.plot.CLASS_COLORS)              -- Eq. 11
--   local path = A.fgsm_path(net, recorder, vae, x, target, {})       -- Fig. 6
--
-- Shapes: Z [N, 2] latents, labels [N] 1-based int32, activations [N, Nh].
-- The detection benchmark and risk-coverage (lumen.introspect.detection)
-- are re-exported here: A.detection_benchmark, A.risk_coverage, ...
local lm = require 'lumen'
local Adv = require 'lumen.introspect.adversarial'
local F = lm.nn.functional
local checks = require 'lumen.nn.checks'

local A = {}

-- ---- densities on a grid (Eq. 6-8) -------------------------------------------------------------

--- A square grid over [-lim, lim]^2 with size x size cell centres:
--- {points [size^2, 2] (row-major, y outer), size, lim, cell (area of a cell)}.
function A.grid(o)
  o = checks.options(o, "analyses.grid")
  checks.opts(o, "analyses.grid", {"lim", "size"})
  checks.optional_size(o.size, "o.size", "analyses.grid")
  if o.lim ~= nil and not (checks.is_finite(o.lim) and o.lim > 0) then
    error("analyses.grid: o.lim must be a finite number > 0, got " .. checks.shown(o.lim), 2)
  end
  local lim, size = o.lim or 4, o.size or 100
  local step = 2 * lim / size
  local pts = {}
  for i = 1, size do
    for j = 1, size do pts[#pts + 1] = {-lim + (j - 0.5) * step, -lim + (i - 0.5) * step} end
  end
  return {points = lm.tensor(pts), size = size, lim = lim, cell = step * step}
end

--- Scott's bandwidth for a Gaussian kernel density of points Z [N, d] (the
--- maps: d = 2): the mean standard deviation of the coordinates times
--- N^(-1/(d + 4)) (N^(-1/6) on the plane), at least 1e-3 times that factor.
function A.bandwidth(Z)
  local n = Z:size(1)
  local sd = n > 1 and Z:std(1):mean():item() or 1
  return math.max(sd, 1e-3) * n ^ (-1 / (Z:size(2) + 4))
end

--- Kernel density of latents Z [N, 2] at the grid's points: [size^2],
--- normalised so that the Riemann sum over the grid is 1. Gaussian kernel
--- with Scott's bandwidth (A.bandwidth) or o.bandwidth; also returns it.
function A.density(Z, grid, o)
  o = o or {}
  if Z:size(1) == 0 then error("density: no points", 2) end
  local h = o.bandwidth or A.bandwidth(Z)
  if type(h) ~= "number" or not (h > 0 and h < math.huge) then
    error("density: bandwidth must be a number > 0, got " .. tostring(h), 2)
  end
  return lm.no_grad(function()
    local d2 = F.squared_distances(grid.points, Z)
    -- shifted by the smallest distance, which the normalisation cancels: a
    -- narrow kernel whose every value underflows would otherwise give 0 / 0
    local dens = ((d2 - d2:min():item()) * (-0.5 / (h * h))):exp():sum(2):view(-1)
    return dens / (dens:sum():item() * grid.cell)
  end), h
end

--- The Gaussian kernel density p(z) of the reference points ref [M, d]
--- (the maps: d = 2; bandwidth h, default Scott's) at each of the points
--- Z [N, d]: [N], normalised over the space (the plane), o.chunk (1000) rows of Z at a time, without
--- gradients: exp(A.log_kernel_density), 0 where it underflows.
function A.kernel_density(Z, ref, h, o)
  local p = A.log_kernel_density(Z, ref, h, o):exp() -- (not a tail call: its errors name this caller's line)
  return p
end

--- log p(z) of A.kernel_density, by a log-sum-exp over the reference
--- points: finite far from all of them, where p itself underflows to 0 in
--- float32 (beyond about 14 bandwidths) and every such point would tie. [N].
function A.log_kernel_density(Z, ref, h, o)
  if type(h) == "table" and o == nil then h, o = nil, h end -- (Z, ref, {chunk}): the bandwidth left out
  o = o or {}
  if not lm.is_tensor(ref) or ref:dim() ~= 2 or ref:size(1) == 0 then
    error("kernel_density: ref must be reference points [M, d] with M >= 1", 2)
  end
  h = h or A.bandwidth(ref)
  if type(h) ~= "number" or not (h > 0 and h < math.huge) then
    error("kernel_density: the bandwidth h must be a number > 0, got " .. tostring(h), 2)
  end
  local chunk = o.chunk or 1000
  if math.type(chunk) ~= "integer" or chunk < 1 then
    error("kernel_density: chunk must be a positive integer (rows a pass), got " .. tostring(chunk), 2)
  end
  local two_h2 = 2 * h * h
  local out = lm.zeros(Z:size(1))
  -- log M + log of the Gaussian's normaliser (2 pi h^2)^(d/2)
  local shift = math.log(ref:size(1)) + ref:size(2) / 2 * math.log(math.pi * two_h2)
  lm.no_grad(function()
    for s = 1, Z:size(1), chunk do
      local len = math.min(chunk, Z:size(1) - s + 1)
      local a = F.squared_distances(Z:narrow(1, s, len), ref) * (-1 / two_h2) -- [len, M]
      local top = a:max(2, true)
      local lse = (a - top):exp():sum(2, true):log() + top
      out:narrow(1, s, len):copy_(lse:view(len) - shift)
    end
  end)
  return out
end

--- E[z | density] by the Riemann sum over the grid (Eq. 8): [2].
function A.expected_latent(density, grid)
  return lm.no_grad(function()
    return (grid.points * (density * grid.cell):view(-1, 1)):sum(1)
  end)
end

--- The decoded expectation per class (Eq. 9): E[h | H_k] = decoder(E[z | H_k])
--- in the recorded units (the standardisation undone). Returns Eh [K, Nh]
--- and Ez [K, 2], with the bandwidth of each class in a third result.
function A.expected_activations(vae, Z, labels, classes, grid)
  local Ez, bws = {}, {}
  local lab = labels:totable()
  for k = 1, classes do
    local idx = {}
    for i, l in ipairs(lab) do if l == k then idx[#idx + 1] = i end end
    if #idx == 0 then error(string.format("expected_activations: class %d has no points", k), 2) end
    local Zk = Z:index_select(lm.tensor(idx, 'int32'))
    local dens, h = A.density(Zk, grid)
    Ez[k], bws[k] = A.expected_latent(dens, grid), h
  end
  local EzT = lm.stack(Ez)
  local Eh = lm.no_grad(function()
    local out = vae:decode(EzT:to(lm.train.device_of(vae)))
    return out:to('cpu')
  end)
  return Eh, EzT, bws
end

--- The direct estimate: the mean recorded activation of each class [K, Nh].
function A.class_means(H, labels, classes)
  local onehot = lm.data.one_hot(labels, classes):float()          -- [N, K]
  local counts = onehot:sum(1):clamp(1, math.huge):view(-1, 1)     -- [K, 1]
  return lm.autocast(false, lm.matmul, onehot:t(), H) / counts -- sums: float32 under autocast too
end

--- How close two [K, Nh] estimates are: the mean over classes of the
--- correlation between their unit profiles, and the relative error
--- ||a - b|| / ||b||.
function A.compare(a, b)
  local K = a:size(1)
  local corr = 0
  for k = 1, K do
    local x, y = a:select(1, k), b:select(1, k)
    local xc, yc = x - x:mean(), y - y:mean()
    local den = math.sqrt((xc * xc):sum():item() * (yc * yc):sum():item())
    corr = corr + (den > 0 and (xc * yc):sum():item() / den or 0)
  end
  local rel = math.sqrt(((a - b) ^ 2):sum():item() / math.max((b * b):sum():item(), 1e-30))
  return {correlation = corr / K, relative_error = rel}
end

-- ---- units, order, colours (Eq. 10-11) -----------------------------------------------------------

--- Each unit's class d_i = argmax_k E[h_i | H_k] (1-based): [Nh] int32.
function A.unit_classes(Eh)
  return Eh:argmax(1)
end

--- Per layer (layer_sizes lists the units of each recorded layer, in order),
--- a permutation of that layer's units: by their class d_i, and within a
--- class by decreasing E[h_i | H_{d_i}]. Returns a list of 1-based index
--- lists into the whole recorded vector, one per layer.
function A.sort_units(Eh, layer_sizes)
  local d = A.unit_classes(Eh):totable()
  local best = Eh:max(1):totable()
  local orders, first = {}, 0
  for l, size in ipairs(layer_sizes) do
    local idx = {}
    for u = first + 1, first + size do idx[#idx + 1] = u end
    table.sort(idx, function(a, b)
      if d[a] ~= d[b] then return d[a] < d[b] end
      if best[a] ~= best[b] then return best[a] > best[b] end
      return a < b
    end)
    orders[l] = idx
    first = first + size
  end
  return orders
end

local function unpack_rgb(c) return c >> 24, (c >> 16) & 255, (c >> 8) & 255 end
local function pack_rgb(r, g, b)
  local function q(v) return math.max(0, math.min(255, math.floor(v + 0.5))) end
  return (q(r) << 24) | (q(g) << 16) | (q(b) << 8) | 255
end

-- Eq. 11 as the paper writes it, alpha_i = 1/K sum_k c_k E[h_i|H_k], shown
-- with each layer scaled so that its brightest channel is full intensity
-- (the paper normalises each layer's activations to 1; a common factor per
-- layer is the same thing). Negative expected activations (ELU's, down to
-- -1) count as 0: a class that silences a unit adds no colour.
local function brainbow_eq11(Eh, class_colors, layer_sizes)
  local K, Nh = Eh:size(1), Eh:size(2)
  local E = Eh:clamp(0, math.huge):totable()
  local alpha = {}
  for i = 1, Nh do
    local r, g, b = 0, 0, 0
    for k = 1, K do
      local cr, cg, cb = unpack_rgb(class_colors[k])
      local e = E[k][i]
      r, g, b = r + cr * e / K, g + cg * e / K, b + cb * e / K
    end
    alpha[i] = {r, g, b}
  end
  local total = 0
  for _, size in ipairs(layer_sizes or {Nh}) do total = total + size end
  if total ~= Nh then
    error(string.format("brainbow: layer_sizes add up to %d units, Eh has %d", total, Nh), 3)
  end
  local colours, first = {}, 0
  for _, size in ipairs(layer_sizes or {Nh}) do
    local brightest = 0
    for i = first + 1, first + size do brightest = math.max(brightest, alpha[i][1], alpha[i][2], alpha[i][3]) end
    local gain = brightest > 0 and 255 / brightest or 0
    for i = first + 1, first + size do
      colours[i] = pack_rgb(alpha[i][1] * gain, alpha[i][2] * gain, alpha[i][3] * gain)
    end
    first = first + size
  end
  return colours
end

-- The contrast variant (not the paper's): class colours weighted by how much
-- more than its least active class each class drives the unit,
-- w_ik = E[h_i|H_k] - min_k E[h_i|H_k], normalised over k; pure colours for
-- any preference however small, grey where there is none.
local function brainbow_contrast(Eh, class_colors)
  local K, Nh = Eh:size(1), Eh:size(2)
  local w = Eh - Eh:min(1, true)                                  -- [K, Nh], >= 0
  local total = w:sum(1):totable()
  local wt = w:totable()
  local colours = {}
  for i = 1, Nh do
    local r, g, b = 0, 0, 0
    if total[i] > 1e-12 then
      for k = 1, K do
        local s = wt[k][i] / total[i]
        local cr, cg, cb = unpack_rgb(class_colors[k])
        r, g, b = r + s * cr, g + s * cg, b + s * cb
      end
    else
      r, g, b = 160, 160, 160
    end
    colours[i] = pack_rgb(r, g, b)
  end
  return colours
end

--- The artificial brainbow: a colour per unit from the expected activations
--- Eh [K, units] and one colour per class. o.mode 'eq11' (the default) is
--- the paper's Eq. 11, alpha_i = 1/K sum_k c_k E[h_i|H_k]: a unit that all
--- classes drive alike takes the mean of the class colours (greyish), one
--- driven by a single class takes its colour, and strength shows as
--- brightness; each layer (o.layer_sizes, default one layer) is scaled so
--- its brightest channel is full intensity, and negative expectations count
--- as 0. o.mode 'contrast' colours each unit by the classes that drive it
--- above its least active class, normalised to full colour (any preference,
--- however small, shows pure). Returns a list of 0xRRGGBBAA colours.
function A.brainbow(Eh, class_colors, o)
  o = o or {}
  if type(class_colors) ~= "table" or lm.is_tensor(Eh) and Eh:dim() == 2 and #class_colors < Eh:size(1) then
    error(string.format("brainbow: class_colors must list a colour for each of the %s classes, got %s",
      lm.is_tensor(Eh) and Eh:dim() == 2 and tostring(Eh:size(1)) or "?", type(class_colors) == "table"
      and #class_colors or type(class_colors)), 2)
  end
  local mode = o.mode or "eq11"
  if mode == "eq11" then return brainbow_eq11(Eh, class_colors, o.layer_sizes) end
  if mode == "contrast" then return brainbow_contrast(Eh, class_colors) end
  error("brainbow: mode must be 'eq11' or 'contrast', got " .. tostring(mode), 2)
end

--- Draws a network as rows of units (one row per layer, layer 1 at the
--- bottom) into axes `ax` over [0, 1] x [0, #layers]: unit u of layer l is a
--- cell coloured colours[unit] (a list over the whole recorded vector),
--- placed in the order orders[l] (default: as recorded).
function A.draw_network(ax, colours, layer_sizes, orders)
  local rows, first, widest = {}, 0, 0
  for _, size in ipairs(layer_sizes) do widest = math.max(widest, size) end
  for l, size in ipairs(layer_sizes) do
    local order = orders and orders[l]
    rows[l] = {}
    for p = 1, widest do
      -- a narrower layer is centred; cells beyond it show as background (index 0)
      local q = p - (widest - size) // 2
      rows[l][p] = (q >= 1 and q <= size) and (order and order[q] or first + q) or 0
    end
    first = first + size
  end
  local n = first
  -- the heat map's colour map looks each cell's unit up in `colours`
  local function lookup(t)
    local unit = math.floor(t * n + 0.5)
    return unit >= 1 and colours[unit] or 0xFFFFFFFF
  end
  ax:heatmap(rows, {xlim = {0, 1}, ylim = {0, #layer_sizes}, vmin = 0, vmax = n, cmap = lookup})
  return ax
end

-- ---- single samples and noise (Fig. 4-5) -------------------------------------------------------------

--- The x and y limits of a square view around latent points, given as
--- lists of {z1, z2} ({{z0}, path_1, path_2, ...}), with `margin` beyond
--- the longer side of their bounding box.
function A.square_view(point_lists, margin)
  local lo_x, hi_x, lo_y, hi_y = math.huge, -math.huge, math.huge, -math.huge
  for _, points in ipairs(point_lists) do
    for _, z in ipairs(points) do
      lo_x, hi_x = math.min(lo_x, z[1]), math.max(hi_x, z[1])
      lo_y, hi_y = math.min(lo_y, z[2]), math.max(hi_y, z[2])
    end
  end
  if lo_x > hi_x then error("analyses.square_view: no points", 2) end
  local half = math.max(hi_x - lo_x, hi_y - lo_y) / 2 + margin
  local cx, cy = (lo_x + hi_x) / 2, (lo_y + hi_y) / 2
  return {cx - half, cx + half}, {cy - half, cy + half}
end

--- One recorded vector h [Nh] laid out for a heat map: a row per layer
--- (layer 1 first, so at the bottom), units in the order orders[l].
function A.activation_rows(h, layer_sizes, orders)
  local v = h:view(-1):totable()
  local rows, first = {}, 0
  for l, size in ipairs(layer_sizes) do
    rows[l] = {}
    for p = 1, size do rows[l][p] = v[orders and orders[l][p] or first + p] end
    first = first + size
  end
  return rows
end

--- Noise constellations: n copies of one input x [1, D] with additive white
--- Gaussian noise of each sigma (clipped to [0, 1]), encoded. Returns
--- {clean = z [1, 2], clean_prediction, by_sigma = {{sigma, z [n, 2],
--- predictions [n]}, ...}}. The noise comes from the seeded stream.
function A.noise_constellation(recorder, vae, x, sigmas, n)
  n = n or 200
  local h0, out0 = recorder:record(x)
  local result = {clean = vae:encode_all(h0), clean_prediction = out0:argmax(2):item(), by_sigma = {}}
  local D = x:numel()
  for _, sigma in ipairs(sigmas) do
    local copies = (x:view(1, D):expand(n, D) + lm.randn(n, D) * sigma):clamp(0, 1)
    local h, out = recorder:record(copies)
    result.by_sigma[#result.by_sigma + 1] = {sigma = sigma, z = vae:encode_all(h), predictions = out:argmax(2)}
  end
  return result
end

--- Fig. 5 as a panel of figure `fig` at rect: the noise constellations
--- (A.noise_constellation) of one input o.x [1, D] for o.sigmas, o.n (200)
--- copies each, over the estimated error of o.est, in a square view around
--- the clouds, with an arrow from the clean image to each cloud's mean.
--- o: recorder, vae, est, x, sigmas, n, title. Returns per sigma {sigma,
--- same_prediction (the share of copies keeping the clean prediction),
--- mean_shift}, and the constellation.
function A.constellation_panel(fig, rect, o)
  local plot = lm.plot
  local sigmas = o.sigmas
  local c = A.noise_constellation(o.recorder, o.vae, o.x, sigmas, o.n or 200)
  local cz = c.clean:totable()[1]
  local points, clouds = {{cz}}, {}
  for k, b in ipairs(c.by_sigma) do
    local xs, ys = {}, {}
    points[k + 1] = b.z:totable()
    for i, z in ipairs(points[k + 1]) do xs[i], ys[i] = z[1], z[2] end
    clouds[k] = {xs = xs, ys = ys}
  end
  -- a square view around the clouds, with the error map under all of it
  local xl, yl = A.square_view(points, 0.8)
  local ax = fig:axes{rect = rect, xlabel = "z1", ylabel = "z2", title = o.title, xlim = xl, ylim = yl}
  A.error_heatmap(ax, o.est, {xlim = xl, ylim = yl, cells = 80})
  local legend_items, stats = {}, {}
  for k, b in ipairs(c.by_sigma) do
    local colour = plot.with_alpha(plot.viridis(0.15 + 0.8 * (k - 1) / (#sigmas - 1)), 0.8)
    ax:scatter(clouds[k].xs, clouds[k].ys, {color = colour, radius = 2})
    local mean = b.z:mean(1):totable()
    ax:arrow(cz[1], cz[2], mean[1], mean[2], {color = 0xFFFFFFFF, width = 2})
    local same = b.predictions:eq(c.clean_prediction):float():mean():item()
    legend_items[#legend_items + 1] = {string.format("sigma %.2f (%.0f %% keep the label)", b.sigma, 100 * same),
      colour}
    stats[#stats + 1] = {sigma = b.sigma, same_prediction = same,
      mean_shift = math.sqrt((mean[1] - cz[1]) ^ 2 + (mean[2] - cz[2]) ^ 2)}
  end
  ax:scatter({cz[1]}, {cz[2]}, {color = 0xFFFFFFFF, radius = 6, outline = 0x000000FF})
  legend_items[#legend_items + 1] = {"clean image (arrows: to each cloud's mean)", 0x000000FF}
  ax:legend(legend_items, "below")
  return stats, c
end

--- Accuracy of `net` on a set {x, y} with additive Gaussian noise of each
--- sigma (clipped to [0, 1]), in batches: a list of accuracies.
function A.accuracy_under_noise(net, set, sigmas, batch_size)
  batch_size = batch_size or 1000
  local accs = {}
  lm.nn.evaluating(net, function() return lm.no_grad(function()
    for k, sigma in ipairs(sigmas) do
      local hits, n = 0, set.x:size(1)
      for s = 1, n, batch_size do
        local len = math.min(batch_size, n - s + 1)
        local x = lm.data.to_float(set.x:narrow(1, s, len))
        if sigma > 0 then x = (x + lm.randn(x:shape()) * sigma):clamp(0, 1) end
        hits = hits + net(x):argmax(2):eq(set.y:narrow(1, s, len)):sum():item()
      end
      accs[k] = hits / n
    end
  end) end)
  return accs
end

-- ---- adversarial paths (Fig. 6) ---------------------------------------------------------------------

--- Targeted iterative FGSM from one input x [1, D] (pixels in [0, 1])
--- towards class `target` (1-based): x <- clip(x - eps * sign(grad_x L), 0, 1)
--- with L the classifier's error against the one-hot target (for a net
--- ending in nn.Sigmoid taken at its logits, so saturated outputs still
--- give a gradient), o.steps times
--- (100) with o.eps (0.01). Returns {z = [steps + 1, 2] latents of every
--- iterate, predictions = {...}, flip = the first step predicting the
--- target (nil if none), x = the last iterate}; with o.keep_inputs also
--- xs = [steps + 1, ...] every iterate (for lm.explain.path).
function A.fgsm_path(net, recorder, vae, x, target, o)
  o = o or {}
  local steps, eps = o.steps or 100, o.eps or 0.01
  local classes = o.classes or 10
  local device = lm.train.device_of(net)
  local goal = lm.zeros(1, classes)
  goal[1][target] = 1
  goal = goal:to(device)
  local logits = Adv.logits_of(net)
  local cur = x:to(device):clone()
  local zs, preds, flip, xs = {}, {}, nil, {}
  -- the input's gradient only: the parameters gather none (frozen)
  lm.nn.evaluating(net, function()
    for s = 0, steps do
      if o.keep_inputs then xs[#xs + 1] = cur:detach():to('cpu') end
      local h, out = recorder:record(cur)
      zs[#zs + 1] = lm.no_grad(function() return vae:encode(h) end):to('cpu')
      local p = out:argmax(2):item()
      preds[#preds + 1] = p
      if p == target and not flip then flip = s end
      if s == steps then break end
      local xin = cur:detach():requires_grad(true)
      local grad = Adv.gradient(net, logits, xin, goal)
      cur = lm.no_grad(function() return (xin - grad:sign() * eps):clamp(0, 1) end)
    end
  end, {frozen = true})
  return {z = lm.cat(zs, 1), predictions = preds, flip = flip, x = cur:to('cpu'),
    xs = o.keep_inputs and lm.cat(xs, 1) or nil}
end

--- The estimated log10 error as a heat map behind axes `ax`, over
--- [-lim, lim]^2 (o.lim, 4) or o.xlim x o.ylim, in o.cells x o.cells cells
--- (80); a colour bar when o.colorbar is a label.
function A.error_heatmap(ax, est, o)
  o = o or {}
  local rows, xl, yl = A.error_grid(est, o)
  ax:heatmap(rows, {xlim = xl, ylim = yl, colorbar = o.colorbar})
  return ax
end

--- The estimated log10 error on a grid of o.cells x o.cells (80) cell
--- centres over [-lim, lim]^2 (o.lim, 4) or o.xlim x o.ylim: rows of values
--- (row 1 at the bottom), and the x and y limits.
function A.error_grid(est, o)
  o = checks.options(o, "analyses.error_grid")
  checks.opts(o, "analyses.error_grid", {"lim", "cells", "xlim", "ylim", "colorbar"}) -- (error_heatmap's o)
  checks.optional_size(o.cells, "o.cells", "analyses.error_grid")
  local lim, G = o.lim or 4, o.cells or 80
  local xl, yl = o.xlim or {-lim, lim}, o.ylim or {-lim, lim}
  local pts = {}
  for i = 1, G do
    for j = 1, G do
      pts[#pts + 1] = {xl[1] + (j - 0.5) * (xl[2] - xl[1]) / G, yl[1] + (i - 0.5) * (yl[2] - yl[1]) / G}
    end
  end
  local vals = lm.introspect.estimate(est, lm.tensor(pts)):totable()
  local rows = {}
  for i = 1, G do rows[i] = {} for j = 1, G do rows[i][j] = vals[(i - 1) * G + j] end end
  return rows, xl, yl
end

--- Fig. 6 as a file: targeted FGSM paths from one input x [1, ...] (true
--- class o.label) to every other class, over the estimated error, zoomed on
--- the paths. o: net, recorder, vae, est, x, label, classes (names), steps,
--- eps, title. Returns {label, eps, steps, targets = {name -> {flip_step,
--- success, final_prediction}}, success_rate, start_prediction}, and the
--- paths {{target, z = [steps + 1, 2], flip}, ...}.
function A.fgsm_figure(path, o)
  -- the paths and their drawing are lumen.introspect.figures' (Fig. 6 for
  -- several images shares them); required here, as it requires this module
  local Fig = require 'lumen.introspect.figures'
  local run = Fig.fgsm_run(o)
  local fig = lm.plot.figure{width = 820, height = 680, title = o.title}
  local ax = fig:axes{rect = {70, 60, 540, 540}, xlabel = "z1", ylabel = "z2", xlim = run.xlim, ylim = run.ylim}
  Fig.draw_fgsm(ax, o.est, run, o.classes, {colorbar = "log10 e_hat"})
  fig:save(path)
  return {label = o.classes[o.label], start_prediction = run.start_prediction, eps = o.eps,
    steps = o.steps, targets = run.targets, success_rate = run.success_rate}, run.paths
end

-- ---- reliability ------------------------------------------------------------------------------------

--- Per class k (1-based, by true label): the estimated log10 errors of the
--- correctly and of the wrongly classified samples, and the class's
--- sensitivity (the fraction of its samples classified correctly).
function A.reliability_by_class(log_e_hat, labels, predictions, classes)
  local e, lab, pred = log_e_hat:totable(), labels:totable(), predictions:totable()
  local out = {}
  for k = 1, classes do out[k] = {correct = {}, wrong = {}} end
  for i, l in ipairs(lab) do
    if not out[l] then
      error(string.format("reliability_by_class: label %s of sample %d is not a class in 1..%d", tostring(l), i,
        classes), 2)
    end
    local bucket = pred[i] == l and out[l].correct or out[l].wrong
    bucket[#bucket + 1] = e[i]
  end
  for k = 1, classes do
    local n = #out[k].correct + #out[k].wrong
    out[k].sensitivity = n > 0 and #out[k].correct / n or 0 / 0
  end
  return out
end

-- The detection benchmark, risk-coverage and their measures
-- (lumen.introspect.detection) are analyses too.
for k, v in pairs(require 'lumen.introspect.detection') do A[k] = v end

return A
