-- VGG (11, 13, 16, 19 layers, with or without batch norms) with
-- torchvision's architecture, initialisation and state-dict names
-- (features.0, features.1, ..., classifier.0, classifier.3, classifier.6),
-- so a torchvision checkpoint loads strictly and Lumen's file loads into
-- torchvision.models.vgg16 (or its siblings) with strict=True.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(models)
  local nn = lm.nn

  -- output channels of each 3x3 convolution, "M" a 2x2 max pooling
  -- (torchvision's configurations A, B, D and E, the paper's table 1)
  local CONFIGS = {
    vgg11 = {64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"},
    vgg13 = {64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"},
    vgg16 = {64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"},
    vgg19 = {64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"},
  }

  local KNOWN = {num_classes = true, classes = true, dropout = true, width = true, in_channels = true}
  -- VGG has no stem to trade for a CIFAR one: its first layer is a 3x3
  -- stride-1 convolution already, and 32x32 images run through the model
  -- as it is (five poolings leave 1x1, which the adaptive pooling spreads
  -- to 7x7 as torch's does); the usual CIFAR VGG's 512 -> classes head would
  -- change the classifier's shapes.
  local UNSUPPORTED = {stem = {accepts = function(v) return v == "imagenet" end,
    reason = "VGG's first layer is a 3x3 stride-1 convolution already: 32x32 images run through the model as it is"}}

  local VGG = nn.Module:extend("models.VGG")

  function VGG:init(arch, batch_norm, opts, name)
    opts = checks.opts(opts, name, KNOWN, UNSUPPORTED, 4) -- (level 4: the caller of the constructor)
    local classes = models._classes(opts, name, 4)
    local width, in_channels = opts.width or 64, opts.in_channels or 3
    for what, v in pairs{num_classes = classes, width = width, in_channels = in_channels} do
      if math.type(v) ~= "integer" or v < 1 then
        error(string.format("%s: %s must be a positive integer, got %s", name, what, checks.shown(v)), 3)
      end
    end
    local dropout = opts.dropout or 0.5
    if type(dropout) ~= "number" or not (dropout >= 0 and dropout < 1) then
      error(string.format("%s: dropout must be a number in [0, 1), got %s", name, checks.shown(dropout)), 3)
    end
    self.arch, self.batch_norm, self.num_classes, self.width = arch, batch_norm, classes, width

    -- torchvision's make_layers; every convolution Kaiming normal (fan-out,
    -- ReLU) with bias 0, as torchvision initialises them
    local features, channels = nn.Sequential(), in_channels
    for _, v in ipairs(CONFIGS[arch]) do
      if v == "M" then
        features:add(nn.MaxPool2d(2, 2))
      else
        local out = v // 64 * width
        local conv = nn.Conv2d(channels, out, 3, {padding = 1})
        nn.init.kaiming_normal_(conv.weight, {mode = "fan_out", nonlinearity = "relu"})
        nn.init.zeros_(conv.bias)
        features:add(conv)
        if batch_norm then features:add(nn.BatchNorm2d(out)) end
        features:add(nn.ReLU())
        channels = out
      end
    end
    self:child("features", features)
    self:child("avgpool", nn.AdaptiveAvgPool2d({7, 7}))
    local hidden = 64 * width -- torchvision's 4096 at the default width
    local classifier = nn.Sequential(nn.Linear(channels * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
      nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes))
    for _, i in ipairs{1, 4, 7} do -- torchvision: every Linear N(0, 0.01), bias 0
      nn.init.normal_(classifier[i].weight, 0, 0.01)
      nn.init.zeros_(classifier[i].bias)
    end
    self:child("classifier", classifier)
  end

  --- net:block_names(): each stage at its max pooling (features.2, ... in vgg11).
  function VGG:block_names()
    local names = {}
    for i = 1, #self.features do
      if getmetatable(self.features[i]) == nn.MaxPool2d then names[#names + 1] = "features." .. (i - 1) end
    end
    return names
  end

  function VGG:forward(x)
    x = self.avgpool(self.features(x))
    return self.classifier(x:flatten(2))
  end

  function VGG:extra_repr()
    return string.format("%s%s, width %d, %d classes", self.arch, self.batch_norm and " with batch norms" or "",
      self.width, self.num_classes)
  end

  --- lm.models.vgg11, vgg13, vgg16, vgg19 and vgg11_bn ... vgg19_bn:
  --- torchvision's VGG (Simonyan and Zisserman 2015; _bn: a batch norm
  --- after every convolution). opts.num_classes (1000, as torchvision; also
  --- spelled classes), opts.dropout (0.5, in the classifier),
  --- opts.width (64: the first convolutions' channels, doubled per stage
  --- to 8 x width; the classifier's hidden layers have 64 x width units,
  --- torchvision's 4096), opts.in_channels (3); stem = 'cifar' is refused
  --- (see UNSUPPORTED). Names, shapes and initialisation are torchvision's,
  --- so state dicts go both ways.
  for _, arch in ipairs{"vgg11", "vgg13", "vgg16", "vgg19"} do
    for _, batch_norm in ipairs{false, true} do
      local name = "lm.models." .. arch .. (batch_norm and "_bn" or "")
      models[arch .. (batch_norm and "_bn" or "")] = function(opts) return VGG(arch, batch_norm, opts, name) end
    end
  end
end
