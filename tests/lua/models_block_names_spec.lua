-- net:block_names() of every lm.models family: the layers a map records by
-- default (experiments/introspect_pytorch.lua's --blocks), named as
-- named_modules() names them, each recorded once by lm.introspect.Recorder
-- with its own width (a stage's channels).
local lm = require 'lumen'

-- small members of each family, their block names and the recorded widths
local CASES = {
  {"resnet50", function() return lm.models.resnet50{width = 4, num_classes = 3, blocks = {1, 1, 1, 1}} end,
    {"layer1", "layer2", "layer3", "layer4"}, {16, 32, 64, 128}},
  {"mobilenet_v2", function() return lm.models.mobilenet_v2{width_mult = 0.25, num_classes = 3} end, nil, nil, 18},
  {"mobilenet_v3_small", function() return lm.models.mobilenet_v3_small{width_mult = 0.25, num_classes = 3} end,
    nil, nil, 12},
  {"efficientnet_b0", function()
    return lm.models.efficientnet_b0{width_mult = 0.25, depth_mult = 0.25, num_classes = 3}
  end, {"features.1", "features.2", "features.3", "features.4", "features.5", "features.6", "features.7",
    "features.8"}},
  {"vgg11", function() return lm.models.vgg11{width = 2, num_classes = 3} end,
    {"features.2", "features.5", "features.10", "features.15", "features.20"}, {2, 4, 8, 16, 16}},
  {"densenet", function()
    return lm.models.densenet{growth_rate = 4, block_config = {1, 2, 1}, num_init_features = 8, num_classes = 3}
  end, {"features.denseblock1", "features.denseblock2", "features.denseblock3"}, {12, 14, 11}},
  {"convnext", function()
    return lm.models.convnext{block_setting = {{4, 1}, {8, 1}, {12, 1}}, num_classes = 3}
  end, {"features.1", "features.3", "features.5"}, {4, 8, 12}},
  {"regnet", function()
    return lm.models.regnet{depth = 3, w_0 = 8, w_a = 8.0, w_m = 2.0, group_width = 8, stem_width = 8, num_classes = 3}
  end, {"trunk_output.block1", "trunk_output.block2", "trunk_output.block3"}, {8, 16, 32}},
  {"vit", function()
    return lm.models.vit{image_size = 32, patch_size = 16, num_classes = 3, dim = 8, depth = 3, heads = 2, mlp_dim = 8}
  end, {"layers.0", "layers.1", "layers.2"}, {8, 8, 8}},
}

describe("lm.models block_names", function()
  for _, c in ipairs(CASES) do
    local family, make, want, widths, count = table.unpack(c)
    it(family .. ": the default recorded layers, each recorded once", function()
      lm.manual_seed(1)
      local net = make()
      local names = net:block_names()
      if want then same(names, want) else eq(#names, count, "blocks") end
      local rec = lm.introspect.Recorder(net, {select = names, pool = family == "vit" and "cls" or "mean"})
      local h = rec:record(lm.rand(2, 3, 32, 32))
      same(rec.layer_names, names, 0, "layer_names")
      if widths then same(rec.layer_sizes, widths, 0, "layer_sizes") end
      local total = 0
      for _, n in ipairs(rec.layer_sizes) do total = total + n end
      eq(h:shape_string(), "2x" .. total)
    end)
  end
end)
