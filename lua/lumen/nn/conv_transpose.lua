-- nn.ConvTranspose2d, torch.nn.ConvTranspose2d's twin (U-Net decoders,
-- segmentation heads, convolutional autoencoders): the same defaults,
-- semantics, parameter names and layouts (weight [in, out / groups, k, k],
-- bias [out]), so its state dict goes both ways. Its forward is
-- F.conv_transpose2d, one op that runs on the CPU and on CUDA.
--
-- Decided here: forward takes no output_size (give output_padding instead).
local lm = require 'lumen'
local F = require 'lumen.nn.functional'
local checks = require 'lumen.nn.checks'
local conv_args = require 'lumen.nn.conv_args'
local initializers = require 'lumen.nn.initializers'

local NAME = "nn.ConvTranspose2d"

-- torch's options Lumen computes only at their defaults
local UNSUPPORTED = {
  padding_mode = {accepts = function(v) return v == "zeros" end,
    reason = "torch's ConvTranspose2d pads with zeros only"},
}

local OPTS = {stride = true, padding = true, output_padding = true, dilation = true, groups = true, bias = true,
  init = true}

return function(nn)
  local ConvTranspose2d = nn.Module:extend(NAME)
  nn.ConvTranspose2d = ConvTranspose2d

  --- nn.ConvTranspose2d(in, out, kernel [, opts]): opts.stride (1),
  --- opts.padding (0), opts.output_padding (0: smaller than the stride or
  --- the dilation), opts.dilation (1), each, as the kernel, one value or a
  --- pair {h, w}; opts.groups (1: in and out divisible by it), opts.bias
  --- (true), opts.init ('he', 'glorot' or 'pytorch', as nn.Conv2d's; the
  --- fan-in is out / groups * kh * kw).
  function ConvTranspose2d:init(inputs, outputs, kernel, opts)
    checks.size(inputs, "input channels", NAME)
    checks.size(outputs, "output channels", NAME)
    local k = conv_args.pair(kernel, 1, "kernel size", NAME, 3)
    opts = checks.opts(opts, NAME, OPTS, UNSUPPORTED)
    local stride = conv_args.pair(opts.stride or 1, 1, "stride", NAME, 3)
    checks.size(opts.groups or 1, "groups", NAME)
    local groups = opts.groups or 1
    if inputs % groups ~= 0 or outputs % groups ~= 0 then
      error(string.format("%s: groups (%d) must divide the input channels (%d) and the output channels (%d)",
        NAME, groups, inputs, outputs), 3)
    end
    local dilation = conv_args.pair(opts.dilation or 1, 1, "dilation", NAME, 3)
    local padding = conv_args.pair(opts.padding or 0, 0, "padding", NAME, 3)
    local output_padding = conv_args.pair(opts.output_padding or 0, 0, "output_padding", NAME, 3)
    for d = 1, 2 do
      if output_padding[d] >= stride[d] and output_padding[d] >= dilation[d] then
        error(string.format("%s: output_padding (%s) must be smaller than either the stride (%s) or the dilation "
          .. "(%s), as in torch", NAME, conv_args.shown(conv_args.compact(output_padding)),
          conv_args.shown(conv_args.compact(stride)), conv_args.shown(conv_args.compact(dilation))), 3)
      end
    end
    -- one number where both dimensions agree (what torch's repr and F take)
    self.inputs, self.outputs, self.kernel = inputs, outputs, conv_args.compact(k)
    self.stride, self.padding = conv_args.compact(stride), conv_args.compact(padding)
    self.output_padding, self.dilation, self.groups = conv_args.compact(output_padding), conv_args.compact(dilation),
      groups
    local scheme = opts.init or "he"
    local weight = nn._init_weight({inputs, outputs // groups, k[1], k[2]}, scheme)
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
    local k = self.kernel
    local s = string.format("%d -> %d, %s, stride %s, padding %s", self.inputs, self.outputs,
      type(k) == "table" and k[1] .. "x" .. k[2] or k .. "x" .. k, conv_args.shown(self.stride),
      conv_args.shown(self.padding))
    if self.output_padding ~= 0 then s = s .. ", output_padding " .. conv_args.shown(self.output_padding) end
    if self.dilation ~= 1 then s = s .. ", dilation " .. conv_args.shown(self.dilation) end
    if self.groups ~= 1 then s = s .. ", groups " .. self.groups end
    return s
  end
end
