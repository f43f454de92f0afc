-- The ResNet family of lm.models without torch: torchvision's stage layout,
-- Bottleneck widths for ResNeXt and Wide ResNet, dilated stages,
-- zero_init_residual and the options' errors. (Against torchvision's own
-- models: tests/lua/torch_torchvision_models_spec.lua and torch_conv_layers_spec.lua.)
local lm = require 'lumen'
local nn = lm.nn

local refused = dofile("tests/helpers/refused.lua")("models_resnet_spec.lua", raises, truthy)

-- at a narrow width (the channels of the first stage), so each builds in a blink
local FAMILY = {
  -- constructor, blocks per stage, block, groups, width per group
  {"resnet18", {2, 2, 2, 2}, nn.BasicBlock, 1, 64},
  {"resnet34", {3, 4, 6, 3}, nn.BasicBlock, 1, 64},
  {"resnet50", {3, 4, 6, 3}, nn.Bottleneck, 1, 64},
  {"resnet101", {3, 4, 23, 3}, nn.Bottleneck, 1, 64},
  {"resnet152", {3, 8, 36, 3}, nn.Bottleneck, 1, 64},
  {"resnext50_32x4d", {3, 4, 6, 3}, nn.Bottleneck, 32, 4},
  {"resnext101_32x8d", {3, 4, 23, 3}, nn.Bottleneck, 32, 8},
  {"resnext101_64x4d", {3, 4, 23, 3}, nn.Bottleneck, 64, 4},
  {"wide_resnet50_2", {3, 4, 6, 3}, nn.Bottleneck, 1, 128},
  {"wide_resnet101_2", {3, 4, 23, 3}, nn.Bottleneck, 1, 128},
}

describe("lm.models ResNets", function()
  it("torchvision's stages, blocks, widths and groups for every constructor", function()
    for _, f in ipairs(FAMILY) do
      local name, blocks, block, groups, per_group = table.unpack(f)
      local net = lm.models[name]{width = 16, num_classes = 3}
      for stage = 1, 4 do
        local layer = net["layer" .. stage]
        eq(#layer, blocks[stage], name .. " layer" .. stage .. " blocks")
        local planes = 16 << (stage - 1)
        for i = 1, #layer do
          truthy(getmetatable(layer[i]) == block, name .. ": every block a " .. block.__name)
          if block == nn.Bottleneck then
            local width = planes * per_group // 64 * groups
            eq(layer[i].conv2.weight:shape_string(), string.format("%dx%dx3x3", width, width // groups),
              name .. " layer" .. stage .. "[" .. i .. "].conv2")
            eq(layer[i].conv2.groups, groups, name .. " groups")
            eq(layer[i].conv3.outputs, planes * 4, name .. " expansion 4")
          end
        end
        eq(layer[1].stride, stage == 1 and 1 or 2, name .. ": the first block of a stage strides")
        eq(rawget(layer[1], "downsample") ~= nil, stage > 1 or block == nn.Bottleneck,
          name .. " layer" .. stage .. ": a downsample where the shape changes")
      end
      eq(net.fc.weight:shape_string(), string.format("3x%d", 128 * block.expansion), name .. " fc")
    end
    local y = lm.no_grad(function() return lm.models.resnext50_32x4d{width = 16, num_classes = 3}:eval()(
      lm.randn(2, 3, 32, 32)) end)
    eq(y:shape_string(), "2x3")
  end)

  it("replace_stride_with_dilation keeps stages 3 and 4 at stage 2's size, dilating as torchvision", function()
    local net = lm.models.resnet50{width = 8, num_classes = 2, blocks = {1, 1, 2, 2},
      replace_stride_with_dilation = {false, true, true}}
    -- torchvision: a stage's first block keeps the previous dilation
    same({net.layer2[1].conv2.dilation, net.layer3[1].conv2.dilation, net.layer3[2].conv2.dilation,
      net.layer4[1].conv2.dilation, net.layer4[2].conv2.dilation}, {1, 1, 2, 2, 4})
    same({net.layer3[1].stride, net.layer4[1].stride}, {1, 1})
    local shapes = {}
    for stage = 2, 4 do
      net["layer" .. stage]:register_forward_hook(function(_, _, out) shapes[#shapes + 1] = out:shape_string() end)
    end
    lm.no_grad(function() net:eval()(lm.randn(1, 3, 64, 64)) end)
    same(shapes, {"1x64x8x8", "1x128x8x8", "1x256x8x8"}, 0, "layers 2 to 4")
  end)

  it("zero_init_residual starts each block's last batch norm at weight 0", function()
    local net = lm.models.resnet50{width = 8, num_classes = 2, zero_init_residual = true}
    local zeroed = 0
    for _, m in ipairs(net:modules()) do
      if getmetatable(m) == nn.Bottleneck then
        eq(m.bn3.weight:abs():max():item(), 0, "bn3.weight")
        eq(m.bn2.weight:min():item(), 1, "bn2.weight stays 1")
        zeroed = zeroed + 1
      end
    end
    eq(zeroed, 16)
    local basic = lm.models.resnet18{width = 8, zero_init_residual = true}
    eq(basic.layer1[1].bn2.weight:abs():max():item(), 0, "BasicBlock: bn2.weight")
    eq(lm.models.resnet18{width = 8}.layer1[1].bn2.weight:min():item(), 1, "by default 1")
  end)

  it("torchvision's Kaiming normal (fan-out) for every convolution", function()
    lm.manual_seed(3)
    local net = lm.models.wide_resnet50_2{width = 32}
    -- layer3's conv3, 1x1 from 256 to 512 (planes 128 x 4): fan-out 512 (fan-in would be 256)
    local w = net.layer3[1].conv3.weight
    eq(w:shape_string(), "512x256x1x1")
    local want = math.sqrt(2 / 512)
    truthy(math.abs(w:std():item() / want - 1) < 0.02, "std " .. w:std():item() .. " against " .. want)
  end)

  it("bad options are named", function()
    refused(function() lm.models.resnet18{groups = 2} end,
      "lm.models.resnet18: BasicBlock networks take only groups = 1, width_per_group = 64 and no dilation")
    refused(function() lm.models.resnet34{replace_stride_with_dilation = {false, false, true}} end,
      "lm.models.resnet34: BasicBlock networks take only groups = 1")
    refused(function() lm.models.resnext50_32x4d{groups = 8} end,
      "lm.models.resnext50_32x4d: groups is 32 in this model, got 8")
    refused(function() lm.models.resnet50{blocks = {3, 4, 6}} end,
      "lm.models.resnet50: blocks must be a list of 4 positive integers (blocks per stage), got a list of 3")
    refused(function() lm.models.resnext50_32x4d{width = 8} end,
      "lm.models.resnext50_32x4d: width (8) x width_per_group (4) / 64 must be at least 1")
    refused(function() lm.models.resnet50{replace_stride_with_dilation = {false, 1, true}} end,
      "lm.models.resnet50: replace_stride_with_dilation must be a list of 3 booleans (stages 2 to 4), got entry 2 1")
    refused(function() lm.models.resnet50{blocks = {3, 4, 0, 3}} end,
      "lm.models.resnet50: every entry of blocks must be a positive integer, got 0")
    refused(function() lm.models.resnet50{replace_stride_with_dilation = {true}} end,
      "lm.models.resnet50: replace_stride_with_dilation must be a list of 3 booleans (stages 2 to 4), got a list of 1")
    refused(function() lm.models.resnet101{zero_init_residual = 1} end,
      "lm.models.resnet101: zero_init_residual must be a boolean, got 1")
    refused(function() lm.models.resnet50{width_per_group = 0} end,
      "lm.models.resnet50: width_per_group must be a positive integer, got 0")
    refused(function() lm.models.resnet152{norm_layer = "gn"} end, "lm.models.resnet152: unknown option 'norm_layer'")
    refused(function() nn.Bottleneck(8, 2, {base_width = 16}) end,
      "nn.Bottleneck: planes * base_width / 64 must be at least 1, got 2 * 16 / 64")
    refused(function() nn.BasicBlock(8, 8, {dilation = 2}) end,
      "nn.BasicBlock: takes only dilation = 1 (as torchvision's), got 2")
    refused(function() nn.Bottleneck(8, 2, {downsample = "yes"}) end,
      'nn.Bottleneck: downsample must be a module or true, got "yes"')
  end)
end)
