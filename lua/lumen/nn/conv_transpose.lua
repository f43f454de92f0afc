-- nn.ConvTranspose2d, torch.nn.ConvTranspose2d's twin (U-Net decoders,
-- segmentation heads, convolutional autoencoders): the same defaults,
-- semantics, parameter names and layouts (weight [in, out / groups, k, k],
-- bias [out]), so its state dict goes both ways. Its forward is
-- F.conv_transpose2d, one op that runs on the CPU and on CUDA.
--
-- Decided here: one value for kernel, stride, padding and output_padding
-- serves both dimensions (dilation may be a pair {dh, dw}); forward takes
-- no output_size (give output_padding instead).
local lm = require 'lumen'
local F = require 'lumen.nn.functional'
local checks = require 'lumen.nn.checks'
local initializers = require 'lumen.nn.initializers'

local NAME = "nn.ConvTranspose2d"

-- torch's options Lumen computes only at their defaults
local UNSUPPORTED = {
  padding_mode = {accepts = function(v) return v == "zeros" end,
    reason = "torch's ConvTranspose2d pads with zeros only"},
}

local OPTS = {stride = true, padding = true, output_padding = true, dilation = true, groups = true, bias = true,
  init = true}

-- opts.dilation as {dh, dw}: a positive integer for both, or a pair
local function dilation_of(d)
  if d == nil then return {1, 1} end
  if math.type(d) == "integer" and d >= 1 then return {d, d} end
  if type(d) == "table" and #d == 2 and math.type(d[1]) == "integer" and d[1] >= 1
    and math.type(d[2]) == "integer" and d[2] >= 1 then
    return {d[1], d[2]}
  end
  error(NAME .. ": dilation must be a positive integer or a pair {dh, dw} of them, got " .. checks.shown(d), 4)
end

-- a non-negative integer option (one value for both dimensions)
local function non_negative(v, what)
  if v == nil then return 0 end
  if math.type(v) ~= "integer" or v < 0 then
    error(string.format("%s: %s must be a non-negative integer (one value for both dimensions), got %s", NAME,
      what, checks.shown(v)), 4)
  end
  return v
end

return function(nn)
  local ConvTranspose2d = nn.Module:extend(NAME)
  nn.ConvTranspose2d = ConvTranspose2d

  --- nn.ConvTranspose2d(in, out, kernel [, opts]): opts.stride (1),
  --- opts.padding (0), opts.output_padding (0: smaller than the stride or
  --- the dilation), opts.dilation (1, or {dh, dw}), opts.groups (1: in and
  --- out divisible by it), opts.bias (true), opts.init ('he', 'glorot' or
  --- 'pytorch', as nn.Conv2d's; the fan-in is out / groups * kernel^2).
  function ConvTranspose2d:init(inputs, outputs, kernel, opts)
    checks.size(inputs, "input channels", NAME)
    checks.size(outputs, "output channels", NAME)
    checks.size(kernel, "kernel size", NAME)
    opts = checks.opts(opts, NAME, OPTS, UNSUPPORTED)
    checks.size(opts.stride or 1, "stride (one for both dimensions)", NAME)
    checks.size(opts.groups or 1, "groups", NAME)
    local stride, groups = opts.stride or 1, opts.groups or 1
    if inputs % groups ~= 0 or outputs % groups ~= 0 then
      error(string.format("%s: groups (%d) must divide the input channels (%d) and the output channels (%d)",
        NAME, groups, inputs, outputs), 3)
    end
    local dilation = dilation_of(opts.dilation)
    local padding, output_padding = non_negative(opts.padding, "padding"),
      non_negative(opts.output_padding, "output_padding")
    for d = 1, 2 do
      if output_padding >= stride and output_padding >= dilation[d] then
        error(string.format("%s: output_padding (%d) must be smaller than either the stride (%d) or the dilation "
          .. "(%d), as in torch", NAME, output_padding, stride, dilation[d]), 3)
      end
    end
    self.inputs, self.outputs, self.kernel = inputs, outputs, kernel
    self.stride, self.padding, self.output_padding, self.groups = stride, padding, output_padding, groups
    -- one number where both dimensions agree (what torch's repr and F take)
    self.dilation = dilation[1] == dilation[2] and dilation[1] or dilation
    local scheme = opts.init or "he"
    local weight = nn._init_weight({inputs, outputs // groups, kernel, kernel}, scheme)
    self:param("weight", weight)
    if checks.flag(opts.bias, true, "bias", NAME) then
      local bias = lm.zeros(outputs)
      if scheme == "pytorch" then -- torch's bound, from the weight's fan-in (its dimension 2)
        local bound = 1 / math.sqrt((initializers._fans(weight)))
        initializers.uniform_(bias, -bound, bound)
      end
      self:param("bias", bias)
    end
  end

  --- The options F.conv_transpose2d takes for this layer.
  function ConvTranspose2d:_conv_opts()
    return {stride = self.stride, padding = self.padding, output_padding = self.output_padding,
      dilation = self.dilation, groups = self.groups}
  end

  function ConvTranspose2d:forward(x)
    return F.conv_transpose2d(x, self.weight, self.bias, self:_conv_opts())
  end

  function ConvTranspose2d:extra_repr()
    local s = string.format("%d -> %d, %dx%d, stride %d, padding %d", self.inputs, self.outputs,
      self.kernel, self.kernel, self.stride, self.padding)
    if self.output_padding ~= 0 then s = s .. ", output_padding " .. self.output_padding end
    local d = self.dilation
    if type(d) == "table" then s = s .. string.format(", dilation {%d, %d}", d[1], d[2])
    elseif d ~= 1 then s = s .. ", dilation " .. d end
    if self.groups ~= 1 then s = s .. ", groups " .. self.groups end
    return s
  end
end
