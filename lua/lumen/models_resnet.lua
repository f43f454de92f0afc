-- ResNets with torchvision's architecture, initialisation and state-dict
-- names (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc, ...), so a
-- torchvision checkpoint loads strictly and Lumen's file loads into
-- torchvision.models.resnet18 (resnet50, resnext50_32x4d, ...) with strict=True.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(models)
  local nn = lm.nn

  local ResNet = nn.Module:extend("models.ResNet")

  local KNOWN = {num_classes = true, classes = true, stem = true, width = true, in_channels = true,
    zero_init_residual = true, replace_stride_with_dilation = true, groups = true, width_per_group = true,
    blocks = true}

  local function positive_integer(name, what, v)
    if math.type(v) ~= "integer" or v < 1 then
      error(string.format("%s: %s must be a positive integer, got %s", name, what, checks.shown(v)), 4)
    end
  end

  -- torchvision's ResNet: `block` (nn.BasicBlock or nn.Bottleneck),
  -- `blocks` per stage; `fixed` the options the constructor sets (ResNeXt's
  -- groups, Wide ResNet's width per group)
  function ResNet:init(block, blocks, opts, name, fixed)
    opts = checks.opts(opts, name, KNOWN, nil, 4) -- (level 4: the caller of the constructor)
    for k, v in pairs(fixed) do
      if opts[k] ~= nil and opts[k] ~= v then
        error(string.format("%s: %s is %s in this model, got %s", name, k, tostring(v), checks.shown(opts[k])), 3)
      end
    end
    local classes = models._classes(opts, name, 4)
    local stem = opts.stem or "imagenet"
    local width = opts.width or 64
    local in_channels = opts.in_channels or 3
    local groups = fixed.groups or opts.groups or 1
    local width_per_group = fixed.width_per_group or opts.width_per_group or 64
    positive_integer(name, "num_classes", classes)
    positive_integer(name, "width", width)
    positive_integer(name, "in_channels", in_channels)
    positive_integer(name, "groups", groups)
    positive_integer(name, "width_per_group", width_per_group)
    if stem ~= "imagenet" and stem ~= "cifar" then
      error(name .. ": stem must be 'imagenet' (7x7 stride-2 convolution and max pooling) or 'cifar' " ..
        "(3x3 stride-1 convolution, no pooling), got " .. checks.shown(stem), 3)
    end
    blocks = opts.blocks or blocks
    if type(blocks) ~= "table" or #blocks ~= 4 then
      error(name .. ": blocks must be a list of 4 positive integers (blocks per stage), got "
        .. (type(blocks) == "table" and "a list of " .. #blocks or checks.shown(blocks)), 3)
    end
    for _, n in ipairs(blocks) do positive_integer(name, "every entry of blocks", n) end
    local dilate = opts.replace_stride_with_dilation or {false, false, false}
    local function list_of_3_booleans(v)
      if type(v) ~= "table" then return false, checks.shown(v) end
      if #v ~= 3 then return false, "a list of " .. #v end
      for i = 1, 3 do
        if type(v[i]) ~= "boolean" then return false, "entry " .. i .. " " .. checks.shown(v[i]) end
      end
      return true
    end
    local fine, got = list_of_3_booleans(dilate)
    if not fine then
      error(name .. ": replace_stride_with_dilation must be a list of 3 booleans (stages 2 to 4), got " .. got, 3)
    end
    if block == nn.BasicBlock and (groups ~= 1 or width_per_group ~= 64 or dilate[1] or dilate[2] or dilate[3]) then
      error(name .. ": BasicBlock networks take only groups = 1, width_per_group = 64 and no dilation "
        .. "(as torchvision's)", 3)
    end
    if block == nn.Bottleneck and width * width_per_group // 64 < 1 then
      error(string.format("%s: width (%d) x width_per_group (%d) / 64 must be at least 1 (a Bottleneck's inner "
        .. "channels per group), got %d x %d / 64", name, width, width_per_group, width, width_per_group), 3)
    end
    local zero_init = opts.zero_init_residual or false
    if type(zero_init) ~= "boolean" then
      error(name .. ": zero_init_residual must be a boolean, got " .. checks.shown(zero_init), 3)
    end
    self.stem, self.num_classes = stem, classes

    local conv = nn._resnet_conv
    if stem == "imagenet" then
      self:child("conv1", conv(in_channels, width, 7, 2, 1, 1))
    else
      self:child("conv1", conv(in_channels, width, 3, 1, 1, 1))
    end
    self:child("bn1", nn.BatchNorm2d(width))
    self:child("relu", nn.ReLU())
    self:child("maxpool", stem == "imagenet" and nn.MaxPool2d(3, 2, 1) or nn.Identity())
    local inplanes, dilation = width, 1
    for stage, count in ipairs(blocks) do
      local planes = width << (stage - 1)
      local stride, previous_dilation = stage == 1 and 1 or 2, dilation
      if stage > 1 and dilate[stage - 1] then dilation, stride = dilation * stride, 1 end
      local layer = nn.Sequential()
      for b = 1, count do
        local down
        if b == 1 and (stride ~= 1 or inplanes ~= planes * block.expansion) then
          down = nn.Sequential(conv(inplanes, planes * block.expansion, 1, stride, 1, 1),
            nn.BatchNorm2d(planes * block.expansion))
        end
        local o = {stride = b == 1 and stride or 1, downsample = down,
          dilation = b == 1 and previous_dilation or dilation}
        if block == nn.Bottleneck then o.groups, o.base_width = groups, width_per_group end
        layer:add(block(inplanes, planes, o))
        inplanes = planes * block.expansion
      end
      self:child("layer" .. stage, layer)
    end
    self:child("avgpool", nn.AdaptiveAvgPool2d(1))
    self:child("fc", nn.Linear(inplanes, classes, {init = "pytorch"}))
    -- torchvision's zero_init_residual: each block starts as the identity
    -- of its skip branch (the last batch norm's weight 0)
    if zero_init then
      for _, m in ipairs(self:modules()) do
        local last = getmetatable(m) == nn.Bottleneck and m.bn3 or getmetatable(m) == nn.BasicBlock and m.bn2
        if last then lm.no_grad(function() last.weight:zero_() end) end
      end
    end
  end

  --- net:block_names(): its four stages, layer1 to layer4 (what a map records).
  function ResNet:block_names() return {"layer1", "layer2", "layer3", "layer4"} end

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

  local function construct(block, blocks, name, fixed)
    return function(opts) return ResNet(block, blocks, opts, name, fixed or {}) end
  end

  --- torchvision's ResNet-18 (BasicBlocks 2, 2, 2, 2). opts.num_classes
  --- (1000, as torchvision; also spelled classes), opts.stem: 'imagenet'
  --- (default: 7x7 stride-2 convolution, 3x3 stride-2 max pooling) or
  --- 'cifar' (3x3 stride-1 convolution, no pooling: torchvision's model with
  --- conv1 = Conv2d(3, 64, 3, 1, 1, bias=False) and maxpool = Identity, for
  --- 32x32 images), opts.width (64: the first stage's channels, doubled per
  --- stage), opts.in_channels (3), opts.zero_init_residual (false),
  --- opts.blocks (per stage, {2, 2, 2, 2}: fewer for a small study). Names,
  --- shapes and initialisation are torchvision's, so state dicts go both
  --- ways with strict loading.
  models.resnet18 = construct(nn.BasicBlock, {2, 2, 2, 2}, "lm.models.resnet18")

  --- torchvision's ResNet-34 (BasicBlocks 3, 4, 6, 3); options as resnet18.
  models.resnet34 = construct(nn.BasicBlock, {3, 4, 6, 3}, "lm.models.resnet34")

  --- torchvision's ResNet-50 (Bottlenecks 3, 4, 6, 3; the stride on the 3x3
  --- convolution, "V1.5"); options as resnet18, and opts.groups (1),
  --- opts.width_per_group (64) and opts.replace_stride_with_dilation
  --- ({false, false, false}: stages 2-4 keep their size and dilate instead).
  models.resnet50 = construct(nn.Bottleneck, {3, 4, 6, 3}, "lm.models.resnet50")
  --- torchvision's ResNet-101 (Bottlenecks 3, 4, 23, 3); options as resnet50.
  models.resnet101 = construct(nn.Bottleneck, {3, 4, 23, 3}, "lm.models.resnet101")
  --- torchvision's ResNet-152 (Bottlenecks 3, 8, 36, 3); options as resnet50.
  models.resnet152 = construct(nn.Bottleneck, {3, 8, 36, 3}, "lm.models.resnet152")
  --- torchvision's ResNeXt-50 32x4d: resnet50 with groups 32, width_per_group 4.
  models.resnext50_32x4d = construct(nn.Bottleneck, {3, 4, 6, 3}, "lm.models.resnext50_32x4d",
    {groups = 32, width_per_group = 4})
  --- torchvision's ResNeXt-101 32x8d: resnet101 with groups 32, width_per_group 8.
  models.resnext101_32x8d = construct(nn.Bottleneck, {3, 4, 23, 3}, "lm.models.resnext101_32x8d",
    {groups = 32, width_per_group = 8})
  --- torchvision's ResNeXt-101 64x4d: resnet101 with groups 64, width_per_group 4.
  models.resnext101_64x4d = construct(nn.Bottleneck, {3, 4, 23, 3}, "lm.models.resnext101_64x4d",
    {groups = 64, width_per_group = 4})
  --- torchvision's Wide ResNet-50-2: resnet50 with width_per_group 128.
  models.wide_resnet50_2 = construct(nn.Bottleneck, {3, 4, 6, 3}, "lm.models.wide_resnet50_2",
    {width_per_group = 128})
  --- torchvision's Wide ResNet-101-2: resnet101 with width_per_group 128.
  models.wide_resnet101_2 = construct(nn.Bottleneck, {3, 4, 23, 3}, "lm.models.wide_resnet101_2",
    {width_per_group = 128})
end
