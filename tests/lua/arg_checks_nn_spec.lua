-- Wrong arguments to lm.nn.functional, the modules' own methods, lm.no_grad
-- and the gradient check: each is a Lua error that names the function and
-- what was wrong, pointing at the caller's line (this file), never Lua's own
-- "attempt to index ..." from inside Lumen.
local lm = require 'lumen'
local F = lm.nn.functional

local refused = dofile("tests/helpers/refused.lua")("arg_checks_nn_spec.lua", raises, truthy)

describe("lm.nn.functional argument checks", function()
  it("refuses what is not a tensor", function()
    refused(function() F.relu("x") end, 'relu: input must be a tensor, got "x"')
    refused(function() F.elu(3) end, "elu: input must be a tensor, got 3")
    refused(function() F.sigmoid({}) end, "sigmoid: input must be a tensor, got a table")
    refused(function() F.tanh(nil) end, "tanh: input must be a tensor, got nil")
    refused(function() F.silu(true) end, "silu: input must be a tensor, got true")
    refused(function() F.gelu(print) end, "gelu: input must be a tensor, got a function")
    refused(function() F.global_avg_pool2d(2) end, "global_avg_pool2d: input must be a tensor, got 2")
    refused(function() F.adaptive_avg_pool2d(nil, 2) end, "adaptive_avg_pool2d: input must be a tensor, got nil")
    refused(function() F.squared_distances(lm.zeros(2, 2), 5) end,
      "squared_distances: b must be a tensor (or nil), got 5")
    refused(function() F.mmd(lm.zeros(2, 2), "p") end, 'mmd: p (the prior samples) must be a tensor, got "p"')
    refused(function() F.dropout2d({}, 0.5, true) end, "dropout2d: input must be a tensor, got a table")
  end)

  it("checks the other arguments", function()
    local x = lm.randn(4, 3)
    refused(function() F.dropout(x, "half", true) end, 'dropout: p must be a number, got "half"')
    refused(function() F.leaky_relu(x, "a") end, 'leaky_relu: negative_slope must be a number, got "a"')
    refused(function() F.elu(x, "a") end, 'elu: alpha must be a number, got "a"')
    refused(function() F.softplus(x, "a") end, 'softplus: beta must be a number, got "a"')
    refused(function() F.dropout(x, 0 / 0, true) end, "dropout: p must be in [0, 1), got")
    eq(F.dropout(x, nil, false), x, "no p is fine when not training")
    refused(function() F.gelu(x, 3) end, "gelu: approximate must be 'none' or 'tanh', got 3")
    refused(function() F.mmd(x, x, 0.5) end, "mmd: options must be a table, got 0.5")
    refused(function() F.batch_norm(lm.randn(4, 3), lm.zeros(3)) end,
      "batch_norm: running_mean and running_var go together")
    refused(function() F.batch_norm(x, nil, nil, "w") end, 'batch_norm: weight must be a tensor (or nil), got "w"')
    refused(function() F.group_norm(lm.randn(2, 4, 3), 0) end,
      "group_norm: num_groups must be a positive integer, got 0")
    refused(function() F.layer_norm(x, {"3"}) end, "layer_norm: normalized_shape must be a size or a list of sizes")
    refused(function() F.embedding(lm.tensor({1, 2}, 'int32'), lm.zeros(4)) end,
      "embedding: weight must be [num, dim], got 4")
    refused(function() F.embedding(lm.tensor({1, 2}, 'int32'), lm.zeros(4, 2), 1.5) end,
      "embedding: padding_idx must be a 1-based row in 1..4 (or -4..-1 from the end), got 1.5")
  end)
end)

describe("the activations' arguments, as torch checks them", function()
  local nn = lm.nn
  local x = lm.randn(4, 3)
  it("refuses a wrong input or number", function()
    for _, fn in ipairs{"hardswish", "hardsigmoid", "mish", "selu", "celu", "logsigmoid", "softsign", "tanhshrink",
      "hardshrink", "softshrink", "threshold", "prelu", "glu", "softmin"} do
      refused(function() F[fn]("x") end, fn .. ': input must be a tensor, got "x"')
    end
    refused(function() F.celu(x, "a") end, 'celu: alpha must be a number, got "a"')
    refused(function() F.hardshrink(x, {}) end, "hardshrink: lambd must be a number, got a table")
    refused(function() F.softshrink(x, "a") end, 'softshrink: lambd must be a number, got "a"')
    refused(function() F.threshold(x, 0.5) end, "threshold: value must be a number, got nil")
    refused(function() F.threshold(x, nil, 1) end, "threshold: threshold must be a number, got nil")
  end)

  it("refuses what torch refuses: celu's alpha 0, softshrink's negative lambd, odd glu halves", function()
    refused(function() F.celu(x, 0) end, "celu: alpha cannot be 0")
    refused(function() nn.CELU(0) end, "nn.CELU: alpha cannot be 0")
    refused(function() F.softshrink(x, -1) end, "softshrink: lambd must be greater or equal to 0, got -1")
    refused(function() F.softshrink(x, 0 / 0) end, "softshrink: lambd must be greater or equal to 0, got nan")
    refused(function() nn.Softshrink(-0.5) end, "nn.Softshrink: lambd must be greater or equal to 0, got -0.5")
    eq(F.hardshrink(x, -1):totable()[1][1], x:totable()[1][1], "a negative lambd is torch's identity")
    refused(function() F.glu(x) end, "glu: halving dimension must be even, but dimension 2 of 4x3 is size 3")
    refused(function() F.glu(x, 3) end, "glu: dimension 3 out of range for a 2-D tensor")
    refused(function() F.glu(x, 1.5) end, "glu: dim must be an integer, got 1.5")
    refused(function() F.glu(lm.tensor(1)) end, "glu: a 0-D input has no dimension to halve")
    refused(function() F.softmin(x, 0) end, "softmin: dimension 0 out of range for a 2-D tensor")
    refused(function() nn.GLU("a") end, 'nn.GLU: dim must be an integer, got "a"')
    refused(function() nn.Softmin(1.5) end, "nn.Softmin: dim must be an integer, got 1.5")
    refused(function() nn.Threshold(0.5) end, "nn.Threshold: value must be a number, got nil")
    refused(function() nn.Hardshrink("a") end, 'nn.Hardshrink: lambd must be a number, got "a"')
  end)

  it("refuses a prelu weight that fits neither one slope nor one a channel", function()
    refused(function() F.prelu(x, lm.randn(2)) end,
      "prelu: weight has 2 parameters, the input 4x3 has 3 channels (its dimension 2): one parameter, or one a channel")
    refused(function() F.prelu(lm.randn(5), lm.randn(5)) end,
      "prelu: weight has 5 parameters, the input 5 has 1 channel (its dimension 2): one parameter, or one a channel")
    refused(function() F.prelu(x, lm.randn(1, 3)) end, "prelu: weight must be 0-D or 1-D ([num_parameters]), got 1x3")
    refused(function() F.prelu(x, 0.25) end, "prelu: weight must be a tensor, got 0.25")
    refused(function() nn.PReLU(0) end, "nn.PReLU: num_parameters must be a positive integer, got 0")
    refused(function() nn.PReLU(2, "a") end, 'nn.PReLU: init must be a number, got "a"')
    refused(function() nn.PReLU(3)(x:view(2, 6)) end, "prelu: weight has 3 parameters, the input 2x6 has 6 channels")
    eq(F.prelu(x, lm.tensor(0.5)):shape_string(), "4x3", "a 0-D weight is one slope")
  end)
end)

describe("layer options", function()
  local nn = lm.nn
  it("take on/off options as true or false only (a ported 0 or 1 is not read as either)", function()
    refused(function() nn.TransformerEncoderLayer(8, 2, {norm_first = 1}) end,
      "nn.TransformerEncoderLayer: norm_first must be true or false, got 1")
    refused(function() nn.BatchNorm1d(3, {affine = 0}) end, "nn.BatchNorm1d: affine must be true or false, got 0")
    refused(function() nn.BatchNorm2d(3, {track_running_stats = "false"}) end,
      'nn.BatchNorm2d: track_running_stats must be true or false, got "false"')
    refused(function() nn.GroupNorm(1, 3, {affine = 1}) end, "nn.GroupNorm: affine must be true or false, got 1")
    refused(function() nn.LayerNorm(3, {elementwise_affine = 0}) end,
      "nn.LayerNorm: elementwise_affine must be true or false, got 0")
    refused(function() nn.MultiheadAttention(8, 2, {batch_first = 0}) end,
      "nn.MultiheadAttention: batch_first must be true or false, got 0")
    refused(function() nn.MultiheadAttention(8, 2, {bias = 0}) end,
      "nn.MultiheadAttention: bias must be true or false, got 0")
    refused(function() nn.Linear(3, 4, {bias = 0}) end, "nn.Linear: bias must be true or false, got 0")
    refused(function() nn.Conv2d(3, 4, 3, {bias = "no"}) end, 'nn.Conv2d: bias must be true or false, got "no"')
    local mha, q = nn.MultiheadAttention(8, 2), lm.randn(2, 3, 8)
    refused(function() mha(q, q, q, {need_weights = 0}) end,
      "nn.MultiheadAttention: need_weights must be true or false, got 0")
    refused(function() mha(q, q, q, {average_attn_weights = 0}) end,
      "nn.MultiheadAttention: average_attn_weights must be true or false, got 0")
    eq(nn.TransformerEncoderLayer(8, 2, {norm_first = true}).norm_first, true)
    eq(#nn.BatchNorm1d(3, {affine = false}):parameters(), 0)
    local _, w = mha(q, q, q, {need_weights = false})
    eq(w, nil, "need_weights = false: no weights")
    eq(select(2, mha(q, q, q, {average_attn_weights = false})):shape_string(), "2x2x3x3", "per head")
  end)

  it("check eps and momentum when the layer is made, not at its first call", function()
    refused(function() nn.BatchNorm1d(3, {eps = "a"}) end, 'nn.BatchNorm1d: eps must be a finite number >= 0, got "a"')
    refused(function() nn.BatchNorm2d(3, {eps = -1}) end, "nn.BatchNorm2d: eps must be a finite number >= 0, got -1")
    refused(function() nn.BatchNorm1d(3, {momentum = "x"}) end,
      'nn.BatchNorm1d: momentum must be a finite number (or false: a cumulative average), got "x"')
    refused(function() nn.GroupNorm(1, 3, {eps = -1e-5}) end,
      "nn.GroupNorm: eps must be a finite number >= 0, got -1e-05")
    refused(function() nn.LayerNorm(4, {eps = "0.1"}) end, 'nn.LayerNorm: eps must be a finite number >= 0, got "0.1"')
    refused(function() nn.TransformerEncoderLayer(8, 2, {layer_norm_eps = 0 / 0}) end,
      "nn.TransformerEncoderLayer: layer_norm_eps must be a finite number >= 0, got nan")
    refused(function() nn.Dropout(0 / 0) end, "nn.Dropout: p (the drop probability) must be in [0, 1), got nan")
    refused(function() nn.StochasticDepth(1.5, "row") end,
      "nn.StochasticDepth: p (the drop probability) must be in [0, 1], got 1.5")
    refused(function() nn.StochasticDepth(0.2) end, "nn.StochasticDepth: mode must be 'row' or 'batch', got nil")
    refused(function() F.stochastic_depth(lm.ones(2), 0.2, "rows", true) end,
      "stochastic_depth: mode must be 'row' or 'batch', got \"rows\"")
    refused(function() F.stochastic_depth(lm.ones(2), -1, "row", true) end,
      "stochastic_depth: p must be a number in [0, 1], got -1")
    refused(function() F.stochastic_depth(lm.tensor(2), 0.5, "row", true) end,
      "stochastic_depth: input must have at least one dimension, got a scalar")
    eq(nn.BatchNorm1d(3, {momentum = false}).momentum, false, "a cumulative average")
  end)

  it("refuse a padding row outside the table in F.embedding too, and count a negative one from the end", function()
    local w = lm.randn(5, 2):requires_grad(true)
    F.embedding(lm.tensor({1, 5, 5, 2}, "int32"), w, -1):sum():backward()
    same(w.grad:totable(), {{1, 1}, {1, 1}, {0, 0}, {0, 0}, {0, 0}}, 0, "row 5 (-1) gets no gradient")
    refused(function() F.embedding(lm.tensor({1}, "int32"), w, 9) end,
      "embedding: padding_idx must be a 1-based row in 1..5 (or -5..-1 from the end), got 9")
    refused(function() F.embedding(lm.tensor({1}, "int32"), w, 0) end,
      "embedding: padding_idx must be a 1-based row in 1..5 (or -5..-1 from the end), got 0")
    refused(function() nn.Embedding(5, 2, {padding_idx = 6}) end,
      "nn.Embedding: padding_idx must be a 1-based row in 1..5 (or -5..-1 from the end), got 6")
    eq(nn.Embedding(5, 2, {padding_idx = -2}).padding_idx, 4)
  end)

  it("refuse a misspelt gelu option, a third pooled size, an empty plane and strides of three", function()
    refused(function() F.gelu(lm.zeros(2), {aprox = "tanh"}) end, "gelu: unknown option 'aprox'")
    refused(function() nn.AdaptiveAvgPool2d({2, 3, 4}) end,
      "nn.AdaptiveAvgPool2d: output_size must be a size or {h, w}, got 3 sizes")
    refused(function() F.adaptive_avg_pool2d(lm.zeros(1, 1, 4, 4), {3}) end,
      "adaptive_avg_pool2d: output_size must be a positive integer or {h, w}, got {3}")
    refused(function() F.adaptive_avg_pool2d(lm.zeros(1, 1, 0, 4), 2) end,
      "adaptive_avg_pool2d: the input's channels and planes must not be empty, got 1x1x0x4")
    eq(F.adaptive_avg_pool2d(lm.zeros(0, 1, 4, 4), 2):shape_string(), "0x1x2x2", "an empty batch is fine")
    local x, w = lm.zeros(1, 3, 8, 8), lm.zeros(4, 3, 3, 3)
    raises(function() F.conv2d(x, w, nil, {stride = {2, 2, 2}}) end,
      "conv2d: stride must be an integer from 1 to 2147483647 or a pair {h, w} of them, got a table of length 3")
    raises(function() F.conv2d(x, w, nil, {stride = "2"}) end, "conv2d: stride must be an integer from 1 to")
    raises(function() F.conv2d(x, w, nil, {stride = 0}) end, "got 0")
    raises(function() F.max_pool2d(x, 2, {padding = -1}) end,
      "max_pool2d: padding must be an integer from 0 to 2147483647 or a pair {h, w} of them, got -1")
    refused(function() F.conv2d(x, w, nil, {groups = 1.5}) end,
      "conv2d: groups must be an integer from 1 to 2147483647, got 1.5")
    refused(function() F.conv2d(x, w, nil, {dilation = "2"}) end,
      "conv2d: dilation must be an integer from 1 to 2147483647 or a pair {h, w} of them, got '2'")
    refused(function() F.conv2d(x, lm.zeros(3, 2, 3, 3), nil, {groups = 3}) end,
      "conv2d: input has 3 channels, 1 a group with groups = 3, but the weight expects 2 a group")
    refused(function() F.conv2d(lm.zeros(1, 4, 8, 8), lm.zeros(6, 1, 3, 3), nil, {groups = 4}) end,
      "conv2d: weight has 6 output channels, which groups = 4 does not divide (weight [6, 1, 3, 3])")
    refused(function() F.conv2d(lm.zeros(1, 4, 8, 8), lm.zeros(6, 1, 3, 3), nil, {dilation = {2, 1}, groups = 4}) end,
      "conv2d: weight has 6 output channels")
    refused(function() F.conv2d(lm.zeros(1, 1, 8, 8), lm.zeros(1, 1, 3, 3), nil, {dilation = {1, 4}}) end,
      "conv2d: kernel 3x3 with dilation 1x4 spans 3x9, more than the padded input [1, 1, 8, 8] (padding 0x0): "
        .. "the output would be empty")
    refused(function() lm.zeros(2):to() end,
      "to: expected a device ('cpu', 'cuda') or a dtype ('float32', 'int32', 'uint8'), got nothing")
    refused(function() nn.Conv2d(3, 4, 3, {stride = {2, 0}}) end,
      "nn.Conv2d: stride must be a positive integer or a pair {h, w} of them, got {2, 0}")
    refused(function() nn.Conv2d(3, 4, {3}) end,
      "nn.Conv2d: kernel size must be a positive integer or a pair {h, w} of them, got a table of length 1")
    refused(function() nn.MaxPool2d({2, 2}, {1, "1"}) end,
      'nn.MaxPool2d: stride must be a positive integer or a pair {h, w} of them, got {1, "1"}')
    refused(function() F.conv2d(x, w, nil, {padding = "same", stride = 2}) end,
      "conv2d: padding 'same' needs stride 1, as in torch, got stride 2")
    refused(function() F.conv2d(x, w, nil, {padding = "full"}) end, "got 'full'")
  end)

  it("check the pools' ceil_mode and count_include_pad paths as the plain one, at the caller's line", function()
    local x = lm.zeros(1, 1, 5, 5)
    for _, opts in ipairs{{}, {ceil_mode = true}} do
      eq(F.max_pool2d(x, 2.0, opts):shape_string(), F.max_pool2d(x, 2, opts):shape_string(), "a whole float size")
      opts.stride, opts.padding = {2.0, 1}, 1.0
      eq(F.avg_pool2d(x, {3, 2.0}, opts):shape_string(), F.avg_pool2d(x, {3, 2}, {stride = {2, 1}, padding = 1,
        ceil_mode = opts.ceil_mode}):shape_string(), "whole float pairs")
      opts.stride, opts.padding = nil, nil
      refused(function() F.max_pool2d(x, 2.5, opts) end,
        "max_pool2d: kernel size must be an integer from 1 to 2147483647 or a pair {h, w} of them, got 2.5")
      opts.count_include_pad = false
      refused(function() F.max_pool2d(x, 2, opts) end,
        "max_pool2d: unknown option 'count_include_pad' (known: stride, padding, dilation, ceil_mode)")
      refused(function() F.avg_pool2d(x, 2, {ceil_mode = opts.ceil_mode, count_include_pad = 0}) end,
        "avg_pool2d: option 'count_include_pad' must be a boolean")
      refused(function() F.avg_pool2d(x:view(1, 5, 5), 2, opts) end, "avg_pool2d: input must be [N, C, H, W]")
      refused(function() F.avg_pool2d(x, 3, {padding = 2, ceil_mode = opts.ceil_mode, count_include_pad = false}) end,
        "avg_pool2d: padding 2x2 is more than half the kernel 3x3")
    end
    -- torch's ceil_mode pools an input smaller than the kernel, unless no window starts in it
    eq(F.max_pool2d(lm.zeros(1, 1, 1, 1), 2, {ceil_mode = true}):shape_string(), "1x1x1x1")
    refused(function() F.max_pool2d(lm.zeros(1, 1, 1, 1), 3, {stride = 2, ceil_mode = true}) end,
      "max_pool2d: the input [1, 1, 1, 1] is too small for kernel 3x3 with stride 2x2 and padding 0x0, even "
        .. "with ceil_mode (output size 0x0), as in torch")
    refused(function() F.max_pool2d(lm.zeros(1, 1, 0, 4), 2, {ceil_mode = true}) end,
      "max_pool2d: input [1, 1, 0, 4] has no height or width")
    eq(F.avg_pool2d(lm.zeros(0, 2, 5, 5), 2, {ceil_mode = true, count_include_pad = false}):shape_string(),
      "0x2x3x3", "an empty batch")
  end)

  it("refuse loss options that would be ignored, and the mean of an empty batch", function()
    local a, y = lm.tensor{{1, 2}, {3, 4}}, lm.tensor({1, 2}, "int32")
    raises(function() F.cross_entropy(a, y, {reduce = "sum"}) end, "cross_entropy: unknown option 'reduce'")
    raises(function() F.cross_entropy(a, y, {label_smoothing = 1.5}) end,
      "cross_entropy: label_smoothing must be a number in [0, 1], got 1.5")
    raises(function() F.mse(a, a, "none") end,
      "mse: options must be a table {reduction = 'mean' | 'none'}, got a string")
    raises(function() F.mse(a, a, {reduce = "none"}) end, "mse: unknown option 'reduce'")
    raises(function() F.mse(lm.zeros(0, 3), lm.zeros(0, 3)) end,
      "mse: empty batch (no samples to average; reduction 'none' gives [0])")
    eq(F.mse(lm.zeros(0, 3), lm.zeros(0, 3), {reduction = "none"}):shape_string(), "0")
  end)

  it("flatten an empty batch, as torch.flatten", function()
    eq(lm.zeros(0, 4, 4, 4):flatten(2):shape_string(), "0x64")
    eq(lm.zeros(2, 3, 4):flatten():shape_string(), "24")
    eq(lm.zeros(2, 3, 4):flatten(1, 2):shape_string(), "6x4")
    eq(lm.zeros(2, 3, 4):flatten(-2):shape_string(), "2x12")
    eq(lm.tensor(3):flatten():shape_string(), "1")
    raises(function() return lm.zeros(2, 3):flatten(2, 1) end,
      "flatten: the first dimension (2) comes after the last (1)")
    eq(nn.Flatten()(lm.zeros(0, 3, 2)):shape_string(), "0x6")
    refused(function() nn.Flatten()(3) end, "nn.Flatten: the input must be a tensor, got 3")
    raises(function() nn.Flatten()(lm.zeros(5)) end, "flatten: dimension 2 out of range for a 1-D tensor")
    local net = lm.models.resnet18{stem = "cifar", num_classes = 4, width = 4}
    net:eval()
    eq(net(lm.randn(0, 3, 8, 8)):shape_string(), "0x4", "a ResNet on an empty batch")
    local vit = lm.models.vit{image_size = 8, patch_size = 4, num_classes = 3, dim = 8, depth = 1, heads = 2,
      mlp_dim = 16}
    vit:eval()
    eq(vit(lm.randn(0, 3, 8, 8)):shape_string(), "0x3", "a ViT on an empty batch")
    refused(function() vit(nil) end, "models.vit: input must be a tensor, got nil")
    refused(function() lm.models.resnet18{num_classes = "10"} end,
      'lm.models.resnet18: num_classes must be a positive integer, got "10"')
  end)
end)

describe("module methods", function()
  local net = lm.nn.Sequential(lm.nn.Linear(3, 2), lm.nn.ELU())

  it("describe works without an indent", function()
    eq(net:describe(), "nn.Sequential {\n  (1): nn.Linear(3 -> 2)\n  (2): nn.ELU\n}")
    refused(function() net:describe(2) end, "describe: indent must be a string, got 2")
  end)

  it("checks names, modes, devices, paths and hooks", function()
    refused(function() net:named_parameters(5) end, "named_parameters: the prefix must be a string, got 5")
    refused(function() net:named_modules(nil, "list") end,
      'named_modules: the list to append to must be a table, got "list"')
    refused(function() net:modules(1) end, "modules: the list to append to must be a table, got 1")
    refused(function() net:train("yes") end, 'train: mode must be true or false, got "yes"')
    refused(function() net:to("gpu") end, "to: the device must be 'cpu' or 'cuda', got \"gpu\"")
    refused(function() net:save(3) end, "save: path must be a string, got 3")
    refused(function() net:load(nil) end, "load: path must be a string, got nil")
    -- a misspelt option would save in float32 or load strictly without a word
    local path = os.tmpname()
    refused(function() net:save(path, {dtpye = "float16"}) end, "save: unknown option 'dtpye'; did you mean dtype?")
    net:save(path)
    refused(function() net:load(path, {stirct = false}) end, "load: unknown option 'stirct'; did you mean strict?")
    -- a file that cannot be read or written is reported at the caller's line too
    refused(function() net:load(path .. ".none") end, path .. ".none")
    refused(function() net:save("/proc/none/x.safetensors") end, "/proc/none/x.safetensors")
    refused(function() net:load_state_dict(net:state_dict(), {strikt = false}) end,
      "load_state_dict: unknown option 'strikt'; did you mean strict?")
    -- the file format's strings end at a NUL: such metadata is refused, not cut
    refused(function() lm.save(path, {a = lm.ones(1)}, {metadata = {["k\0x"] = "v"}}) end,
      "save: a metadata key or value contains a NUL byte")
    os.remove(path)
    refused(function() net:register_forward_hook("h") end,
      'register_forward_hook: the hook must be a function, got "h"')
    refused(function() net[1]:param(1, lm.zeros(1)) end, "param: name must be a string, got 1")
    refused(function() net[1]:buffer("b", 2) end, "buffer: 'b' must be a tensor")
  end)

  it("refuses a state whose names are not strings, loading nothing", function()
    local before = net[1].weight:clone()
    refused(function() net:load_state_dict({[1] = lm.zeros(2, 3)}) end,
      "load_state_dict: the state's names must be strings, got 1")
    refused(function() net:load_state_dict(net:state_dict(), 7) end, "load_state_dict: options must be a table, got 7")
    eq((net[1].weight - before):abs():max():item(), 0, "the weights are as they were")
  end)
end)

describe("lm.no_grad and lm.autograd.gradcheck", function()
  it("say what they needed", function()
    refused(function() lm.no_grad(3) end, "no_grad: the argument must be a function to run, got number")
    refused(function() lm.autograd.gradcheck("f", {}) end, 'gradcheck: fn must be a function, got "f"')
    refused(function() lm.autograd.gradcheck(function(x) return x end, 3) end,
      "gradcheck: inputs (a list of fn's arguments) must be a table, got 3")
    refused(function() lm.autograd.gradcheck(function() return 2 end, {}) end,
      "gradcheck: fn must return a tensor, got 2")
  end)

  it("lm.nn.evaluating checks its arguments", function()
    refused(function() lm.nn.evaluating(nil, function() end) end, "lm.nn.evaluating: models must be a table, got nil")
    refused(function() lm.nn.evaluating({1}, function() end) end,
      "lm.nn.evaluating: models[1] must be a module (an lm.nn layer or model), got 1")
    refused(function() lm.nn.evaluating(lm.nn.Linear(2, 2), 5) end, "lm.nn.evaluating: fn must be a function, got 5")
  end)
end)
