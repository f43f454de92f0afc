-- MobileNetV2 with torchvision's architecture, initialisation and state-dict
-- names (features.0.0, features.1.conv.0.0, ..., features.18.1,
-- classifier.1), so a torchvision checkpoint loads strictly and Lumen's file
-- loads into torchvision.models.mobilenet_v2 with strict=True.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(models)
  local nn = lm.nn

  -- torchvision's channel rounding: the multiple of 8 nearest v (halves up),
  -- at least 8, and raised by 8 where rounding down lost more than 10 %
  local function make_divisible(v)
    local rounded = math.max(8, math.floor(v + 4) // 8 * 8)
    if rounded < 0.9 * v then rounded = rounded + 8 end
    return rounded
  end
  models._make_divisible = make_divisible

  local conv = models._conv

  -- torchvision's Conv2dNormActivation with ReLU6: children 0, 1, 2
  local function conv_bn_relu6(cin, cout, k, stride, groups)
    return nn.Sequential(conv(cin, cout, k, stride or 1, groups or 1), nn.BatchNorm2d(cout), nn.ReLU6())
  end

  local InvertedResidual = nn.Module:extend("models.InvertedResidual")
  models.InvertedResidual = InvertedResidual

  --- MobileNetV2's block: a 1x1 expansion by `expand` (absent when 1), a 3x3
  --- depthwise convolution with `stride`, a linear 1x1 projection, each
  --- followed by a batch norm (ReLU6 after the first two); the input is added
  --- when the stride is 1 and the channels do not change. One child, `conv`,
  --- a Sequential, as torchvision's.
  function InvertedResidual:init(inp, oup, stride, expand)
    local hidden = math.floor(inp * expand + 0.5)
    local layers = {}
    if expand ~= 1 then layers[#layers + 1] = conv_bn_relu6(inp, hidden, 1) end
    layers[#layers + 1] = conv_bn_relu6(hidden, hidden, 3, stride, hidden)
    layers[#layers + 1] = conv(hidden, oup, 1, 1, 1)
    layers[#layers + 1] = nn.BatchNorm2d(oup)
    self:child("conv", nn.Sequential(table.unpack(layers)))
    self.residual = stride == 1 and inp == oup
    self.inp, self.oup, self.stride, self.expand = inp, oup, stride, expand
  end

  function InvertedResidual:forward(x)
    local y = self.conv(x)
    if self.residual then return x + y end
    return y
  end

  function InvertedResidual:extra_repr()
    return string.format("%d -> %d, stride %d, expand %s%s", self.inp, self.oup, self.stride,
      tostring(self.expand), self.residual and ", residual" or "")
  end

  local MobileNetV2 = nn.Module:extend("models.MobileNetV2")
  --- net:block_names(): its inverted residual blocks and last convolution
  --- (features.1, ..., features.18; what a map records).
  MobileNetV2.block_names = models._feature_blocks

  -- expansion t, channels c, blocks n, first stride s per stage (the paper's table 2)
  local STAGES = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2},
    {6, 320, 1, 1}}
  local NAME = "lm.models.mobilenet_v2"

  local KNOWN = {num_classes = true, classes = true, width_mult = true, stem = true, dropout = true,
    in_channels = true}

  -- the options of the mobile networks' constructors, checked (errors at
  -- the constructor's caller): classes, in_channels, width, dropout, stem,
  -- then the options table. `family` (optional) changes the defaults and
  -- admits more options for the caller to check: {width_mult = 1.0,
  -- dropout = 0.2, known = {depth_mult = true, ...}}
  local function mobile_options(opts, name, family)
    family = family or {}
    local known = KNOWN
    if family.known then
      known = {}
      for _, set in ipairs{KNOWN, family.known} do
        for k in pairs(set) do known[k] = true end
      end
    end
    opts = checks.opts(opts, name, known, nil, 5)
    local classes = models._classes(opts, name, 5)
    local in_channels = opts.in_channels or 3
    for what, v in pairs{num_classes = classes, in_channels = in_channels} do
      if math.type(v) ~= "integer" or v < 1 then
        error(string.format("%s: %s must be a positive integer, got %s", name, what, checks.shown(v)), 4)
      end
    end
    local width = opts.width_mult or family.width_mult or 1.0
    if type(width) ~= "number" or not (width > 0 and width < math.huge) then
      error(string.format("%s: width_mult must be a positive number, got %s", name, checks.shown(width)), 4)
    end
    local dropout = opts.dropout or family.dropout or 0.2
    if type(dropout) ~= "number" or not (dropout >= 0 and dropout < 1) then
      error(string.format("%s: dropout must be a number in [0, 1), got %s", name, checks.shown(dropout)), 4)
    end
    local stem = opts.stem or "imagenet"
    if stem ~= "imagenet" and stem ~= "cifar" then
      error(name .. ": stem must be 'imagenet' (a stride-2 first convolution) or 'cifar' " ..
        "(stride 1, for 32x32 images), got " .. checks.shown(stem), 4)
    end
    return classes, in_channels, width, dropout, stem, opts
  end
  models._mobile_options = mobile_options

  function MobileNetV2:init(opts)
    local classes, in_channels, width, dropout, stem = mobile_options(opts, NAME)
    self.stem, self.num_classes, self.width_mult = stem, classes, width

    local channels = make_divisible(32 * width)
    local last = make_divisible(1280 * math.max(1.0, width))
    local features = nn.Sequential(conv_bn_relu6(in_channels, channels, 3, stem == "imagenet" and 2 or 1))
    for _, stage in ipairs(STAGES) do
      local t, c, n, s = table.unpack(stage)
      local out = make_divisible(c * width)
      for b = 1, n do
        features:add(InvertedResidual(channels, out, b == 1 and s or 1, t))
        channels = out
      end
    end
    features:add(conv_bn_relu6(channels, last, 1))
    self:child("features", features)
    self:child("classifier", nn.Sequential(nn.Dropout(dropout), nn.Linear(last, classes)))
    -- torchvision: the classifier's weight N(0, 0.01), its bias 0
    lm.no_grad(function()
      self.classifier[2].weight:normal_(0, 0.01)
      self.classifier[2].bias:zero_()
    end)
  end

  function MobileNetV2:forward(x)
    x = self.features(x)
    return self.classifier(nn.functional.global_avg_pool2d(x))
  end

  function MobileNetV2:extra_repr()
    return string.format("%s stem, width %s, %d classes", self.stem, tostring(self.width_mult), self.num_classes)
  end

  --- torchvision's MobileNetV2 (Sandler et al. 2018). opts.num_classes (1000,
  --- as torchvision; also spelled classes), opts.width_mult (1.0: channels
  --- scaled and rounded to multiples of 8, as torchvision), opts.dropout (0.2,
  --- before the classifier), opts.stem ('imagenet': a stride-2 first
  --- convolution; 'cifar': stride 1, the same weights, for 32x32 images),
  --- opts.in_channels (3). Names, shapes and initialisation are torchvision's,
  --- so state dicts go both ways with strict loading.
  models.mobilenet_v2 = function(opts) return MobileNetV2(opts) end
end
