-- ResNets with torchvision's architecture, initialisation and state-dict
-- names (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc, ...), so a
-- torchvision checkpoint loads strictly and Lumen's file loads into
-- torchvision.models.resnet18 with strict=True.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(models)
  local nn = lm.nn

  local ResNet = nn.Module:extend("models.ResNet")

  local KNOWN = {num_classes = true, classes = true, stem = true, width = true, in_channels = true}

  -- torchvision's ResNet with BasicBlocks, `blocks` per stage
  function ResNet:init(blocks, opts, name)
    opts = checks.opts(opts, name, KNOWN, nil, 4) -- (level 4: the caller of the constructor)
    if opts.num_classes ~= nil and opts.classes ~= nil and opts.num_classes ~= opts.classes then
      error(string.format("%s: num_classes (%s) and classes (%s) are two spellings of one option; give one",
        name, tostring(opts.num_classes), tostring(opts.classes)), 3)
    end
    local classes = opts.num_classes or opts.classes or 1000
    local stem = opts.stem or "imagenet"
    local width = opts.width or 64
    local in_channels = opts.in_channels or 3
    for what, v in pairs{num_classes = classes, width = width, in_channels = in_channels} do
      if math.type(v) ~= "integer" or v < 1 then
        error(string.format("%s: %s must be a positive integer, got %s", name, what, checks.shown(v)), 3)
      end
    end
    if stem ~= "imagenet" and stem ~= "cifar" then
      error(name .. ": stem must be 'imagenet' (7x7 stride-2 convolution and max pooling) or 'cifar' " ..
        "(3x3 stride-1 convolution, no pooling), got " .. checks.shown(stem), 3)
    end
    self.stem, self.num_classes = stem, classes

    -- Kaiming normal, fan-out, for ReLU: torchvision's init of every Conv2d
    local function conv(cin, cout, k, stride, padding)
      local c = nn.Conv2d(cin, cout, k, {stride = stride, padding = padding, bias = false})
      lm.no_grad(function() c.weight:normal_(0, math.sqrt(2 / (cout * k * k))) end)
      return c
    end

    if stem == "imagenet" then
      self:child("conv1", conv(in_channels, width, 7, 2, 3))
    else
      self:child("conv1", conv(in_channels, width, 3, 1, 1))
    end
    self:child("bn1", nn.BatchNorm2d(width))
    self:child("relu", nn.ReLU())
    self:child("maxpool", stem == "imagenet" and nn.MaxPool2d(3, 2, 1) or nn.Identity())
    local inplanes = width
    for stage, count in ipairs(blocks) do
      local planes = width << (stage - 1)
      local stride = stage == 1 and 1 or 2
      local layer = nn.Sequential()
      for b = 1, count do
        local s = b == 1 and stride or 1
        local down
        if s ~= 1 or inplanes ~= planes then
          down = nn.Sequential(conv(inplanes, planes, 1, s, 0), nn.BatchNorm2d(planes))
        end
        layer:add(nn.BasicBlock(inplanes, planes, {stride = s, downsample = down}))
        inplanes = planes
      end
      self:child("layer" .. stage, layer)
    end
    self:child("avgpool", nn.AdaptiveAvgPool2d(1))
    self:child("fc", nn.Linear(inplanes, classes, {init = "pytorch"}))
  end

  function ResNet:forward(x)
    x = self.maxpool(nn._conv_bn_then(self.conv1, self.bn1, x, nil, self.relu, self.fuse)) -- one op in evaluation
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    x = self.avgpool(x)
    return self.fc(x:flatten(2)) -- (an empty batch stays empty)
  end

  --- net.fuse = false keeps the stem's batch norm and ReLU apart; each
  --- block has its own `fuse` (set m.fuse for every m of net:modules()).
  ResNet.fuse = true

  function ResNet:extra_repr() return self.stem .. " stem, " .. self.num_classes .. " classes" end

  local function construct(blocks, name)
    return function(opts) return ResNet(blocks, opts, name) end
  end

  --- torchvision's ResNet-18 (BasicBlocks 2, 2, 2, 2). opts.num_classes
  --- (1000, as torchvision; also spelled classes), opts.stem: 'imagenet'
  --- (default: 7x7 stride-2 convolution, 3x3 stride-2 max pooling) or
  --- 'cifar' (3x3 stride-1 convolution, no pooling: torchvision's model with
  --- conv1 = Conv2d(3, 64, 3, 1, 1, bias=False) and maxpool = Identity, for
  --- 32x32 images), opts.width (64: the first stage's channels, doubled per
  --- stage), opts.in_channels (3). Names, shapes and initialisation are
  --- torchvision's, so state dicts go both ways with strict loading.
  models.resnet18 = construct({2, 2, 2, 2}, "lm.models.resnet18")

  --- torchvision's ResNet-34 (BasicBlocks 3, 4, 6, 3); options as resnet18.
  models.resnet34 = construct({3, 4, 6, 3}, "lm.models.resnet34")
end
