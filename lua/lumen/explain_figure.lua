-- Attribution figures for lm.explain: heat maps on a diverging colour map
-- centred at 0 (red raises the explained score, blue lowers it), over the
-- grey input or alone, in grids of samples with captions.
local lm = require 'lumen'
local plot = require 'lumen.plot'
local checks = require 'lumen.nn.checks'

local M = {}

-- the ends of the diverging map (ColorBrewer RdBu's), white in the middle
M.POSITIVE = {0.792, 0.000, 0.125}
M.NEGATIVE = {0.020, 0.443, 0.690}

--- The diverging colour (0xRRGGBBAA) of t in [0, 1], white at 0.5, blue at 0
--- and red at 1: a `cmap` for ax:heatmap.
function M.diverging(t)
  if type(t) ~= "number" then checks.number(t, "t", "lm.explain.diverging") end -- (a cmap: called per cell)
  if t ~= t then t = 0.5 end
  t = math.max(0, math.min(1, t)) * 2 - 1
  local e = t >= 0 and M.POSITIVE or M.NEGATIVE
  local s = math.abs(t)
  return plot.rgba(1 - s + s * e[1], 1 - s + s * e[2], 1 - s + s * e[3])
end

local function grey_of(image)
  if image:dim() == 3 then return image:mean(1) end
  return image
end

--- An attribution map attr [H, W] as an RGB image [3, H, W]: each element
--- coloured by attr / vmax clamped to [-1, 1] between the background
--- (white, or with `image` [H, W] or [C, H, W] in [0, 1] its grey level:
--- 0.45 + 0.55 g, or 1 - 0.55 g with o.invert, ink on paper) and the
--- diverging map's red (positive) or blue (negative) end. o.vmax defaults
--- to the largest |attr| (1 when all are 0).
function M.colorize(attr, image, o)
  checks.tensor(attr, "attr", "lm.explain.colorize")
  checks.optional_tensor(image, "image", "lm.explain.colorize")
  o = checks.options(o, "lm.explain.colorize")
  if o.vmax ~= nil then checks.number(o.vmax, "o.vmax", "lm.explain.colorize") end
  attr = attr:to("cpu"):float()
  if attr:dim() == 3 then attr = attr:sum(1) end
  if attr:dim() ~= 2 then
    error("colorize: attributions must be [H, W] or [C, H, W], got " .. attr:shape_string(), 2)
  end
  local vmax = o.vmax or attr:abs():max():item()
  if vmax ~= vmax or vmax <= 0 then vmax = 1 end
  local t = (attr / vmax):clamp(-1, 1)
  local pos, neg = t:clamp(0, 1), (-t):clamp(0, 1)
  local base
  if image then
    local g = grey_of(image:to("cpu"):float())
    if g:numel() ~= attr:numel() then
      error(string.format("colorize: image %s and attributions %s differ in size", image:shape_string(),
        attr:shape_string()), 2)
    end
    g = g:reshape(attr:shape()):clamp(0, 1)
    base = o.invert and (1 - g * 0.55) or (g * 0.55 + 0.45)
  else
    base = lm.ones(attr:shape())
  end
  local keep = (1 - pos - neg)
  local ch = {}
  for c = 1, 3 do ch[c] = base * keep + pos * M.POSITIVE[c] + neg * M.NEGATIVE[c] end
  return lm.stack(ch, 1)
end

-- The image shape of one sample of `images`: o.shape, the images' own
-- [C, H, W] (or [H, W]), or for flat rows a square (grey) or a square of
-- three channels.
local function sample_shape(images, shape)
  if shape then return shape end
  if images:dim() == 4 then return {images:size(2), images:size(3), images:size(4)} end
  if images:dim() == 3 then return {1, images:size(2), images:size(3)} end
  local numel = images:numel() // images:size(1)
  local side = math.floor(math.sqrt(numel) + 0.5)
  if side * side == numel then return {1, side, side} end
  side = math.floor(math.sqrt(numel / 3) + 0.5)
  if 3 * side * side == numel then return {3, side, side} end
  error(string.format("figure: cannot tell the image shape of samples of %d values: give opts.shape", numel), 3)
end

local function to_image(t, shape)
  local C = #shape == 3 and shape[1] or 1
  local H, W = shape[#shape - 1], shape[#shape]
  return t:contiguous():view(C, H, W)
end

-- One sample's attributions as [H, W] (channels summed; a smaller map, as
-- Grad-CAM's, resized to the image).
local function attribution_map(a, H, W)
  a = a:to("cpu"):float():contiguous()
  if a:numel() % (H * W) == 0 then
    local c = a:numel() // (H * W)
    return a:view(c, H, W):sum(1)
  end
  if a:dim() == 2 then
    return lm.image.resize(a:view(1, 1, a:size(1), a:size(2)), H, W):view(H, W)
  end
  error(string.format("figure: attributions of %d values do not fit a %dx%d image", a:numel(), H, W), 3)
end

--- A grid of attribution figures written to `path` (PNG): one cell per
--- sample of `images` [N, ...] (in [0, 1]; flat rows need opts.shape,
--- e.g. {1, 28, 28}, unless square) with the input and one heat map per
--- attribution tensor (`attributions`: one tensor [N, ...] or a list of
--- them, e.g. {class, log10 e_hat}; Grad-CAM maps [N, h, w] are resized).
--- opts: titles (a caption per sample, under its input), labels (a name
--- per attribution, under its map), overlay (true: over the grey image),
--- invert (ink on paper: true for grey images), input (true: show the input
--- panel), vmax (a number shared by every map; default each map's largest
--- |value|), scale (pixels per element; default about 96 px a panel), cols
--- (samples per row), title. Returns path, the plot figure and the panels
--- ({x, y, w, h, sample, column}; column 0 is the input).
function M.figure(path, images, attributions, opts)
  checks.string(path, "path", "lm.explain.figure")
  opts = checks.options(opts, "lm.explain.figure")
  if not lm.is_tensor(images) then error("figure: images must be a tensor [N, ...]", 2) end
  if images:dim() < 2 then
    error("figure: images must be a tensor [N, ...] of samples, got one of shape [" .. images:shape_string() .. "]", 2)
  end
  local list = lm.is_tensor(attributions) and {attributions} or attributions
  if type(list) ~= "table" or #list == 0 then error("figure: attributions must be a tensor or a list of tensors", 2) end
  local n = images:size(1)
  for j, a in ipairs(list) do
    if not lm.is_tensor(a) or a:size(1) ~= n then
      error(string.format("figure: attributions %d must be a tensor of %d samples", j, n), 2)
    end
  end
  local shape = sample_shape(images, opts.shape)
  local C, H, W = #shape == 3 and shape[1] or 1, shape[#shape - 1], shape[#shape]
  local scale = opts.scale or math.max(1, math.floor(96 / math.max(H, W) + 0.5))
  local show_input = opts.input ~= false
  local panels_per = #list + (show_input and 1 or 0)
  local pw, ph = W * scale, H * scale
  local gap, cell_gap, caption = 4, 18, 16
  local cell_w = panels_per * pw + (panels_per - 1) * gap
  local cols = opts.cols or math.max(1, math.min(n, (1400 + cell_gap) // (cell_w + cell_gap)))
  local rows = (n + cols - 1) // cols
  local top = opts.title and 44 or 12
  local legend_h = 36
  local width = math.max(cols * (cell_w + cell_gap) - cell_gap + 24, 360)
  local height = top + rows * (ph + caption + cell_gap) + legend_h
  local fig = plot.figure{width = width, height = height, title = opts.title}
  local overlay = opts.overlay ~= false
  local invert = opts.invert
  if invert == nil then invert = C == 1 end
  local imgs = images:to("cpu"):float()
  local panels = {}
  for i = 1, n do
    local r, c = (i - 1) // cols, (i - 1) % cols
    local x0, y0 = 12 + c * (cell_w + cell_gap), top + r * (ph + caption + cell_gap)
    local img = to_image(imgs[i], shape)
    local lo, hi = img:min():item(), img:max():item()
    if opts.range then lo, hi = opts.range[1], opts.range[2] end
    local unit = hi > lo and ((img - lo) / (hi - lo)):clamp(0, 1) or img:clamp(0, 1)
    local x = x0
    if show_input then
      fig:image(x, y0, C == 1 and unit:view(H, W) or unit, scale)
      panels[#panels + 1] = {x = x, y = y0, w = pw, h = ph, sample = i, column = 0}
      if opts.titles and opts.titles[i] then
        fig:text(x, y0 + ph + 12, tostring(opts.titles[i]), {size = 10})
      end
      x = x + pw + gap
    end
    for j, a in ipairs(list) do
      local map = attribution_map(a[i], H, W)
      local rgb = M.colorize(map, overlay and unit or nil, {vmax = opts.vmax, invert = invert})
      fig:image(x, y0, rgb, scale)
      panels[#panels + 1] = {x = x, y = y0, w = pw, h = ph, sample = i, column = j}
      local label = opts.labels and opts.labels[j]
      if not show_input and j == 1 and opts.titles and opts.titles[i] then
        label = tostring(opts.titles[i]) .. (label and (": " .. label) or "")
      end
      if label then fig:text(x, y0 + ph + 12, tostring(label), {size = 10}) end
      x = x + pw + gap
    end
  end
  -- the colour key: the diverging map from blue (lowers) to red (raises)
  local key_w = 160
  local key = lm.zeros(3, 8, key_w)
  local rows_key = {}
  for k = 1, key_w do
    local col = M.diverging((k - 1) / (key_w - 1))
    rows_key[k] = {(col >> 24) / 255, ((col >> 16) & 255) / 255, ((col >> 8) & 255) / 255}
  end
  local t = lm.tensor(rows_key):t():contiguous()           -- [3, key_w]
  key:copy_(t:view(3, 1, key_w):expand(3, 8, key_w))
  local ky = height - legend_h + 10
  fig:text(12, ky + 8, "lowers", {size = 10})
  fig:image(52, ky, key, 1)
  fig:text(52 + key_w + 6, ky + 8, "raises the explained score", {size = 10})
  fig:save(path)
  return path, fig, panels
end

return M
