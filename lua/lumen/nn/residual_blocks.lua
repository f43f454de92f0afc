-- torchvision's ResNet blocks, BasicBlock (ResNet-18/34) and Bottleneck
-- (ResNet-50 and up, ResNeXt, Wide ResNet), with torchvision's children
-- names, initialisation and order of modules, so their state dicts go both
-- ways. Each batch norm runs fused with what follows it (the ReLU; the sum
-- with the skip branch and the ReLU) where nothing could tell (conv_layers.lua's
-- bn_then and conv_bn_then): the same values in fewer passes.
local checks = require 'lumen.nn.checks'

return function(nn)
  local Module = nn.Module
  local check_size, check_opts = checks.size, checks.opts
  local conv_bn_then, bn_then = nn._conv_bn_then, nn._bn_then

  -- Kaiming normal, fan-out, for ReLU: torchvision's init of a ResNet's
  -- convolutions (no bias); padding keeps the size at stride 1
  local function conv(cin, cout, k, stride, groups, dilation)
    local c = nn.Conv2d(cin, cout, k, {stride = stride, padding = dilation * (k // 2), dilation = dilation,
      groups = groups, bias = false})
    nn.init.kaiming_normal_(c.weight, {mode = "fan_out", nonlinearity = "relu"})
    return c
  end
  nn._resnet_conv = conv

  -- The options both blocks take; downsample = true is torchvision's
  -- Sequential(conv1x1(stride), BatchNorm2d) to `outputs` channels.
  local KNOWN = {stride = true, downsample = true, groups = true, base_width = true, dilation = true}
  local function block_options(name, inplanes, planes, opts, outputs)
    check_size(inplanes, "inplanes", name)
    check_size(planes, "planes", name)
    opts = check_opts(opts, name, KNOWN, nil, 4)
    local o = {stride = opts.stride or 1, groups = opts.groups or 1, base_width = opts.base_width or 64,
      dilation = opts.dilation or 1}
    for _, what in ipairs{"stride", "groups", "base_width", "dilation"} do check_size(o[what], what, name) end
    o.downsample = opts.downsample
    if o.downsample == true then
      o.downsample = nn.Sequential(conv(inplanes, outputs, 1, o.stride, 1, 1), nn.BatchNorm2d(outputs))
    elseif o.downsample ~= nil and not (type(o.downsample) == "table" and type(o.downsample.forward) == "function") then
      error(string.format("%s: downsample must be a module or true, got %s", name, checks.shown(o.downsample)), 4)
    end
    return o
  end

  -- relu(bn(conv(out)) + skip), skip = downsample(x) or x: the block's
  -- last convolution with its batch norm, the sum and the ReLU in one pass
  -- where they fuse; the modules' order is torchvision's whenever one of
  -- them could tell (a hook, a replaced forward)
  local function last_stage(block, conv_m, bn, out, x)
    local down, relu = rawget(block, "downsample"), block.relu
    if block.fuse ~= false and nn._conv_bn_fusable(conv_m, bn, relu) then
      return conv_bn_then(conv_m, bn, out, down and down(x) or x, relu)
    end
    out = conv_m(out)
    if block.fuse ~= false and nn._bn_fusable(bn, relu) then
      return bn_then(bn, out, down and down(x) or x, relu)
    end
    out = bn(out)
    local identity = down and down(x) or x
    return relu(out + identity)
  end

  nn.BasicBlock = Module:extend("nn.BasicBlock")

  --- torchvision's ResNet BasicBlock: conv3x3(stride) - bn1 - relu - conv3x3
  --- - bn2, plus the input (through `downsample` when given), then relu.
  --- Children conv1, bn1, relu, conv2, bn2 [, downsample], as torchvision's.
  --- opts.stride (1); opts.downsample: a module, or true for torchvision's
  --- Sequential(conv1x1(inplanes, planes, stride), BatchNorm2d(planes)).
  --- Convolutions have no bias; weights as torchvision's (Kaiming normal,
  --- fan-out), batch norms weight 1 and bias 0. As torchvision's, it takes
  --- only groups = 1, base_width = 64 and dilation = 1.
  function nn.BasicBlock:init(inplanes, planes, opts)
    local o = block_options("nn.BasicBlock", inplanes, planes, opts, planes)
    if o.groups ~= 1 or o.base_width ~= 64 then
      error("nn.BasicBlock: takes only groups = 1 and base_width = 64 (as torchvision's), got groups = "
        .. o.groups .. ", base_width = " .. o.base_width, 3)
    end
    if o.dilation ~= 1 then
      error("nn.BasicBlock: takes only dilation = 1 (as torchvision's), got " .. o.dilation, 3)
    end
    self.stride = o.stride
    self:child("conv1", conv(inplanes, planes, 3, o.stride, 1, 1))
    self:child("bn1", nn.BatchNorm2d(planes))
    self:child("relu", nn.ReLU())
    self:child("conv2", conv(planes, planes, 3, 1, 1, 1))
    self:child("bn2", nn.BatchNorm2d(planes))
    if o.downsample then self:child("downsample", o.downsample) end
  end

  nn.BasicBlock.expansion = 1

  -- In evaluation the batch norms, the sum and the ReLUs take one pass each
  -- (bn_then) where they took five, and in training (CPU and CUDA) the sum and
  -- the ReLUs ride in the batch norms' passes.
  --- block.fuse = false keeps every module apart (default true).
  nn.BasicBlock.fuse = true

  function nn.BasicBlock:forward(x)
    local out = conv_bn_then(self.conv1, self.bn1, x, nil, self.relu, self.fuse)
    return last_stage(self, self.conv2, self.bn2, out, x)
  end

  nn.Bottleneck = Module:extend("nn.Bottleneck")

  --- torchvision's ResNet Bottleneck (ResNet-50 and up, ResNeXt, Wide
  --- ResNet; the stride on the 3x3 convolution, "ResNet V1.5"): conv1x1 to
  --- `width` - bn1 - relu - conv3x3(stride, groups, dilation) - bn2 - relu -
  --- conv1x1 to planes * 4 - bn3, plus the input (through `downsample`),
  --- then relu; width = floor(planes * base_width / 64) * groups. Children
  --- conv1, bn1, conv2, bn2, conv3, bn3, relu [, downsample], as
  --- torchvision's. opts.stride (1), opts.groups (1), opts.base_width (64),
  --- opts.dilation (1), opts.downsample: a module, or true for torchvision's
  --- Sequential(conv1x1(inplanes, planes * 4, stride), BatchNorm2d).
  function nn.Bottleneck:init(inplanes, planes, opts)
    local o = block_options("nn.Bottleneck", inplanes, planes, opts, planes * 4)
    local width = (planes * o.base_width // 64) * o.groups
    if width < 1 then
      error(string.format("nn.Bottleneck: planes * base_width / 64 must be at least 1, got %d * %d / 64", planes,
        o.base_width), 3)
    end
    self.stride, self.groups, self.width = o.stride, o.groups, width
    self:child("conv1", conv(inplanes, width, 1, 1, 1, 1))
    self:child("bn1", nn.BatchNorm2d(width))
    self:child("conv2", conv(width, width, 3, o.stride, o.groups, o.dilation))
    self:child("bn2", nn.BatchNorm2d(width))
    self:child("conv3", conv(width, planes * 4, 1, 1, 1, 1))
    self:child("bn3", nn.BatchNorm2d(planes * 4))
    self:child("relu", nn.ReLU())
    if o.downsample then self:child("downsample", o.downsample) end
  end

  nn.Bottleneck.expansion = 4
  --- block.fuse = false keeps every module apart (default true).
  nn.Bottleneck.fuse = true

  function nn.Bottleneck:forward(x)
    local out = conv_bn_then(self.conv1, self.bn1, x, nil, self.relu, self.fuse)
    out = conv_bn_then(self.conv2, self.bn2, out, nil, self.relu, self.fuse)
    return last_stage(self, self.conv3, self.bn3, out, x)
  end

  function nn.Bottleneck:extra_repr()
    return string.format("width %d%s%s", self.width, self.stride ~= 1 and ", stride " .. self.stride or "",
      self.groups ~= 1 and ", groups " .. self.groups or "")
  end
end
