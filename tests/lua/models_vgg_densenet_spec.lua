-- lm.models' VGG and DenseNet without torch: torchvision's layers, channel
-- counts and initialisation (statistically), the DenseNet concatenation,
-- dropout and fusion, and the constructors' errors. The comparisons with
-- torchvision are in torch_torchvision_models_spec.lua.
local lm = require 'lumen'

-- the mean and standard deviation of a tensor's values
local function moments(t) return t:mean():item(), t:std():item() end

-- t's values have standard deviation `std` (within 3 %: the tensors below
-- hold 18k values or more, an estimate within about 0.6 %) and mean 0
local function spread(t, std, what)
  local mean, got = moments(t)
  truthy(math.abs(got / std - 1) < 0.03, string.format("%s: std %.4g, want %.4g", what, got, std))
  truthy(math.abs(mean) < 0.03 * std, string.format("%s: mean %.3g", what, mean))
end

describe("lm.models.vgg* without torch", function()
  it("torchvision's layers for each configuration, with and without batch norms", function()
    for arch, convs in pairs{vgg11 = 8, vgg13 = 10, vgg16 = 13, vgg19 = 16} do
      local plain, bn = lm.models[arch]{width = 1}, lm.models[arch .. "_bn"]{width = 1}
      eq(#plain.features, 2 * convs + 5, arch .. ": a convolution and a ReLU each, five max poolings")
      eq(#bn.features, 3 * convs + 5, arch .. "_bn: and a batch norm after every convolution")
      eq(#bn:named_parameters() - #plain:named_parameters(), 2 * convs,
        arch .. "_bn: a weight and a bias per batch norm")
      eq(#bn:named_buffers(), 3 * convs, arch .. "_bn: running mean and variance, batches tracked")
    end
    local net = lm.models.vgg11_bn{width = 16, num_classes = 3, dropout = 0.25, in_channels = 1}
    eq(net.features[1].weight:shape_string(), "16x1x3x3", "in_channels, width")
    eq(net.features[4].__name, "nn.MaxPool2d")
    eq(net.classifier[1].weight:shape_string(), "1024x6272", "8 x 16 channels x 7 x 7 -> 64 x 16 units")
    eq(net.classifier[7].weight:shape_string(), "3x1024")
    eq(net.classifier[3].p, 0.25, "dropout")
    eq(net.classifier[6].p, 0.25, "dropout")
    net:eval()
    eq(net(lm.randn(2, 1, 32, 32)):shape_string(), "2x3", "32x32: 1x1 after five poolings, spread to 7x7")
    eq(net(lm.randn(1, 1, 40, 56)):shape_string(), "1x3")
  end)

  it("torchvision's initialisation: convolutions Kaiming normal (fan-out), Linear N(0, 0.01), biases 0",
      function()
    lm.manual_seed(1)
    local net = lm.models.vgg11_bn{width = 16}
    local conv = net.features[9] -- 32 -> 64 channels: fan-out 64 x 9 (fan-in would give sqrt(2) times more)
    eq(conv.weight:shape_string(), "64x32x3x3")
    spread(conv.weight, math.sqrt(2 / (64 * 9)), "conv weight")
    spread(net.classifier[4].weight, 0.01, "Linear weight")
    for _, pair in ipairs(net:named_parameters()) do
      local name, p = pair[1], pair[2]
      if name:match("bias$") then eq(p:abs():max():item(), 0, name) end
    end
    local bn = net.features[2]
    eq(bn.weight:min():item(), 1, "batch norm weight 1")
    eq(bn.weight:max():item(), 1, "batch norm weight 1")
  end)

  it("bad options are named, at the caller's line", function()
    local cases = {
      {{width = 0}, "width must be a positive integer, got 0"},
      {{width = 2.5}, "width must be a positive integer, got 2.5"},
      {{num_classes = 0}, "num_classes must be a positive integer, got 0"},
      {{dropout = 1}, "dropout must be a number in [0, 1), got 1"},
      {{stem = "cifar"}, "option stem = \"cifar\" is not supported (VGG's first layer is a 3x3 stride-1"},
      {{num_classes = 3, classes = 4}, "num_classes (3) and classes (4) are two spellings of one option"},
      {{widht = 3}, "unknown option 'widht'; did you mean width?"},
      {"wide", "options must be a table"},
    }
    for _, c in ipairs(cases) do
      local ok, msg = pcall(lm.models.vgg16_bn, c[1])
      truthy(not ok and msg:find("lm.models.vgg16_bn: " .. c[2], 1, true), tostring(msg))
      truthy(msg:find("^[^:]*models_vgg_densenet_spec%.lua:%d+: "), "at the caller's line: " .. msg)
    end
    eq(lm.models.vgg11{stem = "imagenet", width = 1}.width, 1, "stem = 'imagenet' is VGG as it is")
  end)
end)

describe("lm.models.densenet* without torch", function()
  local small = {growth_rate = 4, block_config = {2, 3}, num_init_features = 8, bn_size = 2, num_classes = 6}

  it("torchvision's blocks, transitions and channel counts; the two stems", function()
    local net = lm.models.densenet(small)
    local f = net.features
    eq(f.denseblock1.denselayer2.conv1.weight:shape_string(), "8x12x1x1", "8 + 4 channels in, 2 x 4 out")
    eq(f.denseblock1.denselayer2.conv2.weight:shape_string(), "4x8x3x3", "growth_rate channels out")
    eq(f.transition1.conv.weight:shape_string(), "8x16x1x1", "8 + 2 x 4 channels, halved")
    eq(f.transition1.pool.__name, "nn.AvgPool2d")
    eq(rawget(f, "transition2"), nil, "no transition after the last block")
    eq(f.norm5.num_features, 20, "8 + 3 x 4")
    eq(net.classifier.weight:shape_string(), "6x20")
    net:eval()
    local x = lm.randn(2, 3, 32, 32)
    eq(f(x):shape_string(), "2x20x4x4", "stride-2 convolution and pooling, one transition")
    eq(net(x):shape_string(), "2x6")
    local cifar = lm.models.densenet{growth_rate = 4, block_config = {2, 3}, num_init_features = 8, stem = "cifar"}
    eq(cifar.features.conv0.weight:shape_string(), "8x3x3x3")
    eq(cifar.features.conv0.stride, 1)
    eq(cifar.features.pool0.__name, "nn.Identity")
    cifar:eval()
    eq(cifar.features(x):shape_string(), "2x20x16x16", "only the transition halves the image")
  end)

  it("a dense block passes its input on unchanged, then each layer's new channels in order", function()
    lm.manual_seed(2)
    local block = lm.models.DenseBlock(2, 5, 3, 2, 0)
    block:eval()
    local x = lm.randn(2, 5, 6, 6)
    local y = block(x)
    eq(y:shape_string(), "2x11x6x6")
    eq((y:narrow(2, 1, 5) - x):abs():max():item(), 0, "the input first, as it was")
    local first = block.denselayer1(x)
    eq((y:narrow(2, 6, 3) - first):abs():max():item(), 0, "then the first layer's channels")
    local second = block.denselayer2(lm.cat({x, first}, 2))
    eq((y:narrow(2, 9, 3) - second):abs():max():item(), 0, "then the second's, computed from both")
  end)

  it("torchvision's initialisation: convolutions Kaiming normal (fan-in), classifier torch's default, bias 0",
      function()
    lm.manual_seed(4)
    local net = lm.models.densenet{growth_rate = 32, block_config = {1}, num_init_features = 16}
    local conv2 = net.features.denseblock1.denselayer1.conv2 -- 128 -> 32: fan-in 128 x 9
    eq(conv2.weight:shape_string(), "32x128x3x3")
    spread(conv2.weight, math.sqrt(2 / (128 * 9)), "conv2 weight")
    local w, bound = net.classifier.weight, 1 / math.sqrt(48)
    eq(w:shape_string(), "1000x48")
    truthy(w:abs():max():item() <= bound, "classifier weight within U(-1/sqrt(48), 1/sqrt(48))")
    spread(w, bound / math.sqrt(3), "classifier weight")
    eq(net.classifier.bias:abs():max():item(), 0, "classifier bias 0")
    local bn = net.features.norm0
    eq(bn.weight:min():item(), 1, "batch norm weight 1")
    eq(bn.bias:abs():max():item(), 0, "batch norm bias 0")
  end)

  it("drop_rate drops a layer's new channels in training only; fused and unfused give the same values",
      function()
    lm.manual_seed(5)
    local layer = lm.models.DenseLayer(8, 16, 2, 0.5)
    local x = lm.randn(2, 8, 8, 8)
    local zeros = (layer(x):eq(0)):float():mean():item()
    truthy(zeros > 0.4 and zeros < 0.6, "about half dropped in training: " .. zeros)
    layer:eval()
    eq((layer(x):eq(0)):float():sum():item(), 0, "none in evaluation")
    -- the same weights with and without drop_rate (and with fuse off): the same evaluation output
    local function make(drop_rate)
      lm.manual_seed(6)
      local o = {growth_rate = 4, block_config = {2, 1}, num_init_features = 8, drop_rate = drop_rate}
      return lm.models.densenet(o)
    end
    local a, b, unfused = make(0), make(0.3), make(0)
    for _, m in ipairs(unfused:modules()) do m.fuse = false end
    a:eval()
    b:eval()
    unfused:eval()
    local y = lm.randn(2, 3, 32, 32)
    local want = a(y)
    eq(rel_error(b(y), want), 0, "drop_rate changes nothing in evaluation")
    truthy(rel_error(unfused(y), want) < 1e-6, "unfused evaluation")
    a:train()
    unfused:train()
    truthy(rel_error(unfused(y), a(y)) < 1e-5, "unfused training")
  end)

  it("bad options are named, at the caller's line; presets keep their sizes; memory_efficient", function()
    local cases = {
      {{growth_rate = 0}, "growth_rate must be a positive integer, got 0"},
      {{num_init_features = 1.5}, "num_init_features must be a positive integer, got 1.5"},
      {{bn_size = -1}, "bn_size must be a positive integer, got -1"},
      {{block_config = {2, 0}}, "block_config[2] must be a positive integer, got 0"},
      {{block_config = {}}, "block_config must be a list of layer counts, one per dense block, got an empty table"},
      {{block_config = 4}, "block_config must be a list of layer counts, one per dense block, got 4"},
      {{block_config = {a = 2}}, "block_config must be a list of layer counts, one per dense block, got a table that"},
      {{block_config = {2, 2.5}}, "block_config[2] must be a positive integer, got 2.5"},
      {{drop_rate = 1}, "drop_rate must be a number in [0, 1), got 1"},
      {{stem = "tiny"}, "stem must be 'imagenet'"},
      {{memory_efficient = true}, "option memory_efficient = true is not supported (torchvision's gradient"},
      {{growth = 3}, "unknown option 'growth'; did you mean growth_rate?"},
    }
    for _, c in ipairs(cases) do
      local ok, msg = pcall(lm.models.densenet, c[1])
      truthy(not ok and msg:find("lm.models.densenet: " .. c[2], 1, true), tostring(msg))
      truthy(msg:find("^[^:]*models_vgg_densenet_spec%.lua:%d+: "), "at the caller's line: " .. msg)
    end
    local ok, msg = pcall(lm.models.densenet161, {growth_rate = 32})
    truthy(not ok and msg:find("lm.models.densenet161: option growth_rate = 32 is not supported "
      .. "(lm.models.densenet161's growth_rate is 48; lm.models.densenet{...} takes any)", 1, true), tostring(msg))
    ok, msg = pcall(lm.models.densenet121, {block_config = {6, 12, 24}})
    truthy(not ok and msg:find("densenet121's block_config is {6, 12, 24, 16}", 1, true), tostring(msg))
    local net = lm.models.densenet{growth_rate = 4, block_config = {1}, num_init_features = 8, memory_efficient = false}
    eq(net.growth_rate, 4, "memory_efficient = false (torchvision's default) is accepted")
    ok, msg = pcall(lm.models.DenseLayer, 8, 4)
    truthy(not ok and msg:find("lm.models.DenseLayer: bn_size must be a positive integer, got nil", 1, true),
      tostring(msg))
    ok, msg = pcall(lm.models.DenseBlock, 2, 8, 4, 2, 1)
    truthy(not ok and msg:find("lm.models.DenseBlock: drop_rate (the drop probability) must be in [0, 1), got 1",
      1, true), tostring(msg))
  end)
end)
