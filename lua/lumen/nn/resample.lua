-- torch's padding (F.pad) and resampling (F.interpolate), installed into
-- lm.nn.functional. Both are one core op, F._resample: along one dimension,
-- output position k is sum_t w[k, t] x[idx[k, t]] (core/ops_resample.c), with
-- the index and weights built here from torch 1.13's formulas, in float32 as
-- torch computes them so the same source positions and weights come out.
-- Where the last two dimensions both change (images), F._resample2d applies
-- both tables in one pass (bilinear and bicubic are separable); the backward
-- adds each tap's gradient back to the position it read. Index tables are
-- cached by their parameters, so a network that resamples the same shapes
-- builds them once.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

local shown = checks.shown
local F_resample, F_resample2d -- F._resample and F._resample2d, set when installed

-- v rounded to float32, as torch's float arithmetic rounds each step
local function f32(v) return (string.unpack("f", string.pack("f", v))) end

-- ---- index tables ----------------------------------------------------------------------------

-- The cache holds at most CACHE_BYTES of tables (a long signal's pad table
-- has an entry per output position): past it, every entry is dropped but
-- those a CUDA graph capture used, which stay for the process's life (a
-- replay reads them by address, and the graph holds no reference).
local CACHE_BYTES = 64 * 1024 * 1024
local cache, cached_bytes = {}, 0

-- the [m, taps] index (0-based) and weights for `key`, built by build(m)
-- (which returns flat Lua lists) on first use for each device
local function tables(key, device, m, taps, build)
  key = key .. "|" .. device
  local hit = cache[key]
  if not hit then
    local idx, w = build()
    local ti = lm.tensor(idx, 'int32'):view(m, taps)
    local tw = lm.tensor(w):view(m, taps)
    if device ~= "cpu" then ti, tw = ti:to(device), tw:to(device) end
    local bytes = 8 * m * taps
    if cached_bytes + bytes > CACHE_BYTES then
      for k, entry in pairs(cache) do
        if not entry.pinned then cache[k], cached_bytes = nil, cached_bytes - entry.bytes end
      end
    end
    hit = {ti, tw, bytes = bytes}
    cache[key], cached_bytes = hit, cached_bytes + bytes
  end
  if not hit.pinned and device ~= "cpu" and lm.cuda.capturing() then
    hit.pinned, cached_bytes = true, cached_bytes - hit.bytes
  end
  return hit[1], hit[2]
end

-- ---- padding maps ----------------------------------------------------------------------------

-- source position (0-based, in x's n) of output position j for a pad of
-- (left, right): reflect and replicate fold positions outside the input
-- back in; circular wraps within what the negative pads leave (as torch)
local PAD_MAPS = {
  reflect = function(j, n, left)
    local p = j - left
    if p < 0 then p = -p elseif p >= n then p = 2 * (n - 1) - p end
    return p
  end,
  replicate = function(j, n, left)
    return math.min(math.max(j - left, 0), n - 1)
  end,
  circular = function(j, n, left, right)
    local first = math.max(-left, 0)
    local kept = n - first - math.max(-right, 0)
    return first + (j - math.max(left, 0)) % kept
  end,
}

-- the index and weights that pad dimension dim of x by (left, right)
local function pad_table(x, dim, mode, left, right)
  local n = x:size(dim)
  local m = n + left + right
  local map = PAD_MAPS[mode]
  return tables(string.format("pad|%s|%d|%d|%d", mode, n, left, right), x:device(), m, 1, function()
    local idx, w = {}, {}
    for j = 0, m - 1 do idx[j + 1], w[j + 1] = map(j, n, left, right), 1 end
    return idx, w
  end)
end

-- ---- interpolation maps (torch 1.13's UpSample formulas) ---------------------------------

-- the step between source positions: in / out, or 1 / scale_factor when it is given
local function compute_scale(n, m, scale)
  if scale then return f32(1 / scale) end
  return f32(n / m)
end

-- the scale of the linear and cubic modes (area_pixel_compute_scale)
local function pixel_scale(n, m, align_corners, scale)
  if align_corners then return m > 1 and f32((n - 1) / (m - 1)) or 0 end
  return compute_scale(n, m, scale)
end

-- the real source position of output j (area_pixel_compute_source_index)
local function source_position(scale, j, align_corners, cubic)
  if align_corners then return f32(scale * j) end
  local src = f32(scale * (j + 0.5) - 0.5)
  if not cubic and src < 0 then return 0 end
  return src
end

-- the cubic convolution kernel (A = -0.75) for |x| <= 1 and 1 < |x| < 2, each step in float32
local A = -0.75
local function cubic1(x) return f32(f32(f32(f32(f32(A + 2) * x) - f32(A + 3)) * x) * x) + 1 end
local function cubic2(x)
  return f32(f32(f32(f32(f32(f32(A * x) - f32(5 * A)) * x) + f32(8 * A)) * x) - f32(4 * A))
end

-- the builders: (n, m, scale, align_corners) -> taps, function giving idx and w
local MODE_MAPS = {
  nearest = function(n, m, scale)
    return 1, function()
      local idx, w, s = {}, {}, compute_scale(n, m, scale)
      for j = 0, m - 1 do
        idx[j + 1] = math.min(math.floor(f32(s * j)), n - 1)
        w[j + 1] = 1
      end
      return idx, w
    end
  end,
  ["nearest-exact"] = function(n, m, scale)
    return 1, function()
      local idx, w, s = {}, {}, compute_scale(n, m, scale)
      for j = 0, m - 1 do
        idx[j + 1] = math.min(math.floor(f32((j + 0.5) * s)), n - 1)
        w[j + 1] = 1
      end
      return idx, w
    end
  end,
  linear = function(n, m, scale, align_corners)
    return 2, function()
      local idx, w, s = {}, {}, pixel_scale(n, m, align_corners, scale)
      for j = 0, m - 1 do
        local i0, l1 = j, 0
        if n ~= m then
          local src = source_position(s, j, align_corners, false)
          i0 = math.floor(src)
          l1 = f32(src - i0)
        end
        idx[2 * j + 1], idx[2 * j + 2] = i0, i0 < n - 1 and i0 + 1 or i0
        w[2 * j + 1], w[2 * j + 2] = f32(1 - l1), l1
      end
      return idx, w
    end
  end,
  cubic = function(n, m, scale, align_corners)
    return 4, function()
      local idx, w, s = {}, {}, pixel_scale(n, m, align_corners, scale)
      for j = 0, m - 1 do
        local src = source_position(s, j, align_corners, true)
        local i0 = math.floor(src)
        local t = f32(src - i0)
        local c = {cubic2(f32(t + 1)), cubic1(t), cubic1(f32(1 - t)), cubic2(f32(2 - t))}
        for k = 1, 4 do
          idx[4 * j + k] = math.min(math.max(i0 - 2 + k, 0), n - 1)
          w[4 * j + k] = c[k]
        end
      end
      return idx, w
    end
  end,
}

-- the index and weights that resample dimension dim of x to m positions
local function interpolate_table(x, dim, kind, m, scale, align_corners)
  local n = x:size(dim)
  local taps, build = MODE_MAPS[kind](n, m, scale, align_corners)
  local key = string.format("%s|%d|%d|%s|%s", kind, n, m, scale and string.format("%.17g", scale) or "-",
    tostring(align_corners))
  return tables(key, x:device(), m, taps, build)
end

-- x resampled by one table per dimension, tables[d] = {idx, w} or nil (kept): the
-- last two at once where both change (one pass, no intermediate), the rest one by one
local function resample(x, tabs)
  local last = x:dim()
  local y = x
  local fused = last >= 2 and tabs[last] and tabs[last - 1]
  for d = 1, fused and last - 2 or last do
    if tabs[d] then y = F_resample(y, d, tabs[d][1], tabs[d][2]) end
  end
  if fused then y = F_resample2d(y, tabs[last - 1][1], tabs[last - 1][2], tabs[last][1], tabs[last][2]) end
  return y
end

-- ---- argument checks -------------------------------------------------------------------------

local function list_shown(v)
  if type(v) ~= "table" then return shown(v) end
  local parts = {}
  for i = 1, #v do parts[i] = shown(v[i]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local PAD_MODES = {constant = true, reflect = true, replicate = true, circular = true}

-- the padding of one dimension, (left, right), as torch prints it
local function pair(left, right) return string.format("(%d, %d)", left, right) end

-- a shape as the core's messages write it: [2, 3, 5]
local function shape_of(x) return "[" .. table.concat(x:shape(), ", ") .. "]" end

return function(F)
  F_resample, F_resample2d = F._resample, F._resample2d

  --- F._resample_cache_limit(bytes): the index-table cache's budget (for
  --- tests); returns the one it replaces.
  function F._resample_cache_limit(bytes)
    local before = CACHE_BYTES
    CACHE_BYTES = bytes
    return before
  end

  --- torch.nn.functional.pad: pad is a list of sizes in pairs from the last
  --- dimension back ({left, right} pads the last, {left, right, top,
  --- bottom} the last two, six entries the last three); negative entries
  --- crop. opts.mode: 'constant' (default; opts.value, default 0, fills),
  --- 'reflect' (mirrors without repeating the edge: each pad less than the
  --- size), 'replicate' (repeats the edge) or 'circular' (wraps around: each
  --- pad at most the size). The non-constant modes pad the last 1, 2 or 3
  --- dimensions of an input with 1 or 2 more ([C, W] or [N, C, W] for two
  --- entries). Also F.pad(x, pad, mode, value), torch's positional form.
  function F.pad(x, pad, opts, value)
    checks.tensor(x, "input", "pad")
    local mode
    if type(opts) == "string" or opts == nil and value ~= nil then
      mode = opts
    else
      opts = checks.opts(opts, "pad", {"mode", "value"})
      mode, value = opts.mode, opts.value
    end
    mode = mode or "constant"
    if not PAD_MODES[mode] then
      error("pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got " .. shown(mode), 2)
    end
    if value ~= nil then checks.number(value, "value", "pad") end
    if type(pad) ~= "table" then error("pad: padding must be a list of sizes, got " .. shown(pad), 2) end
    local count = #pad
    for i = 1, count do
      if not checks.is_whole(pad[i]) then
        error(string.format("pad: padding entries must be integers, got %s in %s", shown(pad[i]), list_shown(pad)), 2)
      end
    end
    local whole = {} -- whole floats (from a division) as integers
    for i = 1, count do whole[i] = math.tointeger(pad[i]) end
    pad = whole
    if count % 2 ~= 0 then
      error(string.format("pad: padding %s has %d entries: it must have pairs (left, right) from the last "
        .. "dimension back", list_shown(pad), count), 2)
    end
    local k = count // 2
    if k > x:dim() then
      error(string.format("pad: padding %s pads %d dimensions, more than input %s has", list_shown(pad), k,
        shape_of(x)), 2)
    end
    if mode ~= "constant" then
      if x:dtype() ~= "float32" then
        error(string.format("pad: mode '%s' needs a float32 input, got %s", mode, x:dtype()), 2)
      end
      if value ~= nil and value ~= 0 then
        error(string.format("pad: value is only for mode 'constant', got mode '%s' with value %s", mode,
          shown(value)), 2)
      end
      if k < 1 or k > 3 or x:dim() < k + 1 or x:dim() > k + 2 then
        error(string.format("pad: mode '%s' pads the last 1, 2 or 3 dimensions of an input with 1 or 2 more "
          .. "(padding of 2 entries: a 2-D or 3-D input; 4: 3-D or 4-D; 6: 4-D or 5-D), got padding %s for input %s",
          mode, list_shown(pad), shape_of(x)), 2)
      end
    end
    -- shape checks for every dimension before any work
    for i = 1, k do
      local d, left, right = x:dim() - i + 1, pad[2 * i - 1], pad[2 * i]
      local n = x:size(d)
      local m = n + left + right
      if mode ~= "constant" and n == 0 and (left > 0 or right > 0) then
        error(string.format("pad: mode '%s' takes its values from dimension %d of input %s, which is empty", mode,
          d, shape_of(x)), 2)
      end
      if m < 0 or mode ~= "constant" and m < 1 then
        error(string.format("pad: padding %s leaves dimension %d of input %s with %d elements", pair(left, right),
          d, shape_of(x), m), 2)
      end
      if mode == "reflect" and (left >= n or right >= n) then
        error(string.format("pad: reflect padding %s must be less than the size %d of dimension %d of input %s",
          pair(left, right), n, d, shape_of(x)), 2)
      end
      if mode == "circular" then
        local kept = n - math.max(-left, 0) - math.max(-right, 0)
        if left > kept or right > kept then
          error(string.format("pad: circular padding %s wraps around dimension %d of input %s more than once "
            .. "(each pad at most the %d elements kept)", pair(left, right), d, shape_of(x), kept), 2)
        end
      end
    end
    if mode ~= "constant" then
      local tabs = {}
      for i = 1, k do
        local d, left, right = x:dim() - i + 1, pad[2 * i - 1], pad[2 * i]
        if left ~= 0 or right ~= 0 then tabs[d] = {pad_table(x, d, mode, left, right)} end
      end
      local y = resample(x, tabs)
      if rawequal(y, x) then return x * 1 end -- a new tensor, as torch's pad returns
      return y
    end
    local y = x
    for i = 1, k do
      local d, left, right = x:dim() - i + 1, pad[2 * i - 1], pad[2 * i]
      if left ~= 0 or right ~= 0 then
        -- crop (negative entries), then the filled blocks beside what is left
        local start, len = math.max(-left, 0), y:size(d) - math.max(-left, 0) - math.max(-right, 0)
        if start > 0 or len < y:size(d) then y = y:narrow(d, start + 1, len) end
        local parts = {}
        for side, size in ipairs({left, right}) do
          if size > 0 then
            local shape = y:shape()
            shape[d] = size
            parts[side] = lm.full(shape, value or 0, y:dtype(), y:device())
          end
        end
        if parts[1] or parts[2] then
          local list = {}
          if parts[1] then list[#list + 1] = parts[1] end
          list[#list + 1] = y
          if parts[2] then list[#list + 1] = parts[2] end
          y = lm.cat(list, d)
        end
      end
    end
    if rawequal(y, x) then return x * 1 end -- a new tensor, as torch's pad returns
    return y
  end

  -- ---- interpolate ---------------------------------------------------------------------------

  -- torch's modes: the core map and the input rank each needs
  local MODES = {
    nearest = {map = "nearest"}, ["nearest-exact"] = {map = "nearest"},
    linear = {map = "linear", dims = 1, interpolating = true},
    bilinear = {map = "linear", dims = 2, interpolating = true},
    bicubic = {map = "cubic", dims = 2, interpolating = true},
  }
  local MODE_NAMES = "'nearest', 'nearest-exact', 'linear', 'bilinear' or 'bicubic'"

  -- a size or scale option as one value per spatial dimension
  local function per_dim(v, spatial, what, valid, wanted)
    local list = type(v) == "table" and v or {}
    if type(v) ~= "table" then for i = 1, spatial do list[i] = v end end
    local ok = #list == spatial
    for i = 1, spatial do ok = ok and valid(list[i]) end
    if not ok then
      error(string.format("interpolate: %s must be %s or a list of %d, got %s", what, wanted, spatial,
        list_shown(v)), 3)
    end
    return list
  end

  --- torch.nn.functional.interpolate of x [N, C, L] or [N, C, H, W]:
  --- opts.size (a size or one per spatial dimension) or opts.scale_factor
  --- (a positive number or one per dimension; the output is floor(size *
  --- scale_factor)), exactly one of them; opts.mode 'nearest' (default),
  --- 'nearest-exact', 'linear' ([N, C, L]), 'bilinear' or 'bicubic' ([N,
  --- C, H, W]); opts.align_corners (the interpolating modes only, default
  --- false); opts.recompute_scale_factor (true: the step between source
  --- positions is in / out rather than 1 / scale_factor). Torch 1.13's
  --- source positions and weights.
  function F.interpolate(x, opts)
    checks.tensor(x, "input", "interpolate")
    opts = checks.opts(opts, "interpolate", {"size", "scale_factor", "mode", "align_corners",
      "recompute_scale_factor"})
    local mode = opts.mode or "nearest"
    local spec = MODES[mode]
    if not spec then error("interpolate: mode must be " .. MODE_NAMES .. ", got " .. shown(mode), 2) end
    if opts.align_corners ~= nil and not spec.interpolating then
      error(string.format("interpolate: align_corners is only for the interpolating modes 'linear', 'bilinear' "
        .. "and 'bicubic', got mode '%s'", mode), 2)
    end
    local align_corners = checks.flag(opts.align_corners, false, "align_corners", "interpolate")
    local recompute = checks.flag(opts.recompute_scale_factor, false, "recompute_scale_factor", "interpolate")
    if x:dim() ~= 3 and x:dim() ~= 4 then
      error("interpolate: input must be [N, C, L] or [N, C, H, W], got " .. shape_of(x), 2)
    end
    if x:dtype() ~= "float32" then error("interpolate: input must be float32, got " .. x:dtype(), 2) end
    local spatial = x:dim() - 2
    if spec.dims and spec.dims ~= spatial then
      error(string.format("interpolate: mode '%s' needs a %s input, got %s", mode,
        spec.dims == 1 and "3-D [N, C, L]" or "4-D [N, C, H, W]", shape_of(x)), 2)
    end
    if (opts.size == nil) == (opts.scale_factor == nil) then
      error("interpolate: give exactly one of size and scale_factor, got "
        .. (opts.size == nil and "neither" or "both"), 2)
    end
    if opts.size ~= nil and opts.recompute_scale_factor then
      error("interpolate: recompute_scale_factor is only for scale_factor, not with a size", 2)
    end
    local sizes, scales = {}, {}
    if opts.size ~= nil then
      sizes = per_dim(opts.size, spatial, "size", function(v) return checks.is_whole(v) and v >= 1 end,
        "a positive integer")
      for i = 1, spatial do sizes[i] = math.tointeger(sizes[i]) end
    else
      scales = per_dim(opts.scale_factor, spatial, "scale_factor",
        function(v) return checks.is_finite(v) and v > 0 end, "a positive number")
      for i = 1, spatial do
        sizes[i] = math.floor(x:size(i + 2) * scales[i])
        if sizes[i] < 1 then
          error(string.format("interpolate: scale_factor %s gives an empty output for input %s", list_shown(
            opts.scale_factor), shape_of(x)), 2)
        end
      end
      if recompute then scales = {} end
    end
    for i = 1, spatial do
      if x:size(i + 2) < 1 then
        error("interpolate: the input's spatial dimensions must not be empty, got " .. shape_of(x), 2)
      end
    end
    local tabs = {}
    for i = 1, spatial do
      tabs[i + 2] = {interpolate_table(x, i + 2, spec.map == "nearest" and mode or spec.map, sizes[i], scales[i],
        align_corners)}
    end
    return resample(x, tabs)
  end
end
