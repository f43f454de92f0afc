-- Wrong calls to torch's losses (lua/lumen/nn/loss_functions.lua) and their
-- modules (losses_torch.lua): each option value is checked, shapes that
-- torch would broadcast are refused naming both, labels and probabilities
-- are checked; every message is compared whole and points at this file's
-- line, for the function and for the module alike.
local lm = require 'lumen'
local nn = lm.nn
local F = nn.functional

local refused = dofile("tests/helpers/refused.lua")("loss_errors_spec.lua", raises, truthy)

-- fn must fail at this file's line with exactly `message` (after the position)
local function exactly(fn, message)
  local err = refused(fn, message)
  eq(err:gsub("^[^\n]-:%d+: ", "", 1), message)
end

local x, t = lm.rand(2, 3), lm.rand(2, 3)
local logp, labels = lm.randn(2, 3):log_softmax(2), lm.tensor({1, 3}, "int32")

describe("loss options", function()
  it("refuse an unknown reduction, for each loss and module", function()
    for _, fname in ipairs{"binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss", "smooth_l1_loss",
        "huber_loss"} do
      exactly(function() F[fname](x, t, {reduction = "avg"}) end,
        fname .. ": reduction must be 'mean', 'sum' or 'none', got \"avg\"")
    end
    exactly(function() F.nll_loss(logp, labels, {reduction = "batchmean"}) end,
      "nll_loss: reduction must be 'mean', 'sum' or 'none', got \"batchmean\"")
    exactly(function() F.kl_div(x, t, {reduction = "elementwise_mean"}) end,
      "kl_div: reduction must be 'mean', 'batchmean', 'sum' or 'none', got \"elementwise_mean\"")
    exactly(function() F.l1_loss(x, t, {reduction = 1}) end,
      "l1_loss: reduction must be 'mean', 'sum' or 'none', got 1")
    exactly(function() nn.BCELoss({reduction = "max"}) end,
      "nn.BCELoss: reduction must be 'mean', 'sum' or 'none', got \"max\"")
    exactly(function() nn.KLDivLoss({reduction = "avg"}) end,
      "nn.KLDivLoss: reduction must be 'mean', 'batchmean', 'sum' or 'none', got \"avg\"")
  end)

  it("refuse unknown names, with the nearest, and options that are not a table", function()
    exactly(function() F.l1_loss(x, t, {reductoin = "sum"}) end,
      "l1_loss: unknown option 'reductoin'; did you mean reduction? (known: reduction)")
    exactly(function() nn.SmoothL1Loss({delta = 1}) end,
      "nn.SmoothL1Loss: unknown option 'delta' (known: beta, reduction)")
    exactly(function() nn.HuberLoss({size_average = true}) end,
      "nn.HuberLoss: unknown option 'size_average' (known: delta, reduction)")
    exactly(function() F.huber_loss(x, t, "sum") end, "huber_loss: options must be a table, got a string")
    exactly(function() F.binary_cross_entropy(x, t, lm.ones(3)) end,
      "binary_cross_entropy: options must be a table {weight, reduction}, got a tensor (torch's positional "
      .. "weight is {weight = w} here)")
    exactly(function() nn.L1Loss(lm.ones(3)) end, "nn.L1Loss: options must be a table {reduction}, got a tensor")
  end)

  it("check each option's type and value", function()
    exactly(function() F.smooth_l1_loss(x, t, {beta = -1}) end,
      "smooth_l1_loss: beta must be a finite number >= 0, got -1")
    exactly(function() nn.SmoothL1Loss({beta = "1"}) end,
      'nn.SmoothL1Loss: beta must be a finite number >= 0, got "1"')
    exactly(function() F.huber_loss(x, t, {delta = 0}) end, "huber_loss: delta must be a finite number > 0, got 0")
    exactly(function() nn.HuberLoss({delta = math.huge}) end,
      "nn.HuberLoss: delta must be a finite number > 0, got inf")
    exactly(function() F.kl_div(x, t, {log_target = 1}) end, "kl_div: log_target must be true or false, got 1")
    exactly(function() nn.KLDivLoss({log_target = "true"}) end,
      'nn.KLDivLoss: log_target must be true or false, got "true"')
    exactly(function() F.nll_loss(logp, labels, {ignore_index = 1.5}) end,
      "nll_loss: ignore_index must be an integer (a label value: 1-based classes, or torch's default -100), got 1.5")
    exactly(function() nn.NLLLoss({ignore_index = "pad"}) end,
      "nn.NLLLoss: ignore_index must be an integer (a label value: 1-based classes, or torch's default -100), "
      .. 'got "pad"')
    exactly(function() F.binary_cross_entropy(x, t, {weight = 2}) end,
      "binary_cross_entropy: weight must be a tensor (or nil), got 2")
    exactly(function() nn.BCEWithLogitsLoss({pos_weight = {1, 2}}) end,
      "nn.BCEWithLogitsLoss: pos_weight must be a tensor (or nil), got a table")
  end)

  it("refuse weights of the wrong shape, and weights that require a gradient", function()
    exactly(function() F.binary_cross_entropy(x, t, {weight = lm.ones(4)}) end,
      "binary_cross_entropy: weight of shape 4 does not broadcast to the input's shape 2x3")
    exactly(function() F.binary_cross_entropy_with_logits(x, t, {pos_weight = lm.ones(2)}) end,
      "binary_cross_entropy_with_logits: pos_weight of shape 2 does not broadcast to the input's shape 2x3")
    exactly(function() F.binary_cross_entropy_with_logits(x, t, {weight = lm.ones(1, 2, 3)}) end,
      "binary_cross_entropy_with_logits: weight of shape 1x2x3 does not broadcast to the input's shape 2x3")
    exactly(function() F.nll_loss(logp, labels, {weight = lm.ones(4)}) end,
      "nll_loss: weight must hold one value per class (3), got shape 4")
    exactly(function() nn.NLLLoss(lm.ones(2, 3))(logp, labels) end,
      "nn.NLLLoss: weight must hold one value per class (3), got shape 2x3")
    local w = lm.ones(3):requires_grad(true)
    exactly(function() F.binary_cross_entropy_with_logits(x, t, {pos_weight = w}) end,
      "binary_cross_entropy_with_logits: pos_weight requires a gradient, but the loss is not differentiable in it "
      .. "(as in torch); pass pos_weight:detach()")
    exactly(function() nn.NLLLoss({weight = w}) end,
      "nn.NLLLoss: weight requires a gradient, but the loss is not differentiable in it (as in torch); pass "
      .. "weight:detach()")
    -- (inside no_grad nothing records, so nothing is refused)
    truthy(lm.no_grad(function() return F.nll_loss(logp, labels, {weight = w}) end), "accepted under no_grad")
  end)
end)

describe("loss arguments", function()
  it("refuse targets of another shape, naming both (torch would broadcast some)", function()
    for _, fname in ipairs{"binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss", "smooth_l1_loss",
        "huber_loss", "kl_div"} do
      exactly(function() F[fname](x, lm.rand(3)) end, fname .. ": the input and the target differ in shape, 2x3 and "
        .. "3 (torch would broadcast them, with a warning; Lumen refuses)")
    end
    exactly(function() nn.L1Loss()(x, lm.rand(1, 3)) end, "nn.L1Loss: the input and the target differ in shape, "
      .. "2x3 and 1x3 (torch would broadcast them, with a warning; Lumen refuses)")
    exactly(function() F.l1_loss(x, 1) end, "l1_loss: the target must be a tensor, got 1")
    exactly(function() nn.HuberLoss()(nil, x) end, "nn.HuberLoss: the input must be a tensor, got nil")
  end)

  it("check binary cross entropy's probabilities, as torch does (the input's, not the target's)", function()
    -- torch 1.13 takes a target outside [0, 1]: -(1.5 log 0.5 - 0.5 log 0.5) = log 2 for the second element
    near(nn.BCELoss()(lm.tensor{0.5, 0.5}, lm.tensor{0, 1.5}):item(), math.log(2), 1e-6, "a target of 1.5")
    exactly(function() F.binary_cross_entropy(lm.tensor{-0.5, 2}, lm.tensor{0, 1}) end,
      "binary_cross_entropy: the input must hold values in [0, 1], got values in [-0.5, 2] (for logits, use "
      .. "binary_cross_entropy_with_logits)")
    exactly(function() F.binary_cross_entropy(lm.tensor{0 / 0, 0.5}, lm.tensor{0, 1}) end,
      "binary_cross_entropy: the input must hold values in [0, 1], got values in [nan, nan] (for logits, use "
      .. "binary_cross_entropy_with_logits)")
  end)

  it("name cross_entropy and its logits in errors of its composed path", function()
    local z, y = lm.randn(3, 4), lm.tensor({1, 9, 2}, "int32")
    exactly(function() F.cross_entropy(z, y, {weight = lm.ones(4)}) end,
      "cross_entropy: label 9 out of range for 4 classes")
    exactly(function() F.cross_entropy(z, y, {}) end, "cross_entropy: label 9 out of range for 4 classes")
    exactly(function() F.cross_entropy(z, lm.tensor({1, 2}, "int32"), {label_smoothing = 0.1}) end,
      "cross_entropy: labels of shape 2 do not fit logits of shape 3x4 (labels [N, ...] for logits [N, C, ...], "
      .. "or 0-D for [C])")
    exactly(function() F.cross_entropy(lm.tensor(1), lm.tensor(1, "int32"), {}) end,
      "cross_entropy: logits must be [N, C, ...] or [C], got a 0-D tensor")
    exactly(function() nn.CrossEntropyLoss({label_smoothing = 0.1})(z, y) end,
      "nn.CrossEntropyLoss: label 9 out of range for 4 classes")
    -- torch's default ignore_index: such labels count nothing, through the composed path
    near(F.cross_entropy(z, lm.tensor({-100, 1, 2}, "int32"), {}):item(),
      F.cross_entropy(z:narrow(1, 2, 2), lm.tensor({1, 2}, "int32")):item(), 1e-6, "a -100 label ignored")
  end)

  it("take options after torch's positional weight, and refuse a further argument", function()
    local w = lm.tensor{1, 2, 3}
    local p, y = lm.rand(2, 3), lm.rand(2, 3)
    near(nn.BCELoss(w, {reduction = "sum"})(p, y):item(), F.binary_cross_entropy(p, y, {weight = w,
      reduction = "sum"}):item(), 1e-6, "the weight and a reduction")
    eq(nn.NLLLoss(w, {ignore_index = 2}).ignore_index, 2, "ignore_index after the weight")
    exactly(function() nn.BCELoss(w, {weight = w}) end,
      "nn.BCELoss: after the weight, options must be a table without another weight, got a table")
    exactly(function() nn.L1Loss({}, {reduction = "sum"}) end,
      "nn.L1Loss: takes one options table, got a second argument (a table)")
    exactly(function() nn.L1Loss()(x, t, {reduction = "sum"}) end,
      "nn.L1Loss: called as loss_fn(input, target); options belong to the constructor, got a third argument (a table)")
  end)

  it("check nll_loss's labels: int32, 1-based, of the fitting shape", function()
    exactly(function() F.nll_loss(logp, lm.tensor{1, 2}) end,
      "nll_loss: labels must be an int32 tensor of 1-based classes, got float32 (use lm.tensor(t, 'int32') or :int())")
    exactly(function() F.nll_loss(logp, lm.tensor({0, 2}, "int32")) end,
      "nll_loss: label 0 out of range for 3 classes (Lumen's indices are 1-based: add 1 to 0-based ones)")
    exactly(function() nn.NLLLoss()(logp, lm.tensor({1, 4}, "int32")) end,
      "nn.NLLLoss: label 4 out of range for 3 classes")
    exactly(function() F.nll_loss(logp, lm.tensor({1, -1}, "int32")) end,
      "nll_loss: label -1 out of range for 3 classes")
    exactly(function() F.nll_loss(logp, lm.tensor({1, 2, 3}, "int32")) end,
      "nll_loss: labels of shape 3 do not fit log_probs of shape 2x3 (labels [N, ...] for log_probs [N, C, ...], or "
      .. "0-D for [C])")
    exactly(function() F.nll_loss(lm.zeros({}), lm.tensor(1, "int32")) end,
      "nll_loss: log_probs must be [N, C, ...] or [C], got a 0-D tensor")
    exactly(function() F.nll_loss(lm.zeros(3), lm.tensor({1}, "int32")) end,
      "nll_loss: labels of shape 1 do not fit log_probs of shape 3 (labels [N, ...] for log_probs [N, C, ...], or "
      .. "0-D for [C])")
    exactly(function() F.nll_loss("logp", labels) end, 'nll_loss: log_probs must be a tensor, got "logp"')
    -- an ignored label may be any value, a class's or not
    eq(F.nll_loss(logp, lm.tensor({-100, -100}, "int32"), {reduction = "sum"}):item(), 0)
    eq(F.nll_loss(logp, lm.tensor({7, 7}, "int32"), {ignore_index = 7, reduction = "sum"}):item(), 0)
  end)
end)
