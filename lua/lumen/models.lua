-- The reference networks of the method (docs/design.md), shared by experiments,
-- benchmarks and tests.
local lm = require 'lumen'
local nn = lm.nn
local checks = require 'lumen.nn.checks'

local models = {}

--- The paper's Net1: inputs -> 12 x [Linear(200), ELU, Dropout(dropout)] ->
--- Linear(10), Sigmoid. opts.inputs (784), opts.hidden (200), opts.layers
--- (12), opts.dropout (0.1: the paper's keep probability 0.9), opts.classes (10).
function models.net1(opts)
  opts = checks.opts(opts, "models.net1", {inputs = true, hidden = true, layers = true, dropout = true, classes = true})
  local layers, width = {}, opts.inputs or 784
  local hidden, dropout = opts.hidden or 200, opts.dropout or 0.1
  for _ = 1, opts.layers or 12 do
    layers[#layers + 1] = nn.Linear(width, hidden)
    layers[#layers + 1] = nn.ELU()
    layers[#layers + 1] = nn.Dropout(dropout)
    width = hidden
  end
  layers[#layers + 1] = nn.Linear(width, opts.classes or 10)
  layers[#layers + 1] = nn.Sigmoid()
  return nn.Sequential(table.unpack(layers))
end

--- The paper's all-convolutional Net2 for 3 x 32 x 32 images:
--- 2 x conv3x3(96), conv3x3(96, stride 2), 2 x conv3x3(192),
--- conv3x3(192, stride 2), conv1x1(192), global average pooling,
--- 3 x Linear(512), Linear(10), Sigmoid; ELU and Dropout(dropout) after every
--- hidden layer. opts.width scales the channel counts (1 is the paper's),
--- opts.dropout (0.2: keep probability 0.8).
function models.net2(opts)
  opts = checks.opts(opts, "models.net2", {width = true, dropout = true, classes = true})
  local scale, dropout = opts.width or 1, opts.dropout or 0.2
  local function channels(c) return math.max(1, math.floor(c * scale + 0.5)) end
  local c1, c2 = channels(96), channels(192)
  local layers = {}
  local function add(m, activate)
    layers[#layers + 1] = m
    if activate then
      layers[#layers + 1] = nn.ELU()
      layers[#layers + 1] = nn.Dropout(dropout)
    end
  end
  local function conv(cin, cout, k, stride)
    return nn.Conv2d(cin, cout, k, {stride = stride or 1, padding = k == 3 and 1 or 0})
  end
  add(conv(3, c1, 3), true)
  add(conv(c1, c1, 3), true)
  add(conv(c1, c1, 3, 2), true)
  add(conv(c1, c2, 3), true)
  add(conv(c2, c2, 3), true)
  add(conv(c2, c2, 3, 2), true)
  add(conv(c2, c2, 1), true)
  add(nn.GlobalAvgPool2d())
  add(nn.Linear(c2, 512), true)
  add(nn.Linear(512, 512), true)
  add(nn.Linear(512, 512), true)
  add(nn.Linear(512, opts.classes or 10))
  add(nn.Sigmoid())
  return nn.Sequential(table.unpack(layers))
end

--- Number of parameters of a module.
function models.count_parameters(model)
  if type(model) ~= "table" or type(model.parameters) ~= "function" then -- any table with parameters()
    error("lm.models.count_parameters: model must be a module (an lm.nn layer or model), got "
      .. checks.shown(model), 2)
  end
  local n = 0
  for _, p in ipairs(model:parameters()) do n = n + p:numel() end
  return n
end

-- torchvision's convolution of its mobile networks and EfficientNets:
-- padding (k - 1) / 2, Kaiming normal fan-out for ReLU (torchvision's
-- kaiming_normal_(mode="fan_out")), the bias (when asked for) 0.
function models._conv(cin, cout, k, stride, groups, bias)
  local c = lm.nn.Conv2d(cin, cout, k, {stride = stride or 1, padding = (k - 1) // 2, groups = groups or 1,
    bias = bias or false})
  lm.nn.init.kaiming_normal_(c.weight, {mode = "fan_out", nonlinearity = "relu"})
  if bias then lm.nn.init.zeros_(c.bias) end
  return c
end

-- The number of classes of a torchvision-style constructor's options:
-- num_classes, or classes (its other spelling), 1000 by default (ImageNet's,
-- as torchvision's); giving both, different, is an error at `level` (the
-- constructor's caller, counted from this function).
function models._classes(opts, name, level)
  if opts.num_classes ~= nil and opts.classes ~= nil and opts.num_classes ~= opts.classes then
    error(string.format("%s: num_classes (%s) and classes (%s) are two spellings of one option; give one",
      name, tostring(opts.num_classes), tostring(opts.classes)), level)
  end
  return opts.num_classes or opts.classes or 1000
end

-- The names of a container's children `child1`, `child2`, ... while they
-- last, under `path` (its name in the network): "features.denseblock1", ...
function models._numbered_children(container, child, path)
  local names = {}
  while rawget(container, child .. (#names + 1)) do names[#names + 1] = path .. "." .. child .. (#names + 1) end
  return names
end

-- The layers a network's map records by default (lm.introspect.Recorder's
-- select; experiments/introspect_pytorch.lua's --blocks): each network of
-- lm.models has block_names(). For the networks whose `features` is a
-- Sequential of a stem and then stages or blocks: every child but the stem.
function models._feature_blocks(net)
  local names = {}
  for i = 1, #net.features - 1 do names[#names + 1] = "features." .. i end
  return names
end

require('lumen.models_resnet')(models)
require('lumen.models_vit')(models)
require('lumen.models_mobilenet')(models)
require('lumen.models_mobilenet_v3')(models)
require('lumen.models_efficientnet')(models)
require('lumen.models_vgg')(models)
require('lumen.models_densenet')(models)
require('lumen.models_convnext')(models)
require('lumen.models_regnet')(models)

return models
