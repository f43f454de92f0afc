-- MobileNetV3 (small and large) with torchvision's architecture,
-- initialisation and state-dict names (features.0.0, features.1.block.0.0,
-- features.1.block.1.fc1, ..., classifier.3), so a torchvision checkpoint
-- loads strictly and Lumen's file loads into torchvision's with strict=True.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(models)
  local nn = lm.nn
  local make_divisible = models._make_divisible

  local conv = models._conv

  -- torchvision's Conv2dNormActivation: conv, batch norm (eps 1e-3,
  -- momentum 0.01), then the activation when given: children 0, 1 [, 2]
  local function conv_bn(cin, cout, k, stride, groups, act)
    local seq = nn.Sequential(conv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout, {eps = 1e-3, momentum = 0.01}))
    if act then seq:add(act()) end
    return seq
  end

  local SqueezeExcitation = nn.Module:extend("models.SqueezeExcitation")
  models.SqueezeExcitation = SqueezeExcitation

  --- torchvision's squeeze-and-excitation, SqueezeExcitation(channels,
  --- squeeze [, activation = nn.ReLU [, scale_activation = nn.Sigmoid]]):
  --- x * scale_activation(fc2(activation(fc1(mean of x over space)))), fc1
  --- and fc2 1x1 convolutions with bias; the activations are given as layer
  --- classes (MobileNetV3: ReLU, Hardsigmoid; EfficientNet: SiLU, Sigmoid).
  --- Children avgpool, fc1, fc2, activation, scale_activation.
  function SqueezeExcitation:init(channels, squeeze, activation, scale_activation)
    if activation ~= nil then checks.callable(activation, "activation", "lm.models.SqueezeExcitation") end
    if scale_activation ~= nil then
      checks.callable(scale_activation, "scale_activation", "lm.models.SqueezeExcitation")
    end
    self:child("avgpool", nn.AdaptiveAvgPool2d(1))
    self:child("fc1", conv(channels, squeeze, 1, 1, 1, true))
    self:child("fc2", conv(squeeze, channels, 1, 1, 1, true))
    self:child("activation", (activation or nn.ReLU)())
    self:child("scale_activation", (scale_activation or nn.Sigmoid)())
  end

  function SqueezeExcitation:forward(x)
    local scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
    return x * scale
  end

  local Block = nn.Module:extend("models.MobileNetV3Block")
  models.MobileNetV3Block = Block

  --- MobileNetV3's block: a 1x1 expansion (absent when it would not change
  --- the channels), a k x k depthwise convolution with `stride`, squeeze and
  --- excitation when `se`, a linear 1x1 projection; ReLU or Hardswish (`hs`);
  --- the input added when the stride is 1 and the channels do not change.
  --- One child, `block`, a Sequential, as torchvision's.
  function Block:init(inp, k, expanded, out, se, hs, stride)
    local act = hs and nn.Hardswish or nn.ReLU
    local layers = {}
    if expanded ~= inp then layers[#layers + 1] = conv_bn(inp, expanded, 1, 1, 1, act) end
    layers[#layers + 1] = conv_bn(expanded, expanded, k, stride, expanded, act)
    if se then
      layers[#layers + 1] = SqueezeExcitation(expanded, make_divisible(expanded // 4), nn.ReLU, nn.Hardsigmoid)
    end
    layers[#layers + 1] = conv_bn(expanded, out, 1, 1, 1, nil)
    self:child("block", nn.Sequential(table.unpack(layers)))
    self.residual = stride == 1 and inp == out
  end

  function Block:forward(x)
    local y = self.block(x)
    if self.residual then return x + y end
    return y
  end

  -- per block: input, kernel, expanded, output channels, squeeze and
  -- excitation, Hardswish (else ReLU), stride (the paper's tables 1 and 2);
  -- then the classifier's hidden width
  local CONFIGS = {
    mobilenet_v3_small = {1024, {
      {16, 3, 16, 16, true, false, 2}, {16, 3, 72, 24, false, false, 2}, {24, 3, 88, 24, false, false, 1},
      {24, 5, 96, 40, true, true, 2}, {40, 5, 240, 40, true, true, 1}, {40, 5, 240, 40, true, true, 1},
      {40, 5, 120, 48, true, true, 1}, {48, 5, 144, 48, true, true, 1}, {48, 5, 288, 96, true, true, 2},
      {96, 5, 576, 96, true, true, 1}, {96, 5, 576, 96, true, true, 1}}},
    mobilenet_v3_large = {1280, {
      {16, 3, 16, 16, false, false, 1}, {16, 3, 64, 24, false, false, 2}, {24, 3, 72, 24, false, false, 1},
      {24, 5, 72, 40, true, false, 2}, {40, 5, 120, 40, true, false, 1}, {40, 5, 120, 40, true, false, 1},
      {40, 3, 240, 80, false, true, 2}, {80, 3, 200, 80, false, true, 1}, {80, 3, 184, 80, false, true, 1},
      {80, 3, 184, 80, false, true, 1}, {80, 3, 480, 112, true, true, 1}, {112, 3, 672, 112, true, true, 1},
      {112, 5, 672, 160, true, true, 2}, {160, 5, 960, 160, true, true, 1}, {160, 5, 960, 160, true, true, 1}}},
  }

  local MobileNetV3 = nn.Module:extend("models.MobileNetV3")
  --- net:block_names(): its blocks and last convolution (features.1, ...).
  MobileNetV3.block_names = models._feature_blocks

  function MobileNetV3:init(arch, opts)
    local classes, in_channels, width, dropout, stem = models._mobile_options(opts, "lm.models." .. arch)
    self.arch, self.stem, self.num_classes, self.width_mult = arch, stem, classes, width

    local function adjust(c) return make_divisible(c * width) end
    local hidden, blocks = CONFIGS[arch][1], CONFIGS[arch][2]
    local features = nn.Sequential(conv_bn(in_channels, adjust(16), 3, stem == "imagenet" and 2 or 1, 1, nn.Hardswish))
    for _, b in ipairs(blocks) do
      features:add(Block(adjust(b[1]), b[2], adjust(b[3]), adjust(b[4]), b[5], b[6], b[7]))
    end
    local last_in = adjust(blocks[#blocks][4])
    features:add(conv_bn(last_in, 6 * last_in, 1, 1, 1, nn.Hardswish))
    self:child("features", features)
    self:child("avgpool", nn.AdaptiveAvgPool2d(1))
    local last = adjust(hidden)
    self:child("classifier", nn.Sequential(nn.Linear(6 * last_in, last), nn.Hardswish(), nn.Dropout(dropout),
      nn.Linear(last, classes)))
    -- torchvision: every Linear N(0, 0.01), bias 0
    lm.no_grad(function()
      for _, i in ipairs{1, 4} do
        self.classifier[i].weight:normal_(0, 0.01)
        self.classifier[i].bias:zero_()
      end
    end)
  end

  function MobileNetV3:forward(x)
    x = self.avgpool(self.features(x))
    return self.classifier(x:flatten(2))
  end

  function MobileNetV3:extra_repr()
    return string.format("%s, %s stem, width %s, %d classes", self.arch, self.stem, tostring(self.width_mult),
      self.num_classes)
  end

  --- torchvision's MobileNetV3-Small (Howard et al. 2019): Hardswish and
  --- squeeze-and-excitation blocks. opts as lm.models.mobilenet_v2's
  --- (num_classes, width_mult, dropout, stem, in_channels); batch norms with
  --- torchvision's eps 1e-3 and momentum 0.01. Names, shapes and
  --- initialisation are torchvision's, so state dicts go both ways.
  models.mobilenet_v3_small = function(opts) return MobileNetV3("mobilenet_v3_small", opts) end

  --- torchvision's MobileNetV3-Large; options as mobilenet_v3_small.
  models.mobilenet_v3_large = function(opts) return MobileNetV3("mobilenet_v3_large", opts) end
end
