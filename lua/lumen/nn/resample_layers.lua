-- Padding and upsampling layers, twins of torch.nn's (no parameters, no
-- state): each forward is F.pad or F.interpolate (lua/lumen/nn/resample.lua).
local F = require 'lumen.nn.functional'
local checks = require 'lumen.nn.checks'

return function(nn)
  local Module = nn.Module

  -- torch's padding argument of a `dims`-dimensional pad layer: one size for
  -- every side, or 2 * dims sizes {left, right, top, bottom, front, back}
  local function padding_of(name, padding, dims)
    local list = {}
    if checks.is_whole(padding) then
      for i = 1, 2 * dims do list[i] = math.tointeger(padding) end
      return list
    end
    local ok = type(padding) == "table" and #padding == 2 * dims
    for i = 1, ok and 2 * dims or 0 do
      ok = ok and checks.is_whole(padding[i])
      list[i] = ok and math.tointeger(padding[i])
    end
    if not ok then
      error(string.format("%s: padding must be an integer or a list of %d integers, got %s", name, 2 * dims,
        type(padding) == "table" and "a list of " .. #padding or checks.shown(padding)), 4)
    end
    return list
  end

  -- a pad layer class: mode, the dimensions it pads, whether it takes a value
  local function pad_class(name, mode, dims, takes_value)
    local class = Module:extend(name)
    function class:init(padding, value)
      self.padding = padding_of(name, padding, dims)
      if takes_value then
        checks.number(value, "value", name)
        self.value = value
      end
    end
    function class:forward(x) return F.pad(x, self.padding, {mode = mode, value = self.value}) end
    function class:extra_repr()
      local s = "(" .. table.concat(self.padding, ", ") .. ")"
      if takes_value then s = s .. ", value = " .. tostring(self.value) end
      return s
    end
    return class
  end

  for dims = 1, 3 do
    nn["ConstantPad" .. dims .. "d"] = pad_class("nn.ConstantPad" .. dims .. "d", "constant", dims, true)
    nn["ReflectionPad" .. dims .. "d"] = pad_class("nn.ReflectionPad" .. dims .. "d", "reflect", dims)
    nn["ReplicationPad" .. dims .. "d"] = pad_class("nn.ReplicationPad" .. dims .. "d", "replicate", dims)
  end
  nn.ZeroPad2d = pad_class("nn.ZeroPad2d", "constant", 2)

  local UPSAMPLE_OPTS = {"size", "scale_factor", "mode", "align_corners", "recompute_scale_factor"}

  -- an upsampling class whose opts go to F.interpolate, with `fixed` options set
  local function upsample_class(name, known, fixed)
    local class = Module:extend(name)
    function class:init(opts)
      opts = checks.opts(opts, name, known)
      if (opts.size == nil) == (opts.scale_factor == nil) then
        error(name .. ": give exactly one of size and scale_factor", 3)
      end
      self.opts = {}
      for k, v in pairs(opts) do self.opts[k] = v end
      for k, v in pairs(fixed or {}) do self.opts[k] = v end
      self.opts.mode = self.opts.mode or "nearest"
    end
    function class:forward(x) return F.interpolate(x, self.opts) end
    function class:extra_repr()
      local o = self.opts
      local function show(v) return type(v) == "table" and "{" .. table.concat(v, ", ") .. "}" or tostring(v) end
      local s = o.size ~= nil and "size = " .. show(o.size) or "scale_factor = " .. show(o.scale_factor)
      s = s .. ", mode = '" .. o.mode .. "'"
      if o.align_corners ~= nil then s = s .. ", align_corners = " .. tostring(o.align_corners) end
      return s
    end
    return class
  end

  --- nn.Upsample{size = ... or scale_factor = ..., mode = 'nearest', align_corners = ...}
  nn.Upsample = upsample_class("nn.Upsample", UPSAMPLE_OPTS)
  nn.UpsamplingNearest2d = upsample_class("nn.UpsamplingNearest2d", {"size", "scale_factor"}, {mode = "nearest"})
  nn.UpsamplingBilinear2d = upsample_class("nn.UpsamplingBilinear2d", {"size", "scale_factor"},
    {mode = "bilinear", align_corners = true})
end
