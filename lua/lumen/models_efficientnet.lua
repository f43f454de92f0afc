-- EfficientNet B0-B7 and V2 (S, M, L) with torchvision's architecture,
-- initialisation and state-dict names (features.0.0, features.1.0.block.0.0,
-- features.1.0.block.1.fc1, ..., classifier.1), so a torchvision checkpoint
-- loads strictly and Lumen's file loads into torchvision's with strict=True.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(models)
  local nn = lm.nn
  local make_divisible = models._make_divisible

  local conv = models._conv

  -- torchvision's Conv2dNormActivation: conv, batch norm with the variant's
  -- settings `bn`, then SiLU when `act`: children 0, 1 [, 2]
  local function conv_bn(cin, cout, k, stride, groups, bn, act)
    local seq = nn.Sequential(conv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout, bn))
    if act then seq:add(nn.SiLU()) end
    return seq
  end

  local MBConv = nn.Module:extend("models.MBConv")
  models.MBConv = MBConv

  --- EfficientNet's block: a 1x1 expansion to make_divisible(cin * expand)
  --- channels (absent when that is cin), a k x k depthwise convolution with
  --- `stride`, squeeze and excitation (SiLU, Sigmoid; cin // 4 channels, at
  --- least 1), a linear 1x1 projection; SiLU after the first two. Where the
  --- stride is 1 and the channels do not change, the input is added to the
  --- branch after stochastic depth with probability `drop`. Children
  --- `block` (a Sequential) and `stochastic_depth`, as torchvision's.
  function MBConv:init(cin, cout, expand, k, stride, drop, bn)
    local expanded = make_divisible(cin * expand)
    local layers = {}
    if expanded ~= cin then layers[#layers + 1] = conv_bn(cin, expanded, 1, 1, 1, bn, true) end
    layers[#layers + 1] = conv_bn(expanded, expanded, k, stride, expanded, bn, true)
    layers[#layers + 1] = models.SqueezeExcitation(expanded, math.max(1, cin // 4), nn.SiLU, nn.Sigmoid)
    layers[#layers + 1] = conv_bn(expanded, cout, 1, 1, 1, bn, false)
    self:child("block", nn.Sequential(table.unpack(layers)))
    self:child("stochastic_depth", nn.StochasticDepth(drop, "row"))
    self.residual = stride == 1 and cin == cout
  end

  local function residual_forward(self, x)
    local y = self.block(x)
    if self.residual then return x + self.stochastic_depth(y) end
    return y
  end
  MBConv.forward = residual_forward

  local FusedMBConv = nn.Module:extend("models.FusedMBConv")
  models.FusedMBConv = FusedMBConv

  --- EfficientNetV2's early block: a k x k convolution with `stride` to
  --- make_divisible(cin * expand) channels and SiLU, then a linear 1x1
  --- projection; a single k x k convolution to cout with SiLU when the
  --- expansion keeps cin channels. Residual and children as MBConv's.
  function FusedMBConv:init(cin, cout, expand, k, stride, drop, bn)
    local expanded = make_divisible(cin * expand)
    local layers
    if expanded ~= cin then
      layers = {conv_bn(cin, expanded, k, stride, 1, bn, true), conv_bn(expanded, cout, 1, 1, 1, bn, false)}
    else
      layers = {conv_bn(cin, cout, k, stride, 1, bn, true)}
    end
    self:child("block", nn.Sequential(table.unpack(layers)))
    self:child("stochastic_depth", nn.StochasticDepth(drop, "row"))
    self.residual = stride == 1 and cin == cout
  end
  FusedMBConv.forward = residual_forward

  -- per stage: expansion, kernel, first stride, input and output channels,
  -- blocks, fused (the EfficientNet paper's table 1, EfficientNetV2's table 4)
  local B_STAGES = {
    {1, 3, 1, 32, 16, 1}, {6, 3, 2, 16, 24, 2}, {6, 5, 2, 24, 40, 2}, {6, 3, 2, 40, 80, 3},
    {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1}}
  local V2_STAGES = {
    s = {{1, 3, 1, 24, 24, 2, true}, {4, 3, 2, 24, 48, 4, true}, {4, 3, 2, 48, 64, 4, true},
      {4, 3, 2, 64, 128, 6}, {6, 3, 1, 128, 160, 9}, {6, 3, 2, 160, 256, 15}},
    m = {{1, 3, 1, 24, 24, 3, true}, {4, 3, 2, 24, 48, 5, true}, {4, 3, 2, 48, 80, 5, true},
      {4, 3, 2, 80, 160, 7}, {6, 3, 1, 160, 176, 14}, {6, 3, 2, 176, 304, 18}, {6, 3, 1, 304, 512, 5}},
    l = {{1, 3, 1, 32, 32, 4, true}, {4, 3, 2, 32, 64, 7, true}, {4, 3, 2, 64, 96, 7, true},
      {4, 3, 2, 96, 192, 10}, {6, 3, 1, 192, 224, 19}, {6, 3, 2, 224, 384, 25}, {6, 3, 1, 384, 640, 7}},
  }

  -- torchvision's batch norms: B0-B4 torch's defaults, B5-B7 eps 1e-3 and
  -- momentum 0.01, V2 eps 1e-3
  local BN_DEFAULT, BN_B5, BN_V2 = {}, {eps = 1e-3, momentum = 0.01}, {eps = 1e-3}

  -- per variant: width and depth multipliers, dropout, batch norm settings,
  -- stages, the last convolution's channels (nil: 4 x the last stage's)
  local VARIANTS = {
    efficientnet_b0 = {1.0, 1.0, 0.2, BN_DEFAULT, B_STAGES},
    efficientnet_b1 = {1.0, 1.1, 0.2, BN_DEFAULT, B_STAGES},
    efficientnet_b2 = {1.1, 1.2, 0.3, BN_DEFAULT, B_STAGES},
    efficientnet_b3 = {1.2, 1.4, 0.3, BN_DEFAULT, B_STAGES},
    efficientnet_b4 = {1.4, 1.8, 0.4, BN_DEFAULT, B_STAGES},
    efficientnet_b5 = {1.6, 2.2, 0.4, BN_B5, B_STAGES},
    efficientnet_b6 = {1.8, 2.6, 0.5, BN_B5, B_STAGES},
    efficientnet_b7 = {2.0, 3.1, 0.5, BN_B5, B_STAGES},
    efficientnet_v2_s = {1.0, 1.0, 0.2, BN_V2, V2_STAGES.s, 1280},
    efficientnet_v2_m = {1.0, 1.0, 0.3, BN_V2, V2_STAGES.m, 1280},
    efficientnet_v2_l = {1.0, 1.0, 0.4, BN_V2, V2_STAGES.l, 1280},
  }

  local EXTRA_OPTIONS = {depth_mult = true, stochastic_depth_prob = true}

  -- the checked options (errors at the constructor's caller): the mobile
  -- networks' (lm.models._mobile_options), depth_mult, stochastic_depth_prob
  local function efficientnet_options(arch, opts)
    local name = "lm.models." .. arch
    local v = VARIANTS[arch]
    local classes, in_channels, width, dropout, stem
    classes, in_channels, width, dropout, stem, opts =
      models._mobile_options(opts, name, {width_mult = v[1], dropout = v[3], known = EXTRA_OPTIONS})
    local depth = opts.depth_mult or v[2]
    if type(depth) ~= "number" or not (depth > 0 and depth < math.huge) then
      error(string.format("%s: depth_mult must be a positive number, got %s", name, checks.shown(depth)), 3)
    end
    -- (a huge multiplier would build blocks until memory runs out)
    if depth > 100 then
      error(string.format("%s: depth_mult must be at most 100 (B7's is 3.1), got %s", name, checks.shown(depth)), 3)
    end
    local drop = opts.stochastic_depth_prob or 0.2
    if type(drop) ~= "number" or not (drop >= 0 and drop <= 1) then
      error(string.format("%s: stochastic_depth_prob must be a number in [0, 1], got %s", name,
        checks.shown(drop)), 3)
    end
    return classes, in_channels, width, depth, dropout, drop, stem
  end

  local EfficientNet = nn.Module:extend("models.EfficientNet")

  function EfficientNet:init(arch, opts)
    local classes, in_channels, width, depth, dropout, drop, stem = efficientnet_options(arch, opts)
    local v = VARIANTS[arch]
    local bn, stages, last_channels = v[4], v[5], v[6]
    self.arch, self.stem, self.num_classes, self.width_mult, self.depth_mult = arch, stem, classes, width, depth

    local function adjust(c) return make_divisible(c * width) end
    local function blocks(n) return math.ceil(n * depth) end
    local total = 0
    for _, s in ipairs(stages) do total = total + blocks(s[6]) end

    local features = nn.Sequential(conv_bn(in_channels, adjust(stages[1][4]), 3, stem == "imagenet" and 2 or 1, 1,
      bn, true))
    local index = 0 -- blocks so far: stochastic depth grows linearly from 0 at the first
    for _, s in ipairs(stages) do
      local expand, k, stride, cin, cout = s[1], s[2], s[3], adjust(s[4]), adjust(s[5])
      local Block = s[7] and FusedMBConv or MBConv
      local stage = nn.Sequential()
      for b = 1, blocks(s[6]) do
        stage:add(Block(b == 1 and cin or cout, cout, expand, k, b == 1 and stride or 1, drop * index / total, bn))
        index = index + 1
      end
      features:add(stage)
    end
    local last_in = adjust(stages[#stages][5])
    local last = last_channels or 4 * last_in
    features:add(conv_bn(last_in, last, 1, 1, 1, bn, true))
    self:child("features", features)
    self:child("avgpool", nn.AdaptiveAvgPool2d(1))
    self:child("classifier", nn.Sequential(nn.Dropout(dropout), nn.Linear(last, classes)))
    -- torchvision: the Linear's weight U(-1/sqrt(out), 1/sqrt(out)), its bias 0
    lm.no_grad(function()
      local bound = 1 / math.sqrt(classes)
      self.classifier[2].weight:uniform_(-bound, bound)
      self.classifier[2].bias:zero_()
    end)
  end

  --- net:block_names(): its stages and last convolution (features.1, ...).
  EfficientNet.block_names = models._feature_blocks

  function EfficientNet:forward(x)
    x = self.avgpool(self.features(x))
    return self.classifier(x:flatten(2))
  end

  function EfficientNet:extra_repr()
    return string.format("%s, %s stem, width %s, depth %s, %d classes", self.arch, self.stem,
      tostring(self.width_mult), tostring(self.depth_mult), self.num_classes)
  end

  for arch in pairs(VARIANTS) do
    models[arch] = function(opts) return EfficientNet(arch, opts) end
  end
end
