-- Figures as PNG: axes with ticks and labels, lines, scatter plots, heat
-- maps with colour bars, arrows, images, legends; several axes per figure.
-- Drawing commands are recorded and rendered when the figure is saved, so
-- axis limits can follow the data.
--
--   local plot = require 'lumen.plot'
--   local fig = plot.figure{width = 800, height = 500, title = "Loss"}
--   local ax = fig:axes{xlabel = "epoch", ylabel = "loss"}
--   ax:line({1, 2, 3}, {0.5, 0.3, 0.2}, {label = "train"})
--   ax:legend()
--   fig:save("loss.png")
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

local number_or_nil = checks.is_optional_number

local plot = {}

-- ---- argument checks (errors point at the line that called the public function) -----------------

local shown = checks.shown

local whole = checks.is_whole
local finite = checks.is_finite

-- level 4 (the default): called by a check that the public function called;
-- 3: called by the public function itself
local function bad(fname, what, wanted, v, level)
  error(string.format("%s: %s must be %s, got %s", fname, what, wanted, shown(v)), level or 4)
end

-- v must be a colour 0xRRGGBBAA (plot.rgba gives one), or nil
local function check_color(v, what, fname, level)
  if v ~= nil and not whole(v) then bad(fname, what, "a colour 0xRRGGBBAA (an integer, lm.plot.rgba)", v, level) end
end

-- a label: nil, a string or a number
local function check_label(v, what, fname, level)
  if v ~= nil and type(v) ~= "string" and type(v) ~= "number" then bad(fname, what, "a string", v, level) end
end

-- v must be nil or a number > 0
local function check_positive(v, what, fname, level)
  if v ~= nil and not (type(v) == "number" and v > 0) then bad(fname, what, "a number > 0", v, level) end
end

-- {lo, hi}: two finite numbers (with lo <= hi when `ordered`), or nil
local function check_range(v, what, fname, ordered)
  if v ~= nil and (type(v) ~= "table" or not finite(v[1]) or not finite(v[2]) or ordered and v[1] > v[2]) then
    bad(fname, what, ordered and "{lo, hi} (finite numbers, lo <= hi)" or "{lo, hi} (finite numbers)", v)
  end
end

-- The values of a list or tensor argument as a Lua list of numbers; `depth`:
-- the functions between this one and the public function (0: it calls this).
local function number_list(v, what, fname, depth)
  if lm.is_tensor(v) then return v:contiguous():view(-1):totable() end
  if type(v) ~= "table" then bad(fname, what, "a list of numbers or a tensor", v, 4 + depth) end
  for i = 1, #v do
    if type(v[i]) ~= "number" then
      error(string.format("%s: %s[%d] must be a number, got %s", fname, what, i, shown(v[i])), 3 + depth)
    end
  end
  return v
end

-- ---- colours ------------------------------------------------------------------------------------------

--- 0xRRGGBBAA from r, g, b in [0, 1] and alpha (default 1).
function plot.rgba(r, g, b, a)
  checks.number(r, "r", "lm.plot.rgba")
  checks.number(g, "g", "lm.plot.rgba")
  checks.number(b, "b", "lm.plot.rgba")
  if a ~= nil then checks.number(a, "a", "lm.plot.rgba") end
  local function c(v) return math.max(0, math.min(255, math.floor(v * 255 + 0.5))) end
  return (c(r) << 24) | (c(g) << 16) | (c(b) << 8) | c(a or 1)
end

local function hex(s, a) -- "#1f77b4"
  local r, g, b = tonumber(s:sub(2, 3), 16), tonumber(s:sub(4, 5), 16), tonumber(s:sub(6, 7), 16)
  return (r << 24) | (g << 16) | (b << 8) | math.floor((a or 1) * 255 + 0.5)
end

--- Ten distinguishable class colours (the Tableau 10 palette).
plot.CLASS_COLORS = {hex "#1f77b4", hex "#ff7f0e", hex "#2ca02c", hex "#d62728", hex "#9467bd",
  hex "#8c564b", hex "#e377c2", hex "#7f7f7f", hex "#bcbd22", hex "#17becf"}

--- Class k's colour (k from 1): the ten colours again from the eleventh class on.
function plot.class_color(k)
  if not whole(k) or k < 1 then bad("lm.plot.class_color", "k", "a class number >= 1", k, 3) end
  return plot.CLASS_COLORS[(math.tointeger(k) - 1) % #plot.CLASS_COLORS + 1]
end

--- The colour of a color with another alpha in [0, 1].
function plot.with_alpha(color, a)
  check_color(color, "color", "lm.plot.with_alpha")
  if color == nil then bad("lm.plot.with_alpha", "color", "a colour 0xRRGGBBAA (an integer, lm.plot.rgba)", nil, 3) end
  checks.number(a, "a", "lm.plot.with_alpha")
  return (color & 0xFFFFFF00) | math.floor(a * 255 + 0.5)
end

-- viridis, sampled at 9 points (perceptually uniform, readable in grey)
local VIRIDIS = {{0.267, 0.005, 0.329}, {0.283, 0.141, 0.458}, {0.254, 0.265, 0.530},
  {0.207, 0.372, 0.553}, {0.164, 0.471, 0.558}, {0.128, 0.567, 0.551}, {0.135, 0.659, 0.518},
  {0.267, 0.749, 0.441}, {0.478, 0.821, 0.318}, {0.741, 0.873, 0.150}, {0.993, 0.906, 0.144}}

--- Viridis colour of t in [0, 1].
function plot.viridis(t, alpha)
  checks.number(t, "t", "lm.plot.viridis")
  if alpha ~= nil then checks.number(alpha, "alpha", "lm.plot.viridis") end
  if t ~= t then t = 0 end
  t = math.max(0, math.min(1, t)) * (#VIRIDIS - 1)
  local i = math.min(math.floor(t), #VIRIDIS - 2)
  local f, a, b = t - i, VIRIDIS[i + 1], VIRIDIS[i + 2]
  return plot.rgba(a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f, a[3] + (b[3] - a[3]) * f, alpha)
end

local BLACK, GREY, LIGHT = 0x222222FF, 0x888888FF, 0xE8E8E8FF

-- ---- fonts -------------------------------------------------------------------------------------------------

local FONT_PATHS = {"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
  "/usr/share/fonts/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"}
local font_cache

--- The figure font (DejaVu Sans from Debian's fonts-dejavu-core, or $LUMEN_FONT).
function plot.font()
  if font_cache then return font_cache end
  local paths = {}
  if os.getenv("LUMEN_FONT") then paths[1] = os.getenv("LUMEN_FONT") end
  for _, p in ipairs(FONT_PATHS) do paths[#paths + 1] = p end
  for _, p in ipairs(paths) do
    local f = io.open(p, "rb")
    if f then
      f:close()
      font_cache = lm._font(p)
      return font_cache
    end
  end
  error("plot: no font found (install Debian's fonts-dejavu-core or set LUMEN_FONT to a .ttf); looked in "
    .. table.concat(paths, ", "), 2)
end

-- ---- ticks ---------------------------------------------------------------------------------------------------

--- About n "nice" tick values covering [lo, hi].
function plot.ticks(lo, hi, n)
  if not finite(lo) then bad("lm.plot.ticks", "lo", "a finite number", lo, 3) end
  if not finite(hi) then bad("lm.plot.ticks", "hi", "a finite number", hi, 3) end
  n = n or 5
  if not finite(n) or n < 1 then bad("lm.plot.ticks", "n", "a number >= 1 (about how many ticks)", n, 3) end
  if hi <= lo then -- one tick, with the step a label of it needs
    return {lo}, lo == 0 and 1 or 10 ^ math.floor(math.log(math.abs(lo), 10))
  end
  local raw = hi / n - lo / n -- (hi - lo would overflow for -1e308..1e308)
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step = mag
  for _, m in ipairs{1, 2, 2.5, 5, 10} do
    if raw <= m * mag * 1.0001 then step = m * mag break end
  end
  local ticks = {}
  local first = math.ceil(lo / step - 1e-9)
  -- each tick from its index (adding the step would stand still where it is
  -- below the spacing of doubles at the data's values), at most 1000
  for k = 0, 1000 do
    local t = (first + k) * step
    if t > hi + step * 1e-9 or (#ticks > 0 and t <= ticks[#ticks]) then break end
    ticks[#ticks + 1] = math.abs(t) < step * 1e-9 and 0 or t
  end
  return ticks, step
end

--- A tick's label with as many digits as the step between ticks tells
--- apart (150000 beside 100000 and 200000 is 1.5e+05, not 2e+05).
function plot.tick_label(v, step)
  checks.number(v, "v", "lm.plot.tick_label")
  if not (finite(step) and step > 0) then bad("lm.plot.tick_label", "step", "a finite number > 0", step, 3) end
  -- the power of ten of the step's last significant digit (2.5e-4: -5)
  local step_digit = math.floor(math.log(step, 10) + 1e-9)
  while step_digit > -300 do
    local m = step / 10 ^ step_digit
    if math.abs(m - math.floor(m + 0.5)) < 1e-6 * m then break end
    step_digit = step_digit - 1
  end
  if math.abs(v) >= 1e5 or (math.abs(v) < 1e-3 and v ~= 0) then
    local decimals = math.max(0, math.floor(math.log(math.abs(v), 10) + 1e-9) - step_digit)
    return string.format("%." .. math.min(decimals, 15) .. "e", v)
  end
  return string.format("%." .. math.max(0, -step_digit) .. "f", v)
end

-- ---- axes -------------------------------------------------------------------------------------------------------

local Axes = {}
Axes.__index = Axes

local function extend(lim, v)
  if finite(v) then
    lim[1] = lim[1] and math.min(lim[1], v) or v
    lim[2] = lim[2] and math.max(lim[2], v) or v
  end
end

-- the options every drawing method shares
local function check_style(o, fname)
  check_color(o.color, "color", fname, 5)
  check_color(o.outline, "outline", fname, 5)
  check_label(o.label, "label", fname, 5)
  for _, k in ipairs{"width", "radius", "head", "size"} do check_positive(o[k], k, fname, 5) end
end

-- xs and ys of a line or scatter plot, as lists of numbers
local function points(xs, ys, fname)
  xs, ys = number_list(xs, "xs", fname, 1), number_list(ys, "ys", fname, 1)
  if #ys < #xs then
    error(string.format("%s: %d xs but only %d ys (one y for each x)", fname, #xs, #ys), 3)
  end
  return xs, ys
end

function Axes:line(xs, ys, o)
  o = checks.options(o, "ax:line")
  check_style(o, "ax:line")
  xs, ys = points(xs, ys, "ax:line")
  for i = 1, #xs do extend(self.data_x, xs[i]); extend(self.data_y, ys[i]) end
  self.items[#self.items + 1] = {kind = "line", xs = xs, ys = ys,
    color = o.color or plot.CLASS_COLORS[(#self.items % 10) + 1],
    width = o.width or 2, label = o.label, dashed = o.dashed, marker = o.marker}
  return self
end

--- Points with one colour (o.color) or one per point (o.colors); o.radius, o.label.
function Axes:scatter(xs, ys, o)
  o = checks.options(o, "ax:scatter")
  check_style(o, "ax:scatter")
  xs, ys = points(xs, ys, "ax:scatter")
  if o.colors ~= nil then
    if type(o.colors) ~= "table" then bad("ax:scatter", "colors", "a list of colours (one a point)", o.colors, 3) end
    for i = 1, #xs do check_color(o.colors[i], "colors[" .. i .. "]", "ax:scatter") end
  end
  for i = 1, #xs do extend(self.data_x, xs[i]); extend(self.data_y, ys[i]) end
  self.items[#self.items + 1] = {kind = "scatter", xs = xs, ys = ys, color = o.color or plot.CLASS_COLORS[1],
    colors = o.colors, radius = o.radius or 2, label = o.label, outline = o.outline}
  return self
end

function Axes:arrow(x0, y0, x1, y1, o)
  checks.number(x0, "x0", "ax:arrow")
  checks.number(y0, "y0", "ax:arrow")
  checks.number(x1, "x1", "ax:arrow")
  checks.number(y1, "y1", "ax:arrow")
  o = checks.options(o, "ax:arrow")
  check_style(o, "ax:arrow")
  extend(self.data_x, x0); extend(self.data_x, x1); extend(self.data_y, y0); extend(self.data_y, y1)
  self.items[#self.items + 1] = {kind = "arrow", x0 = x0, y0 = y0, x1 = x1, y1 = y1,
    color = o.color or BLACK, width = o.width or 1.5, head = o.head or 7}
  return self
end

--- A heat map of values[row][col] over the rectangle xlim x ylim (row 1 at
--- the bottom); o.vmin, o.vmax, o.colorbar (a label), o.cmap (function t -> colour).
function Axes:heatmap(values, o)
  o = checks.options(o, "ax:heatmap")
  if lm.is_tensor(values) then
    if values:dim() ~= 2 then
      error("ax:heatmap: values must be a matrix [rows, cols], got a tensor [" .. values:shape_string() .. "]", 2)
    end
    values = values:totable()
  end
  local cols = type(values) == "table" and type(values[1]) == "table" and #values[1] or 0
  if cols == 0 then bad("ax:heatmap", "values", "a matrix: rows of numbers, or a 2-d tensor", values, 3) end
  for i, row in ipairs(values) do
    if type(row) ~= "table" or #row ~= cols then
      error(string.format("ax:heatmap: row %d of values has %s values, row 1 has %d", i,
        type(row) == "table" and #row or shown(row), cols), 2)
    end
  end
  local given = {}
  for _, k in ipairs{"vmin", "vmax"} do
    local v = o[k]
    if lm.is_tensor(v) and v:numel() == 1 then v = v:item() end -- a tensor's max(), say
    if v ~= nil and not finite(v) then bad("ax:heatmap", k, "a finite number", v, 3) end
    given[k] = v
  end
  check_range(o.xlim, "xlim", "ax:heatmap")
  check_range(o.ylim, "ylim", "ax:heatmap")
  if o.cmap ~= nil then checks.callable(o.cmap, "cmap", "ax:heatmap") end
  if o.colorbar ~= false then check_label(o.colorbar, "colorbar", "ax:heatmap") end
  local vmin, vmax = given.vmin, given.vmax
  for _, row in ipairs(values) do
    for j, v in ipairs(row) do
      if type(v) ~= "number" then
        error(string.format("ax:heatmap: values must be numbers, got %s in column %d", shown(v), j), 2)
      end
      if finite(v) then -- the colour range of the finite values
        if not given.vmin then vmin = vmin and math.min(vmin, v) or v end
        if not given.vmax then vmax = vmax and math.max(vmax, v) or v end
      end
    end
  end
  vmin, vmax = vmin or 0, vmax or 1 -- no finite value: any range
  local xl, yl = o.xlim or {0, #values[1]}, o.ylim or {0, #values}
  extend(self.data_x, xl[1]); extend(self.data_x, xl[2]); extend(self.data_y, yl[1]); extend(self.data_y, yl[2])
  self.items[#self.items + 1] = {kind = "heatmap", values = values, xlim = xl, ylim = yl, vmin = vmin,
    vmax = vmax, cmap = o.cmap or plot.viridis}
  if o.colorbar then self.colorbar = {label = o.colorbar, vmin = vmin, vmax = vmax, cmap = o.cmap or plot.viridis} end
  return self
end

--- A violin at x = position: the Gaussian kernel density of `values`
--- (Scott's bandwidth), mirrored, with a line at the median. o.width (in x
--- units, 0.8), o.color, o.label; o.cut (0): how many bandwidths the shape
--- reaches past the smallest and largest value (0: it ends at the data, so
--- a few spread samples draw no values that never occurred).
function Axes:violin(position, values, o)
  checks.number(position, "position", "ax:violin")
  o = checks.options(o, "ax:violin")
  check_style(o, "ax:violin")
  if o.cut ~= nil and not (finite(o.cut) and o.cut >= 0) then bad("ax:violin", "cut", "a number >= 0", o.cut, 3) end
  values = number_list(values, "values", "ax:violin", 0)
  -- the finite values only: one NaN or infinity made the density NaN (nothing drawn) and the sort's order,
  -- hence the median, undefined
  local sorted = {}
  for _, v in ipairs(values) do if finite(v) then sorted[#sorted + 1] = v end end
  local n = #sorted
  if n == 0 then return self end
  table.sort(sorted)
  local mean, var = 0, 0
  for _, v in ipairs(sorted) do mean = mean + v end
  mean = mean / n
  for _, v in ipairs(sorted) do var = var + (v - mean) ^ 2 end
  local sd = math.sqrt(var / math.max(n - 1, 1))
  local bw = math.max(1.06 * sd * n ^ (-1 / 5), (sorted[n] - sorted[1]) * 1e-3, 1e-6)
  local cut = o.cut or 0
  local lo, hi = sorted[1] - cut * bw, sorted[n] + cut * bw
  local ys, dens, peak = {}, {}, 0
  local steps = 60
  for k = 0, steps do
    local y = lo + (hi - lo) * k / steps
    local sum = 0
    for _, v in ipairs(sorted) do sum = sum + math.exp(-0.5 * ((y - v) / bw) ^ 2) end
    ys[#ys + 1], dens[#dens + 1] = y, sum
    if sum > peak then peak = sum end
  end
  local half = (o.width or 0.8) / 2
  extend(self.data_x, position - half); extend(self.data_x, position + half)
  extend(self.data_y, lo); extend(self.data_y, hi)
  self.items[#self.items + 1] = {kind = "violin", x = position, ys = ys, dens = dens, peak = peak,
    half = half, median = sorted[(n + 1) // 2], color = o.color or plot.CLASS_COLORS[1], label = o.label}
  return self
end

--- Category labels under integer x positions (1, 2, ...), instead of numbers.
function Axes:categories(names)
  checks.table(names, "names", "ax:categories")
  self.category_names = names
  return self
end

function Axes:text(x, y, s, o)
  checks.number(x, "x", "ax:text")
  checks.number(y, "y", "ax:text")
  if type(s) ~= "string" and type(s) ~= "number" then bad("ax:text", "the text", "a string", s, 3) end
  o = checks.options(o, "ax:text")
  check_style(o, "ax:text")
  if o.size ~= nil and not (finite(o.size) and o.size > 0 and o.size <= 200) then
    bad("ax:text", "size", "a number in (0, 200] (pixels)", o.size, 3) -- (not at save, where it failed)
  end
  self.items[#self.items + 1] = {kind = "text", x = x, y = y, s = s, color = o.color or BLACK, size = o.size or 12}
  return self
end

--- Shows a legend of the labelled items; extra entries {label, color} may be given.
--- A legend of {label, colour} entries (plus labelled items): where is
--- "upper right" (default), "upper left", "lower left", "lower right",
--- "outside" (right of the axes) or "below" (under the x label).
local LEGEND_PLACES = {["upper right"] = true, ["upper left"] = true, ["lower left"] = true,
  ["lower right"] = true, outside = true, below = true}

function Axes:legend(entries, where)
  if entries ~= nil then
    if type(entries) ~= "table" then bad("ax:legend", "entries", "a list of {label, colour} entries", entries, 3) end
    for i, e in ipairs(entries) do
      if type(e) ~= "table" or (type(e[1]) ~= "string" and type(e[1]) ~= "number") or not whole(e[2]) then
        bad("ax:legend", "entry " .. i, "{label, colour}", e, 3)
      end
    end
  end
  if where ~= nil and not LEGEND_PLACES[where] then
    bad("ax:legend", "where", "'upper right', 'upper left', 'lower left', 'lower right', 'outside' or 'below'",
      where, 3)
  end
  self.show_legend = {entries = entries, where = where or "upper right"}
  return self
end

local DBL_MAX = 1.7976931348623157e308

-- A range of one value widened around it, by 0.5 or by 5 % of the value
-- where 0.5 would be lost to rounding (1e16 +- 0.5 is 1e16); a range that
-- is all of float64's padded without overflowing.
local function widened(l, fraction, padded)
  local lo, hi = l[1], l[2]
  if lo == hi then
    local half = math.max(0.5, math.abs(lo) * 0.05)
    lo, hi = lo - half, hi + half
  end
  if padded then
    local pad = hi * fraction - lo * fraction
    lo, hi = math.max(lo - pad, -DBL_MAX), math.min(hi + pad, DBL_MAX)
  end
  return {lo, hi}
end

function Axes:limits()
  local xl = self.xlim or {self.data_x[1] or 0, self.data_x[2] or 1}
  local yl = self.ylim or {self.data_y[1] or 0, self.data_y[2] or 1}
  return widened(xl, 0.03, not self.xlim), widened(yl, 0.05, not self.ylim)
end

-- (the unchecked one render calls for every point)
local function pixel(ax, x, y)
  local xl, yl = ax:limits()
  local r = ax.rect
  -- (halves: exact, and a range as wide as float64's does not overflow)
  return r.x + (x / 2 - xl[1] / 2) / (xl[2] / 2 - xl[1] / 2) * r.w,
    r.y + r.h - (y / 2 - yl[1] / 2) / (yl[2] / 2 - yl[1] / 2) * r.h
end

-- A dashed segment: DASH_ON pixels drawn, DASH_OFF left out, starting
-- `phase` pixels into the pattern; returns the phase at its end.
local DASH_ON, DASH_OFF = 6, 4
local function dashes(canvas, x0, y0, x1, y1, width, color, phase)
  local len = math.sqrt((x1 - x0) ^ 2 + (y1 - y0) ^ 2)
  if len == 0 then return phase end
  local period, s = DASH_ON + DASH_OFF, 0
  while s < len do
    local p = (phase + s) % period
    local stop = math.min(len, s + (p < DASH_ON and DASH_ON - p or period - p))
    if p < DASH_ON then
      local a, b = s / len, stop / len
      canvas:line(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a, x0 + (x1 - x0) * b, y0 + (y1 - y0) * b, width, color)
    end
    s = stop
  end
  return phase + len
end

--- Pixel position of data (x, y).
function Axes:to_pixel(x, y)
  checks.number(x, "x", "ax:to_pixel")
  checks.number(y, "y", "ax:to_pixel")
  return pixel(self, x, y)
end

-- Liang-Barsky: the part of segment (x0, y0)-(x1, y1) inside rect r, or nil.
local function clip_segment(r, x0, y0, x1, y1)
  local t0, t1 = 0, 1
  local dx, dy = x1 - x0, y1 - y0
  for _, pq in ipairs{{-dx, x0 - r.x}, {dx, r.x + r.w - x0}, {-dy, y0 - r.y}, {dy, r.y + r.h - y0}} do
    local p, q = pq[1], pq[2]
    if p == 0 then
      if q < 0 then return nil end
    else
      local t = q / p
      if p < 0 then
        if t > t1 then return nil end
        if t > t0 then t0 = t end
      else
        if t < t0 then return nil end
        if t < t1 then t1 = t end
      end
    end
  end
  return x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy
end

local function inside(r, px, py)
  return px >= r.x and px <= r.x + r.w and py >= r.y and py <= r.y + r.h
end

function Axes:render(canvas, font)
  local registry = debug.getregistry()
  if getmetatable(canvas) ~= registry["lumen.Canvas"] then
    bad("ax:render", "canvas", "a canvas (fig:render draws the axes on its own)", canvas, 3)
  end
  if getmetatable(font) ~= registry["lumen.Font"] then
    bad("ax:render", "font", "a font (lm.plot.font())", font, 3)
  end
  local r = self.rect
  local xl, yl = self:limits()
  -- frame, grid and ticks
  local xt, xstep = plot.ticks(xl[1], xl[2], self.xticks or 6)
  local yt, ystep = plot.ticks(yl[1], yl[2], self.yticks or 5)
  canvas:fill_rect(r.x, r.y, r.x + r.w, r.y + r.h, 0xFFFFFFFF)
  if self.category_names then -- named positions 1..n instead of numeric ticks, those inside the limits
    xt = {}
    for i in ipairs(self.category_names) do
      if i >= xl[1] and i <= xl[2] then xt[#xt + 1] = i end
    end
  end
  for _, t in ipairs(xt) do
    local px = pixel(self, t, yl[1])
    if self.grid ~= false then canvas:line(px, r.y, px, r.y + r.h, 1, LIGHT) end
    canvas:line(px, r.y + r.h, px, r.y + r.h + 4, 1, BLACK)
    local s = self.category_names and tostring(self.category_names[t]) or plot.tick_label(t, xstep)
    canvas:text(font, px - font:width(11, s) / 2, r.y + r.h + 17, 11, BLACK, s)
  end
  for _, t in ipairs(yt) do
    local _, py = pixel(self, xl[1], t)
    if self.grid ~= false then canvas:line(r.x, py, r.x + r.w, py, 1, LIGHT) end
    canvas:line(r.x - 4, py, r.x, py, 1, BLACK)
    local s = plot.tick_label(t, ystep)
    canvas:text(font, r.x - 7 - font:width(11, s), py + 4, 11, BLACK, s)
  end
  -- items, clipped by drawing order (everything lies inside the limits by construction)
  for _, it in ipairs(self.items) do
    if it.kind == "heatmap" then
      local rows, cols = #it.values, #it.values[1]
      local span = (it.vmax - it.vmin) ~= 0 and (it.vmax - it.vmin) or 1
      for i = 1, rows do
        for j = 1, cols do
          local x0, y0 = pixel(self, it.xlim[1] + (j - 1) / cols * (it.xlim[2] - it.xlim[1]),
            it.ylim[1] + (i - 1) / rows * (it.ylim[2] - it.ylim[1]))
          local x1, y1 = pixel(self, it.xlim[1] + j / cols * (it.xlim[2] - it.xlim[1]),
            it.ylim[1] + i / rows * (it.ylim[2] - it.ylim[1]))
          -- whole pixels (partly covered edges would leave light seams between
          -- cells), clipped to the axes when the limits cut the map
          local cx0, cy0 = math.max(math.floor(x0 + 0.5), r.x), math.max(math.floor(y1 + 0.5), r.y)
          local cx1, cy1 = math.min(math.floor(x1 + 0.5), r.x + r.w), math.min(math.floor(y0 + 0.5), r.y + r.h)
          local v = it.values[i][j]
          if cx0 < cx1 and cy0 < cy1 and v == v then -- a NaN cell stays blank
            -- an infinity takes the end of the map on its side
            local t = v == math.huge and 1 or v == -math.huge and 0 or (v - it.vmin) / span
            canvas:fill_rect(cx0, cy0, cx1, cy1, it.cmap(t))
          end
        end
      end
    elseif it.kind == "line" then
      local phase = 0 -- along the line, in pixels: dashes run on across its segments
      for i = 2, #it.xs do
        local ax, ay = pixel(self, it.xs[i - 1], it.ys[i - 1])
        local bx, by = pixel(self, it.xs[i], it.ys[i])
        local x0, y0, x1, y1 = clip_segment(r, ax, ay, bx, by)
        if x0 and it.dashed then
          phase = dashes(canvas, x0, y0, x1, y1, it.width, it.color, phase)
        elseif x0 then
          canvas:line(x0, y0, x1, y1, it.width, it.color)
        end
      end
      if it.marker then
        for i = 1, #it.xs do
          local px, py = pixel(self, it.xs[i], it.ys[i])
          if inside(r, px, py) then canvas:disc(px, py, it.width + 1.5, it.color) end
        end
      end
    elseif it.kind == "scatter" then
      for i = 1, #it.xs do
        local px, py = pixel(self, it.xs[i], it.ys[i])
        if inside(r, px, py) then -- points outside the limits are not drawn
          if it.outline then canvas:disc(px, py, it.radius + 1.2, it.outline) end
          canvas:disc(px, py, it.radius, it.colors and it.colors[i] or it.color)
        end
      end
    elseif it.kind == "arrow" then
      local x0, y0 = pixel(self, it.x0, it.y0)
      local x1, y1 = pixel(self, it.x1, it.y1)
      local ang, h = math.atan(y1 - y0, x1 - x0), it.head
      local visible = inside(r, x0, y0) and inside(r, x1, y1)
      if visible then canvas:line(x0, y0, x1, y1, it.width, it.color) end
      if visible and (x1 - x0) ^ 2 + (y1 - y0) ^ 2 > 1 then
        canvas:polygon({x1, y1, x1 - h * math.cos(ang - 0.4), y1 - h * math.sin(ang - 0.4),
          x1 - h * math.cos(ang + 0.4), y1 - h * math.sin(ang + 0.4)}, it.color)
      end
    elseif it.kind == "violin" then
      local pts = {}
      for k = 1, #it.ys do
        local px, py = pixel(self, it.x + it.half * it.dens[k] / it.peak, it.ys[k])
        pts[#pts + 1] = px; pts[#pts + 1] = py
      end
      for k = #it.ys, 1, -1 do
        local px, py = pixel(self, it.x - it.half * it.dens[k] / it.peak, it.ys[k])
        pts[#pts + 1] = px; pts[#pts + 1] = py
      end
      canvas:polygon(pts, plot.with_alpha(it.color, 0.6))
      local mx0, my = pixel(self, it.x - it.half * 0.5, it.median)
      local mx1 = pixel(self, it.x + it.half * 0.5, it.median)
      canvas:line(mx0, my, mx1, my, 2, BLACK)
    elseif it.kind == "text" then
      local px, py = pixel(self, it.x, it.y)
      canvas:text(font, px, py, it.size, it.color, it.s)
    end
  end
  -- frame on top
  canvas:line(r.x, r.y + r.h, r.x + r.w, r.y + r.h, 1, BLACK)
  canvas:line(r.x, r.y, r.x, r.y + r.h, 1, BLACK)
  canvas:line(r.x + r.w, r.y, r.x + r.w, r.y + r.h, 1, GREY)
  canvas:line(r.x, r.y, r.x + r.w, r.y, 1, GREY)
  -- labels
  if self.title then
    canvas:text(font, r.x + r.w / 2 - font:width(14, self.title) / 2, r.y - 9, 14, BLACK, self.title)
  end
  if self.xlabel then
    canvas:text(font, r.x + r.w / 2 - font:width(12, self.xlabel) / 2, r.y + r.h + 36, 12, BLACK, self.xlabel)
  end
  if self.ylabel then
    canvas:text(font, r.x - 48, r.y + r.h / 2 + font:width(12, self.ylabel) / 2, 12, BLACK, self.ylabel, 90)
  end
  if self.colorbar then
    local cb = self.colorbar
    local x0, w = r.x + r.w + 14, 14
    for k = 0, r.h - 1 do
      canvas:fill_rect(x0, r.y + r.h - k - 1, x0 + w, r.y + r.h - k, cb.cmap(k / (r.h - 1)))
    end
    canvas:line(x0, r.y, x0, r.y + r.h, 1, BLACK)
    local ticks, step = plot.ticks(cb.vmin, cb.vmax, 5)
    for _, t in ipairs(ticks) do
      local py = r.y + r.h - (t - cb.vmin) / ((cb.vmax - cb.vmin) ~= 0 and (cb.vmax - cb.vmin) or 1) * r.h
      canvas:line(x0 + w, py, x0 + w + 4, py, 1, BLACK)
      canvas:text(font, x0 + w + 7, py + 4, 11, BLACK, plot.tick_label(t, step))
    end
    canvas:text(font, x0 + w + 52, r.y + r.h / 2 + font:width(12, cb.label) / 2, 12, BLACK, cb.label, 90)
  end
  if self.show_legend then
    local entries = {}
    for _, it in ipairs(self.items) do
      if it.label then entries[#entries + 1] = {it.label, it.color} end
    end
    for _, e in ipairs(self.show_legend.entries or {}) do entries[#entries + 1] = e end
    if #entries > 0 then
      local wmax = 0
      for _, e in ipairs(entries) do wmax = math.max(wmax, font:width(11, e[1])) end
      local bw, bh = wmax + 34, #entries * 17 + 8
      local where = self.show_legend.where
      local bx = where:find("left") and r.x + 8 or r.x + r.w - bw - 8
      local by = where:find("lower") and r.y + r.h - bh - 8 or r.y + 8
      if where == "outside" then bx, by = r.x + r.w + 10, r.y end
      if where == "below" then bx, by = r.x, r.y + r.h + 40 end -- under the x label
      canvas:fill_rect(bx, by, bx + bw, by + bh, 0xFFFFFFE6)
      for k, e in ipairs(entries) do
        local y = by + 4 + (k - 1) * 17 + 8
        canvas:disc(bx + 12, y, 5, e[2])
        canvas:text(font, bx + 24, y + 4, 11, BLACK, e[1])
      end
    end
  end
end

-- ---- figures -----------------------------------------------------------------------------------------------

local Figure = {}
Figure.__index = Figure

--- A figure of width x height pixels with an optional title.
function plot.figure(o)
  o = checks.options(o, "lm.plot.figure")
  checks.opts(o, "lm.plot.figure", {"width", "height", "title"})
  for _, k in ipairs{"width", "height"} do
    if o[k] ~= nil and not (whole(o[k]) and o[k] >= 1) then
      bad("lm.plot.figure", k, "a positive integer (pixels)", o[k], 3)
    end
  end
  check_label(o.title, "title", "lm.plot.figure")
  return setmetatable({width = o.width or 800, height = o.height or 560, title = o.title, axes_list = {},
    images = {}, texts = {}}, Figure)
end

--- New axes. Placement o.rect = {x, y, w, h} in pixels, or the default
--- margins; options xlabel, ylabel, title, xlim, ylim, grid.
function Figure:axes(o)
  o = checks.options(o, "fig:axes")
  local rc = o.rect
  if rc ~= nil then
    local ok = type(rc) == "table"
    if ok and rc[1] ~= nil then
      for k = 1, 4 do ok = ok and finite(rc[k]) end
    elseif ok then
      ok = finite(rc.x) and finite(rc.y) and finite(rc.w) and finite(rc.h)
    end
    if not ok then bad("fig:axes", "rect", "{x, y, w, h} (numbers, pixels)", rc, 3) end
  end
  check_range(o.xlim, "xlim", "fig:axes", true)
  check_range(o.ylim, "ylim", "fig:axes", true)
  for _, k in ipairs{"xlabel", "ylabel", "title"} do check_label(o[k], k, "fig:axes") end
  for _, k in ipairs{"xticks", "yticks"} do
    if o[k] ~= nil and not (finite(o[k]) and o[k] >= 1) then
      bad("fig:axes", k, "a number >= 1 (about how many ticks)", o[k], 3)
    end
  end
  if o.right_margin ~= nil and not finite(o.right_margin) then
    bad("fig:axes", "right_margin", "a number", o.right_margin, 3)
  end
  local top = self.title and 50 or 30
  local rect = o.rect or {x = 75, y = top, w = self.width - 75 - (o.right_margin or 30), h = self.height - top - 60}
  if rect[1] then rect = {x = rect[1], y = rect[2], w = rect[3], h = rect[4]} end
  local ax = setmetatable({rect = rect, items = {}, data_x = {}, data_y = {}, xlabel = o.xlabel,
    ylabel = o.ylabel, title = o.title, xlim = o.xlim, ylim = o.ylim, grid = o.grid,
    xticks = o.xticks, yticks = o.yticks}, Axes)
  self.axes_list[#self.axes_list + 1] = ax
  return ax
end

--- rows x cols axes filling the figure (returned in reading order).
function Figure:grid(rows, cols, o)
  if not (whole(rows) and rows >= 1) then bad("fig:grid", "rows", "a positive integer", rows, 3) end
  if not (whole(cols) and cols >= 1) then bad("fig:grid", "cols", "a positive integer", cols, 3) end
  o = checks.options(o, "fig:grid")
  for _, k in ipairs{"left", "right", "bottom", "hgap", "vgap"} do
    if o[k] ~= nil and not finite(o[k]) then bad("fig:grid", k, "a number (pixels)", o[k], 3) end
  end
  local top = self.title and 50 or 20
  local left, right, bottom = o.left or 70, o.right or 20, o.bottom or 10
  local cw = (self.width - left - right) / cols
  local ch = (self.height - top - bottom) / rows
  local list = {}
  for i = 1, rows do
    for j = 1, cols do
      local opts = {}
      for k, v in pairs(o) do opts[k] = v end
      opts.rect = {left + (j - 1) * cw + 10, top + (i - 1) * ch + 25, cw - (o.hgap or 70), ch - (o.vgap or 70)}
      list[#list + 1] = self:axes(opts)
    end
  end
  return list
end

--- An image tensor ([H, W] or [3, H, W] in [0, 1]) at pixel (x, y), scaled.
function Figure:image(x, y, t, scale)
  checks.number(x, "x", "fig:image")
  checks.number(y, "y", "fig:image")
  checks.tensor(t, "the image", "fig:image")
  -- checked here, not where the canvas draws it at save: pixels are whole
  if not (finite(x) and finite(y)) then bad("fig:image", "the position", "finite numbers (pixels)", x, 3) end
  if scale ~= nil and not (whole(scale) and scale >= 1 and scale <= 64) then
    bad("fig:image", "scale", "a whole number in 1..64", scale, 3)
  end
  self.images[#self.images + 1] = {x = math.floor(x + 0.5), y = math.floor(y + 0.5), t = t,
    scale = math.tointeger(scale or 1)}
end

--- A grid of images (tensor [N, H, W] or [N, 3, H, W] in [0, 1]) with its
--- top left at pixel (x, y): o.cols (10), o.scale (2), o.gap (4 px),
--- o.labels (one caption per image, drawn under it), o.label_colors.
--- Returns the pixel width and height it takes.
function Figure:image_grid(x, y, images, o)
  checks.number(x, "x", "fig:image_grid")
  checks.number(y, "y", "fig:image_grid")
  checks.tensor(images, "images", "fig:image_grid")
  if images:dim() ~= 3 and images:dim() ~= 4 then
    error("fig:image_grid: images must be [N, H, W] or [N, 3, H, W], got a tensor [" .. images:shape_string() .. "]", 2)
  end
  o = checks.options(o, "fig:image_grid")
  if o.cols ~= nil and not (whole(o.cols) and o.cols >= 1) then
    bad("fig:image_grid", "cols", "a positive integer", o.cols, 3)
  end
  if o.scale ~= nil and not (whole(o.scale) and o.scale >= 1 and o.scale <= 64) then
    bad("fig:image_grid", "scale", "a whole number in 1..64", o.scale, 3)
  end
  if o.gap ~= nil and not finite(o.gap) then bad("fig:image_grid", "gap", "a number (pixels)", o.gap, 3) end
  for _, k in ipairs{"labels", "label_colors"} do
    if o[k] ~= nil and type(o[k]) ~= "table" then bad("fig:image_grid", k, "a list (one entry an image)", o[k], 3) end
  end
  local n = images:size(1)
  local cols, scale, gap = o.cols or 10, o.scale or 2, o.gap or 4
  local h, w = images:size(images:dim() - 1), images:size(images:dim())
  local caption = o.labels and 14 or 0
  for i = 1, n do
    local c, r = (i - 1) % cols, (i - 1) // cols
    local px, py = x + c * (w * scale + gap), y + r * (h * scale + gap + caption)
    self:image(px, py, images[i], scale)
    if o.labels and o.labels[i] ~= nil then -- (a shorter list captions the first images only, not "nil")
      local color = o.label_colors and o.label_colors[i] or BLACK
      self:text(px, py + h * scale + 11, tostring(o.labels[i]), {size = 10, color = color})
    end
  end
  local rows = (n + cols - 1) // cols
  return cols * (w * scale + gap), rows * (h * scale + gap + caption)
end

--- Text at pixel (x, y) (baseline), o.size, o.color, o.angle.
function Figure:text(x, y, s, o)
  checks.number(x, "x", "fig:text")
  checks.number(y, "y", "fig:text")
  if type(s) ~= "string" and type(s) ~= "number" then bad("fig:text", "the text", "a string", s, 3) end
  o = checks.options(o, "fig:text")
  check_color(o.color, "color", "fig:text")
  if o.angle ~= nil and o.angle ~= 0 and o.angle ~= 90 then -- checked here, not when the figure renders
    error("fig:text: angle must be 0 or 90 (degrees), got " .. tostring(o.angle), 2)
  end
  if o.size ~= nil and not (type(o.size) == "number" and o.size > 0 and o.size <= 200) then
    error("fig:text: size must be a number in (0, 200], got " .. tostring(o.size), 2)
  end
  self.texts[#self.texts + 1] = {x = x, y = y, s = s, size = o.size or 12, color = o.color or BLACK,
    angle = o.angle or 0}
end

--- Renders to a canvas (for pixel tests) without writing a file.
function Figure:render()
  local canvas = lm._canvas(self.width, self.height, 0xFFFFFFFF)
  local font = plot.font()
  if self.title then
    canvas:text(font, self.width / 2 - font:width(17, self.title) / 2, 28, 17, BLACK, self.title)
  end
  for _, ax in ipairs(self.axes_list) do ax:render(canvas, font) end
  for _, im in ipairs(self.images) do canvas:image(im.x, im.y, im.t, im.scale) end
  for _, t in ipairs(self.texts) do canvas:text(font, t.x, t.y, t.size, t.color, t.s, t.angle) end
  return canvas
end

--- Writes the figure as PNG (atomically).
function Figure:save(path)
  checks.string(path, "path", "fig:save")
  local canvas = self:render()
  local ok, err = pcall(canvas.write_png, canvas, path)
  canvas:free()
  -- a file that cannot be written is the caller's error, reported at its line
  if not ok then error("fig:save: " .. checks.message(err):gsub("^canvas:write_png: ", ""), 2) end
  return path
end

-- ---- ready-made figures ------------------------------------------------------------------------------------

--- Train and validation loss and accuracy over the validation points of an
--- lm.train history.
function plot.learning_curve(history, path)
  checks.table(history, "history", "lm.plot.learning_curve")
  checks.string(path, "path", "lm.plot.learning_curve")
  for i, h in ipairs(history) do
    -- a NaN loss comes back from metrics.json (or a checkpoint's history) as nil
    if type(h) ~= "table" or type(h.iteration) ~= "number" or not number_or_nil(h.train_loss)
        or type(h.train_accuracy) ~= "number" or not number_or_nil(h.val_loss)
        or not number_or_nil(h.val_accuracy) then
      error(string.format("lm.plot.learning_curve: history[%d] must be a record of lm.train's history "
        .. "{iteration = n, train_loss = x, train_accuracy = a, ...}, got %s", i, shown(h)), 2)
    end
  end
  if #history == 0 then return end
  local fig = plot.figure{width = 1000, height = 420, title = "Learning curve"}
  local left = fig:axes{rect = {75, 60, 370, 290}, xlabel = "iteration", ylabel = "loss", title = "loss"}
  local right = fig:axes{rect = {575, 60, 370, 290}, xlabel = "iteration", ylabel = "accuracy (%)", title = "accuracy"}
  local it, tl, ta = {}, {}, {}
  local vit, vl, va = {}, {}, {} -- the validated records only (a run may validate some and not others)
  for i, h in ipairs(history) do
    it[i], tl[i], ta[i] = h.iteration, h.train_loss or 0 / 0, 100 * h.train_accuracy
    if h.val_loss ~= nil or h.val_accuracy ~= nil then
      vit[#vit + 1], vl[#vl + 1] = h.iteration, h.val_loss or 0 / 0
      va[#va + 1] = h.val_accuracy and 100 * h.val_accuracy or 0 / 0
    end
  end
  left:line(it, tl, {label = "train", color = plot.CLASS_COLORS[1], marker = #it < 40})
  right:line(it, ta, {label = "train", color = plot.CLASS_COLORS[1], marker = #it < 40})
  if #vit > 0 then
    left:line(vit, vl, {label = "validation", color = plot.CLASS_COLORS[2], marker = #vit < 40})
    right:line(vit, va, {label = "validation", color = plot.CLASS_COLORS[2], marker = #vit < 40})
  end
  left:legend(nil, "upper right")
  right:legend(nil, "lower right")
  return fig:save(path)
end

return plot
