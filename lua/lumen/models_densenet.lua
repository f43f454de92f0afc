-- DenseNet (121, 161, 169, 201 and any configuration) with torchvision's
-- architecture, initialisation and state-dict names (features.conv0,
-- features.denseblock1.denselayer1.norm1, features.transition1.conv,
-- features.norm5, classifier), so a torchvision checkpoint loads strictly
-- and Lumen's file loads into torchvision.models.densenet121 (or
-- torchvision.models.DenseNet with the same options) with strict=True.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(models)
  local nn = lm.nn
  local F = nn.functional

  -- torchvision's init of every DenseNet convolution: Kaiming normal with
  -- torch's defaults (fan-in, gain sqrt(2)); no bias
  local function conv(cin, cout, k, stride, padding)
    local c = nn.Conv2d(cin, cout, k, {stride = stride, padding = padding, bias = false})
    nn.init.kaiming_normal_(c.weight)
    return c
  end

  -- a Sequential whose children have torchvision's names: {{name, module}, ...}
  local function named_sequential(children)
    local seq = nn.Sequential()
    for _, c in ipairs(children) do seq:child(c[1], c[2]) end
    return seq
  end

  local DenseLayer = nn.Module:extend("models.DenseLayer")
  models.DenseLayer = DenseLayer

  --- lm.models.DenseLayer(inputs, growth, bn_size [, drop_rate = 0]):
  --- DenseNet's layer on the block's features so far ([N, inputs, H, W]):
  --- batch norm, ReLU, 1x1 convolution to bn_size x growth channels, batch
  --- norm, ReLU, 3x3 convolution to `growth` new channels, then dropout
  --- with drop_rate (self.drop_rate) when training. Children norm1, relu1,
  --- conv1, norm2, relu2, conv2, as torchvision's _DenseLayer.
  function DenseLayer:init(inputs, growth, bn_size, drop_rate)
    checks.size(inputs, "inputs", "lm.models.DenseLayer")
    checks.size(growth, "growth", "lm.models.DenseLayer")
    checks.size(bn_size, "bn_size", "lm.models.DenseLayer")
    drop_rate = drop_rate or 0
    checks.p(drop_rate, "drop_rate", "lm.models.DenseLayer")
    self:child("norm1", nn.BatchNorm2d(inputs))
    self:child("relu1", nn.ReLU())
    self:child("conv1", conv(inputs, bn_size * growth, 1, 1, 0))
    self:child("norm2", nn.BatchNorm2d(bn_size * growth))
    self:child("relu2", nn.ReLU())
    self:child("conv2", conv(bn_size * growth, growth, 3, 1, 1))
    self.drop_rate = drop_rate
  end

  --- layer.fuse = false runs the batch norms and ReLUs as separate modules
  --- (the same values; fused: one op each, see nn.Sequential's fuse).
  DenseLayer.fuse = true

  function DenseLayer:forward(x)
    local y = nn._bn_then(self.norm1, x, nil, self.relu1, self.fuse)
    y = self.conv2(nn._conv_bn_then(self.conv1, self.norm2, y, nil, self.relu2, self.fuse))
    if self.drop_rate > 0 then y = F.dropout(y, self.drop_rate, self.training) end
    return y
  end

  local DenseBlock = nn.Module:extend("models.DenseBlock")
  models.DenseBlock = DenseBlock

  --- lm.models.DenseBlock(layers, inputs, growth, bn_size [, drop_rate]):
  --- `layers` DenseLayers (children denselayer1, denselayer2, ...), each
  --- given every channel before it: the block's input and the `growth`
  --- channels of each layer before; the output has inputs + layers x
  --- growth channels.
  function DenseBlock:init(layers, inputs, growth, bn_size, drop_rate)
    checks.size(layers, "layers", "lm.models.DenseBlock")
    checks.size(inputs, "inputs", "lm.models.DenseBlock")
    checks.size(growth, "growth", "lm.models.DenseBlock")
    checks.size(bn_size, "bn_size", "lm.models.DenseBlock")
    checks.p(drop_rate or 0, "drop_rate", "lm.models.DenseBlock")
    for i = 1, layers do
      self:child("denselayer" .. i, DenseLayer(inputs + (i - 1) * growth, growth, bn_size, drop_rate))
    end
  end

  -- The features so far grow by one concatenation of two tensors per layer
  -- (torchvision concatenates the whole list per layer, then once more at
  -- the end). Copying c channels to add `growth` is quadratic over a block,
  -- but so is the work itself: each layer's batch norm reads all c. One
  -- buffer written a slice at a time would save the copies, but an in-place
  -- write into a tensor whose earlier slices the batch norms saved for the
  -- backward pass is what Lumen's version check refuses.
  function DenseBlock:forward(x)
    for _, name in ipairs(self._child_names) do x = lm.cat({x, self[name](x)}, 2) end
    return x
  end

  -- torchvision's _Transition: batch norm, ReLU, 1x1 convolution, 2x2 average pooling
  local function transition(inputs, outputs)
    return named_sequential{{"norm", nn.BatchNorm2d(inputs)}, {"relu", nn.ReLU()},
      {"conv", conv(inputs, outputs, 1, 1, 0)}, {"pool", nn.AvgPool2d(2, 2)}}
  end

  -- torchvision's DenseNet defaults (densenet121's sizes) and its presets
  local DEFAULTS = {growth_rate = 32, block_config = {6, 12, 24, 16}, num_init_features = 64}
  local PRESETS = {
    densenet121 = DEFAULTS,
    densenet161 = {growth_rate = 48, block_config = {6, 12, 36, 24}, num_init_features = 96},
    densenet169 = {growth_rate = 32, block_config = {6, 12, 32, 32}, num_init_features = 64},
    densenet201 = {growth_rate = 32, block_config = {6, 12, 48, 32}, num_init_features = 64},
  }

  local KNOWN = {num_classes = true, classes = true, growth_rate = true, block_config = true,
    num_init_features = true, bn_size = true, drop_rate = true, stem = true, in_channels = true}
  -- torchvision's memory_efficient recomputes each layer's first half in the
  -- backward pass (gradient checkpointing) to save memory; the values are
  -- the same, and Lumen has no checkpointing: false is accepted, true refused
  local MEMORY_EFFICIENT = {accepts = function(v) return v == false end,
    reason = "torchvision's gradient checkpointing; Lumen keeps every layer's activations, with the same "
      .. "values and gradients: leave it out"}

  local function same_list(a, b)
    if type(a) ~= "table" or #a ~= #b then return false end
    for i = 1, #b do if a[i] ~= b[i] then return false end end
    return true
  end

  -- the unsupported options of a preset: its own sizes only (torchvision's
  -- densenet121() takes none of them)
  local function preset_sizes(name, preset)
    local fixed = {memory_efficient = MEMORY_EFFICIENT}
    for option, value in pairs(preset) do
      local shown = type(value) == "table" and "{" .. table.concat(value, ", ") .. "}" or tostring(value)
      fixed[option] = {accepts = function(v) return v == value or same_list(v, value) end,
        reason = string.format("%s's %s is %s; lm.models.densenet{...} takes any", name, option, shown)}
    end
    return fixed
  end

  local function positive_integer(v, what, name)
    if math.type(v) ~= "integer" or v < 1 then
      error(string.format("%s: %s must be a positive integer, got %s", name, what, checks.shown(v)), 4)
    end
  end

  local DenseNet = nn.Module:extend("models.DenseNet")

  -- preset: the sizes the options leave out; unsupported: the options
  -- checks.opts refuses at values other than Lumen's (see preset_sizes)
  function DenseNet:init(name, preset, unsupported, opts)
    opts = checks.opts(opts, name, KNOWN, unsupported, 4) -- (level 4: the caller of the constructor)
    local classes = models._classes(opts, name, 4)
    local growth = opts.growth_rate or preset.growth_rate
    local blocks = opts.block_config or preset.block_config
    local init_features = opts.num_init_features or preset.num_init_features
    local bn_size, in_channels = opts.bn_size or 4, opts.in_channels or 3
    for what, v in pairs{num_classes = classes, growth_rate = growth, num_init_features = init_features,
      bn_size = bn_size, in_channels = in_channels} do
      positive_integer(v, what, name)
    end
    if type(blocks) ~= "table" or #blocks == 0 then
      local got = type(blocks) ~= "table" and checks.shown(blocks)
        or next(blocks) == nil and "an empty table" or "a table that is not a list"
      error(string.format("%s: block_config must be a list of layer counts, one per dense block, got %s", name,
        got), 3)
    end
    for i = 1, #blocks do positive_integer(blocks[i], "block_config[" .. i .. "]", name) end
    local drop_rate = opts.drop_rate or 0
    if type(drop_rate) ~= "number" or not (drop_rate >= 0 and drop_rate < 1) then
      error(string.format("%s: drop_rate must be a number in [0, 1), got %s", name, checks.shown(drop_rate)), 3)
    end
    local stem = opts.stem or "imagenet"
    if stem ~= "imagenet" and stem ~= "cifar" then
      error(name .. ": stem must be 'imagenet' (7x7 stride-2 convolution and max pooling) or 'cifar' " ..
        "(3x3 stride-1 convolution, no pooling), got " .. checks.shown(stem), 3)
    end
    self.stem, self.num_classes, self.growth_rate = stem, classes, growth
    self.block_config = {table.unpack(blocks)}

    local conv0 = stem == "imagenet" and conv(in_channels, init_features, 7, 2, 3)
      or conv(in_channels, init_features, 3, 1, 1)
    local features = named_sequential{
      {"conv0", conv0},
      {"norm0", nn.BatchNorm2d(init_features)},
      {"relu0", nn.ReLU()},
      {"pool0", stem == "imagenet" and nn.MaxPool2d(3, 2, 1) or nn.Identity()}}
    local channels = init_features
    for i, layers in ipairs(blocks) do
      features:child("denseblock" .. i, DenseBlock(layers, channels, growth, bn_size, drop_rate))
      channels = channels + layers * growth
      if i < #blocks then -- halves the channels and the image
        features:child("transition" .. i, transition(channels, channels // 2))
        channels = channels // 2
      end
    end
    features:child("norm5", nn.BatchNorm2d(channels))
    self:child("features", features)
    -- torchvision: torch's default Linear weight, bias 0
    self:child("classifier", nn.Linear(channels, classes, {init = "pytorch"}))
    nn.init.zeros_(self.classifier.bias)
  end

  --- net:block_names(): its dense blocks (features.denseblock1, ...).
  function DenseNet:block_names() return models._numbered_children(self.features, "denseblock", "features") end

  function DenseNet:forward(x)
    local y = F.relu(self.features(x))
    return self.classifier(F.global_avg_pool2d(y))
  end

  function DenseNet:extra_repr()
    return string.format("%s stem, growth %d, blocks {%s}, %d classes", self.stem, self.growth_rate,
      table.concat(self.block_config, ", "), self.num_classes)
  end

  local GENERIC = {memory_efficient = MEMORY_EFFICIENT}

  --- torchvision's DenseNet (Huang et al. 2017) of any size, as
  --- torchvision.models.DenseNet: opts.growth_rate (32: channels each layer
  --- adds), opts.block_config ({6, 12, 24, 16}: layers per dense block),
  --- opts.num_init_features (64: the first convolution's channels),
  --- opts.bn_size (4: the 1x1 bottleneck has bn_size x growth_rate
  --- channels), opts.drop_rate (0: dropout after each layer when
  --- training), opts.num_classes (1000; also spelled classes), opts.stem
  --- ('imagenet': 7x7 stride-2 convolution and 3x3 stride-2 max pooling;
  --- 'cifar': a 3x3 stride-1 convolution and no pooling, torchvision's model
  --- with features.conv0 = Conv2d(3, num_init_features, 3, 1, 1, bias=False)
  --- and features.pool0 = Identity, for 32x32 images), opts.in_channels (3).
  --- memory_efficient = true (torchvision's gradient checkpointing) is
  --- refused. Names, shapes and initialisation are torchvision's.
  models.densenet = function(opts) return DenseNet("lm.models.densenet", DEFAULTS, GENERIC, opts) end

  --- torchvision's densenet121, densenet161, densenet169, densenet201:
  --- lm.models.densenet with their sizes (growth_rate, block_config and
  --- num_init_features fixed); the other options as lm.models.densenet's.
  for arch, preset in pairs(PRESETS) do
    local name = "lm.models." .. arch
    local unsupported = preset_sizes(name, preset)
    models[arch] = function(opts) return DenseNet(name, preset, unsupported, opts) end
  end
end
