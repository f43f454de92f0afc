-- torchvision's networks (MobileNetV2, MobileNetV3 small and large, EfficientNet B and V2, VGG,
-- DenseNet, ConvNeXt, RegNet) against lm.models
-- (tests/torch/torchvision_models_reference.py): state_dict names and shapes
-- exactly torchvision's; a torch model (batch norms randomised) loads strictly
-- and gives torch's evaluation output and parameter gradients, its
-- training-mode output and running statistics; Lumen's file loads into
-- torchvision's with strict=True.
-- LUMEN_SPEC_VERBOSE=1 prints the worst error of each comparison.
local lm = require 'lumen'

local py = dofile("tests/helpers/python.lua")
if not py.can_import("torch, torchvision") then
  skip("/usr/bin/python3 cannot import torch and torchvision: Debian's python3-torchvision is not installed", true)
end

local SCRIPT = "tests/torch/torchvision_models_reference.py"
local dir = py.write_reference(SCRIPT)
local verbose = os.getenv("LUMEN_SPEC_VERBOSE")
local TOL = 1e-5

-- the Lumen twin of each reference case
local CASES = {
  {name = "mobilenet_v2", size = 32,
    make = function() return lm.models.mobilenet_v2{num_classes = 10, width_mult = 0.5} end,
    default = function() return lm.models.mobilenet_v2() end},
  {name = "mobilenet_v2_w075_cifar", size = 16,
    make = function() return lm.models.mobilenet_v2{num_classes = 7, width_mult = 0.75, stem = "cifar"} end},
  {name = "mobilenet_v3_small", size = 32,
    make = function() return lm.models.mobilenet_v3_small{num_classes = 10, width_mult = 0.75} end,
    default = function() return lm.models.mobilenet_v3_small() end},
  {name = "mobilenet_v3_large_cifar", size = 16,
    make = function() return lm.models.mobilenet_v3_large{num_classes = 5, width_mult = 0.5, stem = "cifar"} end,
    default = function() return lm.models.mobilenet_v3_large() end},
  {name = "resnet50", size = 32,
    make = function() return lm.models.resnet50{num_classes = 10, width = 8, blocks = {2, 1, 1, 1}} end,
    default = function() return lm.models.resnet50() end},
  {name = "resnext50_32x4d_dilated_cifar", size = 16,
    make = function()
      return lm.models.resnet50{num_classes = 6, width = 8, blocks = {1, 1, 2, 1}, groups = 4, width_per_group = 16,
        replace_stride_with_dilation = {false, true, true}, stem = "cifar"}
    end,
    default = function() return lm.models.resnext50_32x4d() end},
  {name = "wide_resnet50_2", size = 32,
    make = function()
      return lm.models.resnet50{num_classes = 10, width = 8, blocks = {1, 1, 1, 1}, width_per_group = 128}
    end,
    default = function() return lm.models.wide_resnet50_2() end},
  -- the reference builds torchvision's EfficientNet at Lumen's width_mult and depth_mult
  {name = "efficientnet_b0", size = 32,
    make = function() return lm.models.efficientnet_b0{num_classes = 10, width_mult = 0.25, depth_mult = 0.5} end,
    default = function() return lm.models.efficientnet_b0() end},
  {name = "efficientnet_b5_cifar", size = 16,
    make = function()
      return lm.models.efficientnet_b5{num_classes = 5, width_mult = 0.25, depth_mult = 0.3, stem = "cifar"}
    end},
  {name = "efficientnet_v2_s", size = 32,
    make = function() return lm.models.efficientnet_v2_s{num_classes = 10, width_mult = 0.25, depth_mult = 0.25} end,
    default = function() return lm.models.efficientnet_v2_s() end},
  -- VGG needs 32 px (five poolings); at 32 the adaptive pooling spreads 1x1 to 7x7, in training (twice as
  -- wide) 2x2; at 48, 1x1 and 3x3. VGG's key lists: see "every VGG" below
  {name = "vgg11", size = 32, make = function() return lm.models.vgg11{num_classes = 10, width = 4} end},
  {name = "vgg16_bn", size = 48, make = function() return lm.models.vgg16_bn{num_classes = 7, width = 4} end},
  {name = "densenet", size = 32,
    make = function()
      return lm.models.densenet{growth_rate = 8, block_config = {2, 2}, num_init_features = 16, num_classes = 10}
    end,
    default = function() return lm.models.densenet() end},
  {name = "densenet_cifar", size = 16,
    make = function()
      return lm.models.densenet{growth_rate = 6, block_config = {1, 2, 1}, num_init_features = 8, bn_size = 2,
        drop_rate = 0.2, num_classes = 5, stem = "cifar"}
    end},
  {name = "convnext", size = 32,
    make = function()
      return lm.models.convnext{block_setting = {{8, 1}, {16, 1}}, num_classes = 10, stochastic_depth_prob = 0.1}
    end,
    default = function() return lm.models.convnext_tiny() end},
  {name = "convnext_cifar", size = 16,
    make = function() return lm.models.convnext{block_setting = {{8, 1}, {16, 1}, {24, 1}}, num_classes = 7,
      stem = "cifar"} end},
  {name = "regnet_y", size = 32,
    make = function() return lm.models.regnet{depth = 3, w_0 = 8, w_a = 8.0, w_m = 2.0, group_width = 8,
      se_ratio = 0.25, stem_width = 8, num_classes = 10} end,
    default = function() return lm.models.regnet_y_400mf() end},
  {name = "regnet_x_cifar", size = 16,
    make = function() return lm.models.regnet{depth = 4, w_0 = 8, w_a = 4.0, w_m = 2.0, group_width = 4,
      bottleneck_multiplier = 0.5, stem_width = 8, num_classes = 5, stem = "cifar"} end,
    default = function() return lm.models.regnet_x_400mf() end},
}

-- make() without drawing its weights (lm.nn.init's fills skipped): the key
-- lists need names and shapes only, and drawing VGG's 120M classifier
-- weights takes seconds
local function undrawn(make)
  local init, saved = lm.nn.init, {}
  for _, name in ipairs{"normal_", "uniform_", "kaiming_normal_", "kaiming_uniform_", "xavier_uniform_", "zeros_"} do
    saved[name], init[name] = init[name], function(t) return t end
  end
  local ok, net = pcall(make)
  for name, f in pairs(saved) do init[name] = f end
  if not ok then error(net, 0) end
  return net
end

-- norms and layer scales away from their initialisation, as the
-- reference's randomise (ConvNeXt's layer scale 1e-6 would hide each block)
local function randomise(net)
  lm.no_grad(function()
    for _, m in ipairs(net:modules()) do
      local class = getmetatable(m)
      if class == lm.nn.BatchNorm2d or class == lm.nn.LayerNorm or class == lm.nn.LayerNorm2d then
        m.weight:uniform_(0.5, 1.5)
        m.bias:normal_(0, 0.1)
      elseif class == lm.models.CNBlock then
        m.layer_scale:uniform_(0.5, 1.5)
      end
    end
  end)
end

-- Lumen's files of a case for the torch check: its state (norms
-- randomised, running statistics of its own) and an evaluation input and output
local function write_lumen(case)
  lm.manual_seed(9)
  local net = case.make()
  randomise(net)
  net:train()
  lm.no_grad(function() net(lm.randn(4, 3, case.size, case.size)) end)
  net:save(string.format("%s/%s_lumen.safetensors", dir, case.name))
  net:eval()
  local x = lm.randn(2, 3, case.size, case.size)
  lm.save(string.format("%s/%s_lumen_io.safetensors", dir, case.name), {x = x, y = net(x)})
end

-- Every case's files go to torch in one run (each start of python imports
-- torch and torchvision, about 2 s of CPU): the first test that asks writes
-- them all; each test reads its case's line of the check
local checked, check_output -- case name -> its line
local function torch_check(name)
  if not checked then
    checked = {}
    local names = {}
    for _, case in ipairs(CASES) do
      local ok, err = pcall(write_lumen, case)
      if ok then names[#names + 1] = case.name else checked[case.name] = "Lumen's files: " .. tostring(err) end
    end
    local _
    _, check_output = py.run(SCRIPT, string.format("check '%s' %s", dir, table.concat(names, " ")))
    if verbose then io.stderr:write("    Lumen's files in torch:\n", (check_output:gsub("[^\n]+", "      %0"))) end
    for line in check_output:gmatch("[^\n]+") do
      local case_name, result = line:match("^(%S+): (.*)$")
      if case_name and not checked[case_name] then checked[case_name] = result end
    end
  end
  return checked[name] or "no result; the check printed:\n" .. check_output
end

local function key_list(net)
  local lines = {}
  for _, list in ipairs{net:named_parameters(), net:named_buffers()} do
    for _, pair in ipairs(list) do lines[#lines + 1] = pair[1] .. " " .. pair[2]:shape_string() end
  end
  table.sort(lines)
  return lines
end

local function torch_keys(name)
  local lines = {}
  for line in io.lines(string.format("%s/%s_keys.txt", dir, name)) do lines[#lines + 1] = line end
  table.sort(lines)
  return lines
end

describe("lm.models against torchvision", function()
  for _, case in ipairs(CASES) do
    if case.default then
      it(case.name .. ": torchvision's state_dict names and shapes at the default width, buffers included", function()
        -- names and shapes only (the compared cases run the same code on the sanitizers): the
        -- full-size models would take minutes to initialise under ASan
        if os.getenv("LUMEN_SANITIZED") then skip("full-size models: the release build lists their keys") end
        local ours, theirs = key_list(undrawn(case.default)), torch_keys(case.name)
        eq(#ours, #theirs, "number of entries")
        for i = 1, #ours do eq(ours[i], theirs[i]) end
      end)
    end

    it(case.name .. ": a torch model loads strictly and gives torch's outputs, gradients and "
        .. "running statistics", function()
      local net = case.make()
      net:load(string.format("%s/%s.safetensors", dir, case.name))
      local ref = lm.load(string.format("%s/%s_io.safetensors", dir, case.name))
      truthy(ref.margin:item() >= 2e-6, "the input keeps every activation 2e-6 from its kinks")
      local function close(a, b, what)
        eq(a:shape_string(), b:shape_string(), what .. " shape")
        local err = rel_error(a, b)
        truthy(err <= TOL, string.format("%s: %s relative error %.3g", case.name, what, err))
        return err
      end
      -- within 1e-5 of torch's float32 value, or about as close to the
      -- float64 value as torch's float32 one (within 4x: training-mode batch
      -- norms over a few values per channel amplify rounding; Lumen rounds
      -- in another order, batch statistics in double; a wrong rule is off by
      -- orders of magnitude)
      local function near(a, name, want32, want64, torch_err)
        local vs32, vs64 = rel_error(a, want32), rel_error(a, want64)
        truthy(vs32 <= TOL or vs64 <= 4 * torch_err, string.format(
          "%s: relative error %.3g from torch's float32, %.3g from float64 (torch's float32: %.3g)",
          name, vs32, vs64, torch_err))
        return vs32
      end
      -- evaluation: output and parameter gradients (see the reference for why
      -- gradients are compared here and not in training mode)
      net:eval()
      net:zero_grad()
      local y_eval = net(ref.x)
      local eval_err = close(y_eval, ref.y_eval, "evaluation output")
      ;(y_eval * ref.gy):sum():backward()
      local worst = 0
      for _, pair in ipairs(net:named_parameters()) do
        local name = pair[1]
        worst = math.max(worst, near(pair[2].grad, "grad." .. name, ref["grad." .. name], ref["grad64." .. name],
          ref["err32." .. name]:item()))
      end
      -- training: the output (batch statistics) and the running statistics
      net:train()
      for _, m in ipairs(net:modules()) do
        -- torch's reference ran without dropout and stochastic depth (by class:
        -- _is_plain knows only the classes a fusion covers, not StochasticDepth)
        local class = getmetatable(m)
        if class == lm.nn.Dropout or class == lm.nn.StochasticDepth then m.p = 0 end
        if class == lm.models.DenseLayer then m.drop_rate = 0 end
      end
      local y = lm.no_grad(function() return net(ref.x_train) end)
      local train_err = near(y, "training output", ref.y_train, ref.y_train64, ref["err32.y_train"]:item())
      -- running statistics: as the outputs; a running mean after a
      -- convolution of normalised inputs is ~1e-9, rounding noise alone, so
      -- means are judged against their channels' spread
      for _, pair in ipairs(net:named_buffers()) do
        local name, want = pair[1], ref["after." .. pair[1]]
        local stem = name:match("^(.*)%.running_mean$")
        if stem then
          local spread = math.sqrt(ref["after." .. stem .. ".running_var"]:max():item())
          local err = (pair[2] - want):abs():max():item() / spread
          truthy(err <= TOL, string.format("%s: %s off by %.3g of its channels' spread", case.name, name, err))
        elseif ref["after64." .. name] then
          near(pair[2], name, want, ref["after64." .. name], ref["err32.after." .. name]:item())
        else
          eq(pair[2]:item(), want:item(), name)
        end
      end
      if verbose then
        io.stderr:write(string.format("    %s: evaluation output error %.2g, worst gradient error %.2g, training "
          .. "output error %.2g\n", case.name, eval_err, worst, train_err))
      end
    end)

    it(case.name .. ": Lumen's file loads into torchvision's with strict=True and gives Lumen's outputs", function()
      local result = torch_check(case.name)
      truthy(result:match("^relative error %S+$"), "torch: " .. result)
    end)
  end

  it("every VGG: torchvision's state_dict names (which do not depend on the width)", function()
    local function names(lines)
      local out = {}
      for i, line in ipairs(lines) do out[i] = line:match("^%S+") end
      return out
    end
    for _, arch in ipairs{"vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"} do
      same(names(key_list(lm.models[arch]{width = 2})), names(torch_keys(arch)), 0, arch)
    end
  end)

  it("vgg16_bn and every DenseNet at the default size: torchvision's state_dict names and shapes", function()
    -- (a VGG at the default size is 0.5 GB to allocate: one of them)
    if os.getenv("LUMEN_SANITIZED") then skip("full-size models: the release build lists their keys") end
    for _, arch in ipairs{"vgg16_bn", "densenet121", "densenet161", "densenet169", "densenet201"} do
      same(key_list(undrawn(lm.models[arch])), torch_keys(arch), 0, arch)
    end
  end)

  it("the larger ResNets and EfficientNets at the default size: torchvision's state_dict names and shapes",
    function()
      -- (their blocks per stage, groups and multipliers, which no compared case reaches; 0.8 G parameters
      -- in all, allocated one network at a time without drawing)
      if os.getenv("LUMEN_SANITIZED") then skip("full-size models: the release build lists their keys") end
      for _, arch in ipairs{"resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2",
          "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
          "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_m", "efficientnet_v2_l"} do
        same(key_list(undrawn(lm.models[arch])), torch_keys(arch), 0, arch)
        collectgarbage()
      end
    end)

  it("convnext_tiny, _small, _base, _large: torchvision's block settings and stochastic depth", function()
    local f = assert(io.open(dir .. "/convnext_configs.json"))
    local theirs = require('lumen.json').decode(f:read("a"))
    f:close()
    local n = 0
    for arch, want in pairs(theirs) do
      local ours = lm.models._convnext_configs[arch]
      truthy(ours ~= nil and lm.models[arch] ~= nil, "lm.models." .. arch)
      eq(ours.stochastic_depth_prob, want.stochastic_depth_prob, arch .. " stochastic_depth_prob")
      local stages = ours.block_setting
      eq(#stages, #want.block_setting, arch .. " stages")
      for i, s in ipairs(stages) do -- torchvision's CNBlockConfig(channels, next stage's or None, layers)
        same({s[1], stages[i + 1] and stages[i + 1][1] or 0, s[2]}, want.block_setting[i], 0, arch .. " stage " .. i)
      end
      n = n + 1
    end
    eq(n, 4, "constructors")
  end)

  it("regnet_y_* and regnet_x_*: torchvision's stages, group widths and squeeze and excitation", function()
    local f = assert(io.open(dir .. "/regnet_configs.json"))
    local configs = require('lumen.json').decode(f:read("a"))
    f:close()
    local n = 0
    for arch, want in pairs(configs.presets) do
      local preset = lm.models._regnet_presets[arch]
      truthy(preset ~= nil and lm.models[arch] ~= nil, "lm.models." .. arch)
      local depths, widths, groups, multipliers, strides = {}, {}, {}, {}, {}
      for i, s in ipairs(lm.models._regnet_stages(preset)) do
        depths[i], widths[i], groups[i] = s.depth, s.width, s.group_width
        multipliers[i], strides[i] = preset.bottleneck_multiplier, 2
      end
      same({depths, widths, groups, multipliers, strides, preset.se_ratio or 0}, {want.depths, want.widths,
        want.group_widths, want.bottleneck_multipliers, want.strides, want.se_ratio}, 0, arch)
      n = n + 1
    end
    eq(n, 15, "constructors")
    -- widths torch rounds in float32 (float64 would give 456, not 464)
    local want, depths, widths, groups = configs.float32, {}, {}, {}
    for i, s in ipairs(lm.models._regnet_stages(want.params)) do
      depths[i], widths[i], groups[i] = s.depth, s.width, s.group_width
    end
    same({depths, widths, groups}, {want.depths, want.widths, want.group_widths}, 0, "float32 widths")
  end)
end)

describe("lm.models.mobilenet_v2 without torch", function()
  it("torchvision's channel rounding, blocks, residuals and initialisation", function()
    local d = lm.models._make_divisible
    same({d(32 * 0.5), d(16 * 0.5), d(24 * 0.75), d(1280), d(32 * 0.35), d(320 * 1.4)}, {16, 8, 24, 1280, 16, 448})
    local net = lm.models.mobilenet_v2{num_classes = 3, width_mult = 0.25, stem = "cifar"}
    eq(#net.features, 19, "stem, 17 inverted residual blocks, last 1x1 convolution")
    eq(net.features[1][1].stride, 1, "the cifar stem's first convolution has stride 1")
    eq(lm.models.mobilenet_v2().features[1][1].stride, 2, "the imagenet stem's has stride 2")
    local residual = 0
    for i = 2, 18 do if net.features[i].residual then residual = residual + 1 end end
    -- 10 at full width; at 0.25 the first block too (8 channels in and out)
    eq(residual, 11, "blocks with the input added: stride 1 and equal channels")
    eq(net.classifier[2].bias:abs():max():item(), 0, "classifier bias 0")
    local std = net.classifier[2].weight:std():item()
    truthy(std > 0.007 and std < 0.013, "classifier weight N(0, 0.01): std " .. std)
    eq(net(lm.randn(2, 3, 32, 32)):shape_string(), "2x3")
  end)

  it("mobilenet_v3: torchvision's blocks, squeeze-and-excitation, batch norm settings and classifier", function()
    local small = lm.models.mobilenet_v3_small{num_classes = 4, width_mult = 0.5}
    eq(#small.features, 13, "stem, 11 blocks, last 1x1 convolution")
    local se, residual = 0, 0
    for i = 2, 12 do
      local b = small.features[i]
      if b.residual then residual = residual + 1 end
      for _, m in ipairs(b.block) do if rawget(m, "fc1") then se = se + 1 end end -- (SqueezeExcitation's children)
    end
    eq(se, 9, "blocks with squeeze and excitation")
    eq(residual, 7, "blocks with the input added (6 at full width; at 0.5 the 40 -> 48 block keeps 24 channels)")
    local bn = small.features[1][2]
    eq(bn.eps, 1e-3, "torchvision's batch norm eps")
    eq(bn.momentum, 0.01, "torchvision's batch norm momentum")
    eq(small.classifier[1].weight:shape_string(), "512x288", "6 x the last block's 48 channels -> 1024 x 0.5")
    eq(small(lm.randn(2, 3, 32, 32)):shape_string(), "2x4")
    eq(#lm.models.mobilenet_v3_large().features, 17, "large: stem, 15 blocks, last convolution")
    local ok, msg = pcall(lm.models.mobilenet_v3_large, {width_mult = -1})
    truthy(not ok and msg:find("lm.models.mobilenet_v3_large: width_mult must be a positive number, got -1", 1, true),
      tostring(msg))
  end)

  it("bad options are named", function()
    local cases = {
      {{width_mult = 0}, "width_mult must be a positive number, got 0"},
      {{num_classes = 2.5}, "num_classes must be a positive integer, got 2.5"},
      {{dropout = 1}, "dropout must be a number in [0, 1), got 1"},
      {{stem = "tiny"}, "stem must be 'imagenet'"},
      {{num_clases = 3}, "num_clases"},
    }
    for _, c in ipairs(cases) do
      local ok, msg = pcall(lm.models.mobilenet_v2, c[1])
      truthy(not ok and msg:find(c[2], 1, true), tostring(msg))
      truthy(msg:find("lm.models.mobilenet_v2", 1, true), tostring(msg))
    end
  end)
end)

describe("lm.models.efficientnet without torch", function()
  local function stage_blocks(net) -- features: stem, the stages, the last 1x1 convolution
    local counts = {}
    for i = 2, #net.features - 1 do counts[#counts + 1] = #net.features[i] end
    return counts
  end
  local SMALL = {width_mult = 0.25, depth_mult = 0.25, num_classes = 10}

  it("torchvision's depths, widths, batch norms, dropout and last convolution per variant", function()
    -- blocks per stage: ceil(blocks x depth_mult); width_mult 0.25 keeps these cheap
    same(stage_blocks(lm.models.efficientnet_b0{width_mult = 0.25}), {1, 2, 2, 3, 3, 4, 1})
    same(stage_blocks(lm.models.efficientnet_b7{width_mult = 0.25}), {4, 7, 7, 10, 10, 13, 4})
    same(stage_blocks(lm.models.efficientnet_v2_s{width_mult = 0.25}), {2, 4, 4, 6, 9, 15})
    -- B2's width 1.1: the stem's 32 x 1.1 rounds to 32, the last stage's 320 x 1.1 to 352, the last conv is 4x
    local b2 = lm.models.efficientnet_b2{depth_mult = 0.25}
    eq(b2.features[1][1].weight:shape_string(), "32x3x3x3")
    eq(b2.classifier[2].weight:shape_string(), "1000x1408")
    eq(lm.models.efficientnet_v2_l(SMALL).classifier[2].weight:shape_string(), "10x1280", "V2: 1280 at any width")
    local dropout = {efficientnet_b0 = 0.2, efficientnet_b1 = 0.2, efficientnet_b2 = 0.3, efficientnet_b3 = 0.3,
      efficientnet_b4 = 0.4, efficientnet_b5 = 0.4, efficientnet_b6 = 0.5, efficientnet_b7 = 0.5,
      efficientnet_v2_s = 0.2, efficientnet_v2_m = 0.3, efficientnet_v2_l = 0.4}
    -- batch norms: B0-B4 torch's defaults, B5-B7 eps 1e-3 and momentum 0.01, V2 eps 1e-3
    local eps = {efficientnet_b4 = 1e-5, efficientnet_b5 = 1e-3, efficientnet_b7 = 1e-3, efficientnet_v2_m = 1e-3}
    local momentum = {efficientnet_b4 = 0.1, efficientnet_b5 = 0.01, efficientnet_b7 = 0.01, efficientnet_v2_m = 0.1}
    for arch, p in pairs(dropout) do
      local net = lm.models[arch](SMALL)
      eq(net.classifier[1].p, p, arch .. " dropout")
      if eps[arch] then
        local bn = net.features[3][1].block[1][2]
        eq(bn.eps, eps[arch], arch .. " batch norm eps")
        eq(bn.momentum, momentum[arch], arch .. " batch norm momentum")
      end
    end
    eq(lm.models.efficientnet_b0{dropout = 0.1, stochastic_depth_prob = 0}.classifier[1].p, 0.1)
    local cifar = lm.models.efficientnet_b1{width_mult = 0.25, depth_mult = 0.25, stem = "cifar", num_classes = 4}
    eq(cifar.features[1][1].stride, 1, "the cifar stem's first convolution has stride 1")
    eq(lm.models.efficientnet_b1(SMALL).features[1][1].stride, 2, "the imagenet stem's has stride 2")
    eq(cifar(lm.randn(2, 3, 16, 16)):shape_string(), "2x4")
  end)

  it("MBConv and FusedMBConv: expansion, squeeze and excitation, residuals and stochastic depth", function()
    -- stages of 1, 1, 1, 2, 3, 4 blocks; channels 8, 16, 16, 32, 40, 64
    local net = lm.models.efficientnet_v2_s{width_mult = 0.25, depth_mult = 0.25, num_classes = 3}
    local fused1, fused4, mb = net.features[2][1], net.features[3][1], net.features[5]
    eq(getmetatable(fused1), lm.models.FusedMBConv)
    eq(#fused1.block, 1, "expansion 1: a single 3x3 convolution")
    eq(fused1.block[1][1].weight:shape_string(), "8x8x3x3")
    truthy(fused1.residual, "8 -> 8 at stride 1 adds its input")
    eq(#fused4.block, 2, "expansion 4: a 3x3 convolution, then a 1x1 projection")
    eq(fused4.block[1][1].weight:shape_string(), "32x8x3x3")
    eq(fused4.block[2][1].weight:shape_string(), "16x32x1x1")
    eq(#fused4.block[2], 2, "the projection has no activation")
    truthy(not fused4.residual, "stride 2")
    eq(getmetatable(mb[1]), lm.models.MBConv)
    local shapes = {}
    for i, m in ipairs(mb[2].block) do shapes[i] = (m[1] or m.fc1).weight:shape_string() end
    -- 32 in: expanded 4x to 128, depthwise, squeeze to 32 // 4 = 8, project
    same(shapes, {"128x32x1x1", "128x1x3x3", "8x128x1x1", "32x128x1x1"})
    local se = mb[2].block[3]
    eq(getmetatable(se), lm.models.SqueezeExcitation)
    eq(getmetatable(se.activation), lm.nn.SiLU)
    eq(getmetatable(se.scale_activation), lm.nn.Sigmoid)
    eq(getmetatable(mb[2].block[1][3]), lm.nn.SiLU)
    truthy(mb[2].residual and not mb[1].residual, "the second block of a stage adds its input")
    local v3_se = lm.models.mobilenet_v3_small{width_mult = 0.25}.features[2].block[2]
    eq(getmetatable(v3_se.activation), lm.nn.ReLU, "MobileNetV3 keeps its ReLU")
    eq(getmetatable(v3_se.scale_activation), lm.nn.Hardsigmoid, "and its Hardsigmoid")
    -- stochastic depth grows linearly with the block's index: 0.2 x i / 12
    local i = 0
    for s = 2, #net.features - 1 do
      for _, block in ipairs(net.features[s]) do
        eq(block.stochastic_depth.mode, "row")
        truthy(math.abs(block.stochastic_depth.p - 0.2 * i / 12) < 1e-15, "block " .. i .. " p " ..
          block.stochastic_depth.p)
        i = i + 1
      end
    end
    eq(i, 12)
    -- dropping every row in training drops the branch, not the input: a residual
    -- block returns its input, a block without residual is untouched by it
    net:train()
    local x = lm.randn(2, 32, 4, 4)
    mb[2].stochastic_depth.p = 1
    eq((mb[2](x) - x):abs():max():item(), 0, "residual block with its branch dropped")
    mb[2].stochastic_depth.p = 0
    truthy((mb[2](x) - x):abs():max():item() > 0.1, "residual block with its branch kept")
    mb[1].stochastic_depth.p = 1
    truthy(mb[1](lm.randn(2, 16, 8, 8)):abs():max():item() > 0.1, "no residual: no stochastic depth")
  end)

  it("torchvision's initialisation: convolutions Kaiming normal fan-out, the Linear U(+-1/sqrt(out))", function()
    lm.manual_seed(4)
    local net = lm.models.efficientnet_b0{width_mult = 0.25, depth_mult = 0.5, num_classes = 100}
    -- mean square over the expected variance 2 / (out x k x k), groups ignored as torch's fan-out does;
    -- apart for depthwise convolutions (groups > 1), whose fan-out would be wrong by the groups
    local sums = {depthwise = {0, 0}, dense = {0, 0}}
    for _, m in ipairs(net:modules()) do
      if getmetatable(m) == lm.nn.Conv2d then
        local w = m.weight
        local kind = m.groups > 1 and "depthwise" or "dense"
        local var = 2 / (w:size(1) * w:size(3) * w:size(4))
        sums[kind][1] = sums[kind][1] + (w * w):sum():item() / var
        sums[kind][2] = sums[kind][2] + w:numel()
        if m.bias then eq(m.bias:abs():max():item(), 0, "conv bias 0") end
      elseif getmetatable(m) == lm.nn.BatchNorm2d then
        eq((m.weight - 1):abs():max():item() + m.bias:abs():max():item(), 0, "batch norm 1, 0")
      end
    end
    for kind, s in pairs(sums) do
      local ratio = s[1] / s[2]
      truthy(s[2] > 10000 and ratio > 0.95 and ratio < 1.05, kind .. ": variance / 2 / fan_out " .. ratio
        .. " over " .. s[2])
    end
    local w, bound = net.classifier[2].weight, 1 / math.sqrt(100)
    eq(w:shape_string(), "100x320")
    truthy(w:abs():max():item() <= bound and w:abs():max():item() > 0.99 * bound, "U(-0.1, 0.1): max |w| "
      .. w:abs():max():item())
    local std = w:std():item()
    truthy(math.abs(std - bound / math.sqrt(3)) < 0.02 * bound, "U(-0.1, 0.1): std " .. std)
    eq(net.classifier[2].bias:abs():max():item(), 0, "classifier bias 0")
  end)

  it("bad options are named", function()
    local cases = {
      {{depth_mult = 0}, "depth_mult must be a positive number, got 0"},
      {{depth_mult = 1e300}, "depth_mult must be at most 100 (B7's is 3.1), got 1e+300"},
      {{stochastic_depth_prob = 1.5}, "stochastic_depth_prob must be a number in [0, 1], got 1.5"},
      {{stochastic_depth_prob = "0.2"}, "stochastic_depth_prob must be a number in [0, 1], got \"0.2\""},
      {{width_mult = -1}, "width_mult must be a positive number, got -1"},
      {{dropout = 1}, "dropout must be a number in [0, 1), got 1"},
      {{num_classes = 0}, "num_classes must be a positive integer, got 0"},
      {{stem = "tiny"}, "stem must be 'imagenet'"},
      {{depht_mult = 2}, "unknown option 'depht_mult'; did you mean depth_mult?"},
    }
    for _, arch in ipairs{"efficientnet_b3", "efficientnet_v2_m"} do
      for _, c in ipairs(cases) do
        local ok, msg = pcall(lm.models[arch], c[1])
        truthy(not ok and msg:find("lm.models." .. arch .. ": " .. c[2], 1, true), tostring(msg))
        truthy(msg:find("^[^:]*torch_torchvision_models_spec%.lua:%d+:"), "at the caller's line: " .. msg)
      end
    end
  end)
end)

describe("lm.models.convnext without torch", function()
  local function blocks(net)
    local list = {}
    for _, m in ipairs(net:modules()) do if getmetatable(m) == lm.models.CNBlock then list[#list + 1] = m end end
    return list
  end

  it("torchvision's stages, downsampling, norms, stems and stochastic depth", function()
    local net = lm.models.convnext{block_setting = {{8, 2}, {16, 3}}, num_classes = 5, stochastic_depth_prob = 0.5}
    eq(#net.features, 4, "stem, stage, downsampling, stage")
    local stem, down = net.features[1], net.features[3]
    eq(stem[1].weight:shape_string(), "8x3x4x4", "imagenet stem: a 4x4 patchify convolution")
    eq(stem[1].stride, 4)
    eq(getmetatable(stem[2]), lm.nn.LayerNorm2d)
    eq(getmetatable(down[1]), lm.nn.LayerNorm2d)
    eq(down[2].weight:shape_string(), "16x8x2x2", "downsampling: 2x2 stride 2")
    eq(down[2].stride, 2)
    eq(getmetatable(net.classifier[1]), lm.nn.LayerNorm2d)
    eq(net.classifier[3].weight:shape_string(), "5x16")
    local p, eps = {}, {stem[2].eps, down[1].eps, net.classifier[1].eps}
    for _, b in ipairs(blocks(net)) do
      p[#p + 1] = b.stochastic_depth.p
      eq(b.stochastic_depth.mode, "row")
      eps[#eps + 1] = b.block[3].eps
      eq(b.block[1].groups, b.dim, "a depthwise 7x7 convolution")
      eq(b.block[4].weight:shape_string(), (4 * b.dim) .. "x" .. b.dim, "MLP 4x wide")
    end
    same(p, {0, 0.125, 0.25, 0.375, 0.5}, 1e-12, "stochastic depth rising linearly over all blocks")
    same(eps, {1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6}, 0, "every layer norm's eps 1e-6")
    eq(net(lm.randn(2, 3, 32, 32)):shape_string(), "2x5")
    net:train()
    eq(net(lm.randn(2, 3, 32, 32)):shape_string(), "2x5", "training, with stochastic depth")
    local cifar = lm.models.convnext{block_setting = {{8, 1}, {16, 1}}, stem = "cifar", in_channels = 1}
    eq(cifar.features[1][1].weight:shape_string(), "8x1x2x2", "cifar stem: a 2x2 stride-2 patchify convolution")
    eq(cifar.features[1][1].stride, 2)
    eq(cifar.features(lm.randn(1, 1, 32, 32)):shape_string(), "1x16x8x8", "32x32 -> 16x16 -> 8x8")
    eq(lm.models.convnext{block_setting = {{8, 1}}}.features[2][1].stochastic_depth.p, 0,
      "one block: stochastic depth 0 (torchvision divides by zero)")
  end)

  it("torchvision's initialisation: truncated normal std 0.02, zero biases, layer scale, unit norms", function()
    lm.manual_seed(7)
    local net = lm.models.convnext{block_setting = {{64, 1}, {128, 1}}, layer_scale = 0.25}
    local weights = {}
    for _, m in ipairs(net:modules()) do
      local class = getmetatable(m)
      if class == lm.nn.Conv2d or class == lm.nn.Linear then
        weights[#weights + 1] = m.weight:detach():flatten()
        eq(m.bias:abs():max():item(), 0, "bias 0")
      elseif class == lm.nn.LayerNorm or class == lm.nn.LayerNorm2d then
        eq((m.weight - 1):abs():max():item() + m.bias:abs():max():item(), 0, "norm weight 1, bias 0")
      end
    end
    local w = lm.cat(weights, 1)
    local n = w:numel()
    truthy(n > 300000, "weights: " .. n)
    truthy(math.abs(w:mean():item()) < 4 * 0.02 / math.sqrt(n), "mean 0 within 4 standard errors")
    truthy(math.abs(w:std():item() / 0.02 - 1) < 0.01, "std 0.02: " .. w:std():item())
    local beyond = (w:abs() - 0.04):gt(0):float():mean():item() -- a normal's mass beyond 2 std: 0.0455
    truthy(math.abs(beyond - 0.0455) < 4 * math.sqrt(0.0455 * 0.9545 / n), "beyond 2 std: " .. beyond)
    for _, b in ipairs(blocks(net)) do
      eq(b.layer_scale:shape_string(), b.dim .. "x1x1")
      eq((b.layer_scale - 0.25):abs():max():item(), 0, "layer_scale option")
    end
    local default = blocks(lm.models.convnext{block_setting = {{8, 1}, {16, 1}}})[1].layer_scale
    eq(default:max():item(), lm.tensor{1e-6}:item(), "layer scale 1e-6 by default")
    -- layer scale 0: each block is its residual alone
    local zero = lm.models.convnext{block_setting = {{8, 1}, {16, 1}}, layer_scale = 0}
    local x = lm.randn(2, 8, 5, 5)
    eq((blocks(zero)[1](x) - x):abs():max():item(), 0, "the input added to the scaled block")
  end)

  it("bad options are named, at the caller's line", function()
    local cases = {
      {lm.models.convnext_tiny, {num_classes = 0}, "num_classes must be a positive integer, got 0"},
      {lm.models.convnext_tiny, {stochastic_depth_prob = 1.5}, "stochastic_depth_prob must be a number in [0, 1]"},
      {lm.models.convnext_small, {layer_scale = 0 / 0}, "layer_scale must be a finite number, got nan"},
      {lm.models.convnext_base, {stem = "tiny"}, "stem must be 'imagenet'"},
      {lm.models.convnext_large, {in_channels = 0}, "in_channels must be a positive integer"},
      {lm.models.convnext_tiny, {num_classes = 3, classes = 4}, "two spellings of one option"},
      {lm.models.convnext_tiny, {block_setting = {{8, 1}}}, "unknown option 'block_setting'"},
      {lm.models.convnext_tiny, {stocastic_depth_prob = 0}, "did you mean stochastic_depth_prob?"},
      {lm.models.convnext, nil, "block_setting must be a non-empty list of {channels, num_layers} pairs"},
      {lm.models.convnext, {block_setting = {{8, 1}, {16}}}, "block_setting must be a non-empty list"},
      {lm.models.convnext, {block_setting = {{8, 0}}}, "block_setting must be a non-empty list"},
    }
    for _, c in ipairs(cases) do
      local ok, msg = pcall(c[1], c[2])
      truthy(not ok and msg:find(c[3], 1, true), tostring(msg))
      truthy(msg:find("^[^:]*torch_torchvision_models_spec%.lua:%d+: lm%.models%.convnext"), tostring(msg))
    end
    local ok, msg = pcall(lm.models.CNBlock, 8, 1e-6, 1.5)
    truthy(not ok and msg:find("lm.models.CNBlock: stochastic depth (the drop probability) must be in [0, 1], got 1.5",
      1, true), tostring(msg))
  end)
end)

describe("lm.models.regnet without torch", function()
  local function blocks(net)
    local list = {}
    for _, m in ipairs(net:modules()) do
      if getmetatable(m) == lm.models.ResBottleneckBlock then list[#list + 1] = m end
    end
    return list
  end

  it("torchvision's stem, stages, projections, groups and squeeze and excitation", function()
    local net = lm.models.regnet{depth = 4, w_0 = 8, w_a = 4.0, w_m = 2.0, group_width = 4, bottleneck_multiplier = 0.5,
      se_ratio = 0.25, stem_width = 8, num_classes = 3}
    eq(net.stem[1].stride, 2, "imagenet stem: a 3x3 stride-2 convolution")
    eq(#net.stem, 3, "convolution, batch norm, ReLU")
    local b = blocks(net)
    eq(#b, 4, "blocks")
    eq(net.trunk_output:size(), 2, "stages: widths 8, 16, 16, 16 make two")
    truthy(net.trunk_output["block2"]["block2-2"] == b[4], "names block<stage>-<i>")
    local proj, strides = {}, {}
    for i, block in ipairs(b) do proj[i], strides[i] = rawget(block, "proj") ~= nil, block.stride end
    same(proj, {true, true, false, false}, 0, "projections where the shape changes")
    same(strides, {2, 2, 1, 1}, 0, "each stage strides 2 in its first block")
    local f = b[4].f
    eq(f.b[1].groups, 2, "16 x 0.5 = 8 bottleneck channels in groups of 4")
    eq(f.se.fc1.weight:shape_string(), "4x8x1x1", "squeeze to round(0.25 x 16) channels")
    eq(getmetatable(f.se.scale_activation), lm.nn.Sigmoid, "torchvision's SE: sigmoid")
    eq(net(lm.randn(2, 3, 32, 32)):shape_string(), "2x3")
    local x = lm.models.regnet{depth = 2, w_0 = 8, w_a = 0, w_m = 2, group_width = 8, stem = "cifar", in_channels = 1}
    eq(x.stem[1].stride, 1, "cifar stem: stride 1")
    eq(x.stem[1].weight:shape_string(), "32x1x3x3", "stem_width 32 by default; in_channels")
    eq(rawget(blocks(x)[1].f, "se"), nil, "no se_ratio: no squeeze and excitation")
  end)

  it("torchvision's initialisation: N(0, 2 / fan out) convolutions, fc N(0, 0.01), SE biases torch's default",
      function()
    lm.manual_seed(3)
    local net = lm.models.regnet_y_400mf()
    local scaled, biases = {}, {}
    for _, m in ipairs(net:modules()) do
      local class = getmetatable(m)
      if class == lm.nn.Conv2d then
        local k = m.weight:size(3)
        scaled[#scaled + 1] = m.weight:detach():flatten() / math.sqrt(2 / (k * k * m.outputs))
        if m.bias then biases[#biases + 1] = m.bias:detach() * math.sqrt(m.inputs) end
      elseif class == lm.nn.BatchNorm2d then
        eq((m.weight - 1):abs():max():item() + m.bias:abs():max():item(), 0, "batch norm 1 and 0")
      end
    end
    local w = lm.cat(scaled, 1)
    truthy(math.abs(w:std():item() - 1) < 0.01, "convolution weights / sqrt(2 / fan out): std " .. w:std():item())
    truthy(math.abs(w:mean():item()) < 4 / math.sqrt(w:numel()), "mean 0")
    local u = lm.cat(biases, 1) -- U(-1, 1) once scaled by sqrt(fan in)
    truthy(u:numel() > 2000 and u:abs():max():item() <= 1, "inside torch's default bound")
    truthy(math.abs(u:std():item() - 1 / math.sqrt(3)) < 0.03, "U(-1, 1): std " .. u:std():item())
    local fc = net.fc.weight:std():item()
    truthy(math.abs(fc / 0.01 - 1) < 0.02, "fc N(0, 0.01): std " .. fc)
    eq(net.fc.bias:abs():max():item(), 0, "fc bias 0")
  end)

  it("bad options are named, at the caller's line", function()
    local general = {depth = 3, w_0 = 8, w_a = 8, w_m = 2, group_width = 8}
    local function with(changes)
      local o = {}
      for k, v in pairs(general) do o[k] = v end
      for k, v in pairs(changes) do o[k] = v end
      return o
    end
    local cases = {
      {lm.models.regnet_y_400mf, {num_classes = 0}, "num_classes must be a positive integer, got 0"},
      {lm.models.regnet_x_400mf, {stem = "tiny"}, "stem must be 'imagenet'"},
      {lm.models.regnet_y_8gf, {depth = 3}, "unknown option 'depth'"},
      {lm.models.regnet_x_32gf, {num_clases = 3}, "did you mean num_classes?"},
      {lm.models.regnet, {}, "depth must be a positive integer, got nil"},
      {lm.models.regnet, with{w_0 = 12}, "w_0 must be a multiple of 8, got 12"},
      {lm.models.regnet, with{w_a = -1}, "w_a must be a finite number >= 0, got -1"},
      {lm.models.regnet, with{w_m = 1}, "w_m must be a finite number > 1, got 1"},
      {lm.models.regnet, with{group_width = 0}, "group_width must be a positive integer, got 0"},
      {lm.models.regnet, with{bottleneck_multiplier = 0}, "bottleneck_multiplier must be a positive number"},
      {lm.models.regnet, with{bottleneck_multiplier = 0.01}, "stage 1's bottleneck width (8 x 0.01) is below 1"},
      {lm.models.regnet, with{se_ratio = -0.5}, "se_ratio must be a number >= 0"},
      {lm.models.regnet, with{stem_width = 0}, "stem_width must be a positive integer, got 0"},
    }
    for _, c in ipairs(cases) do
      local ok, msg = pcall(c[1], c[2])
      truthy(not ok and msg:find(c[3], 1, true), tostring(msg))
      truthy(msg:find("^[^:]*torch_torchvision_models_spec%.lua:%d+: lm%.models%.regnet"), tostring(msg))
    end
    local ok, msg = pcall(lm.models.ResBottleneckBlock, 8, 16, 2, 3, 1.0)
    truthy(not ok and msg:find("lm.models.ResBottleneckBlock: the bottleneck width (16) must be a multiple of "
      .. "group_width (3)", 1, true), tostring(msg))
    ok, msg = pcall(lm.models.SqueezeExcitation, 8, 2, 5)
    truthy(not ok and msg:find("lm.models.SqueezeExcitation: activation must be a function, got 5", 1, true),
      tostring(msg))
    ok, msg = pcall(lm.models.SqueezeExcitation, 8, 2, nil, "sigmoid")
    truthy(not ok and msg:find('lm.models.SqueezeExcitation: scale_activation must be a function, got "sigmoid"', 1,
      true), tostring(msg))
  end)
end)

os.execute("rm -rf '" .. dir .. "'")
