-- torch.nn.functional's losses, with torch 1.13's values, gradients and
-- defaults, composed from differentiable tensor ops: binary_cross_entropy
-- (and _with_logits), l1_loss, smooth_l1_loss, huber_loss, nll_loss,
-- kl_div, and cross_entropy's options (without them, or with torch's
-- defaults, its fused kernel). Options come in a table ({weight = w,
-- reduction = 'sum'}).
--
-- Decided here:
--   * The target must have the input's shape: torch broadcasts some losses'
--     targets with a warning, Lumen refuses, naming both shapes.
--   * nll_loss's labels are 1-based int32 classes, as F.cross_entropy's;
--     ignore_index is a label value compared with them (torch's default -100
--     stays the default: no class has it in either numbering).
--   * weight and pos_weight are constants: one that requires a gradient is
--     refused, as torch refuses it.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'
local lc = require 'lumen.nn.loss_checks'

-- a 0-D constant on x's device, for lm.where
local function scalar(v, x) return lm.full({}, v, "float32", x:device()) end

-- binary cross entropy on probabilities, elementwise: its own backward,
-- torch's, since the composed one is NaN or 0 at probabilities 0 and 1
-- where torch's divides by max((1 - x) x, 1e-12)
local BinaryCrossEntropy = lm.autograd.Function{
  name = "binary_cross_entropy",
  forward = function(ctx, x, t, w)
    ctx:save_for_backward(x, t, w)
    ctx.target_grad = t:requires_grad()
    -- each log clamped at -100, as torch: probabilities 0 and 1 give finite losses
    local loss = (t - 1) * (-x):log1p():clamp(-100, math.huge) - t * x:log():clamp(-100, math.huge)
    if w then loss = loss * w end
    return loss
  end,
  backward = function(ctx, grad)
    local x, t, w = ctx.saved[1], ctx.saved[2], ctx.saved[3]
    if w then grad = grad * w end
    local gx = grad * (x - t) / ((1 - x) * x):clamp(1e-12, math.huge)
    -- torch's target gradient, -logit(x): infinite at 0 and 1, unclamped
    local gt = ctx.target_grad and grad * -(x / (1 - x)):log() or nil
    return gx, gt
  end,
}

-- the input's range, checked as torch checks it (a common slip is to pass
-- logits: name the function that takes them); one read from the device,
-- none inside a CUDA graph capture (nothing has run yet there)
local function probabilities(v, what, fname, hint)
  if v:numel() == 0 or lm.cuda.capturing() then return end
  local range = lm.stack({v:min(), v:max()}):totable()
  local lo, hi = range[1], range[2]
  if not (lo >= 0 and hi <= 1) then
    local function shown(n) return n ~= n and "nan" or string.format("%.4g", n) end -- (not "-nan")
    error(string.format("%s: %s must hold values in [0, 1], got values in [%s, %s]%s", fname, what, shown(lo),
      shown(hi), hint or ""), 3)
  end
end

return function(F)
  --- torch.nn.functional.binary_cross_entropy(input, target [, {weight,
  --- reduction = 'mean'}]): -w (t log x + (1 - t) log(1 - x)) with each
  --- log clamped at -100; input and target in [0, 1], of one shape; weight
  --- broadcasts to it. Differentiable in the input and the target, with
  --- torch's gradients.
  function F.binary_cross_entropy(input, target, opts)
    local fname = "binary_cross_entropy"
    lc.same_shape(input, target, fname, 2)
    local o = lc.options(opts, fname, {"weight"}, nil, 2)
    lc.broadcasts(o.weight, input, "weight", fname, 2)
    probabilities(input, "the input", fname, " (for logits, use binary_cross_entropy_with_logits)")
    local loss = BinaryCrossEntropy(input, target, o.weight)
    return lc.reduce(loss, o.reduction)
  end

  --- torch.nn.functional.binary_cross_entropy_with_logits(input, target [,
  --- {weight, pos_weight, reduction = 'mean'}]): binary cross entropy of
  --- sigmoid(input), as (1 - t) x + (1 + (p - 1) t) softplus(-x): no
  --- overflow and finite gradients at any logit. pos_weight (p) and weight
  --- broadcast to the input's shape.
  function F.binary_cross_entropy_with_logits(input, target, opts)
    local fname = "binary_cross_entropy_with_logits"
    lc.same_shape(input, target, fname, 2)
    local o = lc.options(opts, fname, {"weight", "pos_weight"}, nil, 2)
    lc.broadcasts(o.weight, input, "weight", fname, 2)
    lc.broadcasts(o.pos_weight, input, "pos_weight", fname, 2)
    local softplus = F.softplus(-input) -- log(1 + exp(-x)), x itself beyond the threshold
    local loss
    if o.pos_weight then
      loss = (1 - target) * input + ((o.pos_weight - 1) * target + 1) * softplus
    else
      loss = (1 - target) * input + softplus
    end
    if o.weight then loss = loss * o.weight end
    return lc.reduce(loss, o.reduction)
  end

  --- torch.nn.functional.l1_loss(input, target [, {reduction = 'mean'}]):
  --- |input - target|.
  function F.l1_loss(input, target, opts)
    lc.same_shape(input, target, "l1_loss", 2)
    local o = lc.options(opts, "l1_loss", {}, nil, 2)
    return lc.reduce((input - target):abs(), o.reduction)
  end

  -- d <= -beta: -d - beta/2 (gradient -1); d >= beta: d - beta/2 (1); between: d^2 / (2 beta) (d / beta),
  -- each times `scale`; torch's branches in torch's order (beta > 0)
  local function piecewise(d, beta, scale, quadratic)
    local half = 0.5 * beta
    local outside = lm.where(d:le(-beta), (-d - half) * scale, (d - half) * scale)
    local inner = d:clamp(-beta, beta) -- (the unselected square stays finite: no 0 * inf in its gradient)
    return lm.where(d:le(-beta) + d:ge(beta), outside, inner * inner * quadratic)
  end

  -- |input - target| with torch's smooth L1 gradients at beta = 0: it takes the input's at d and the
  -- target's at -d, each -1 where d <= 0, so both are -1 at d = 0; each side here sees the other detached
  -- (the value is |d| + |d| - |d|, exactly |d|)
  local L1 = lm.autograd.Function{
    name = "smooth_l1_beta0",
    forward = function(ctx, input, target)
      local d = input - target
      ctx:save_for_backward(d)
      return d:abs()
    end,
    backward = function(ctx, grad)
      local d = ctx.saved[1]
      local one, minus = scalar(1, d), scalar(-1, d)
      return grad * lm.where(d:gt(0), one, minus), grad * lm.where(d:lt(0), one, minus)
    end,
  }
  local function smooth_l1_beta0(input, target) return L1(input, target) end

  --- torch.nn.functional.smooth_l1_loss(input, target [, {beta = 1,
  --- reduction = 'mean'}]): 0.5 d^2 / beta where |d| < beta, else |d| -
  --- 0.5 beta (d = input - target; beta >= 0, 0 gives the L1 loss).
  function F.smooth_l1_loss(input, target, opts)
    lc.same_shape(input, target, "smooth_l1_loss", 2)
    local o = lc.options(opts, "smooth_l1_loss", {"beta"}, nil, 2)
    local beta = o.beta
    if beta == 0 then return lc.reduce(smooth_l1_beta0(input, target), o.reduction) end
    return lc.reduce(piecewise(input - target, beta, 1, 0.5 / beta), o.reduction)
  end

  --- torch.nn.functional.huber_loss(input, target [, {delta = 1, reduction
  --- = 'mean'}]): 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)
  --- (d = input - target; delta > 0): smooth_l1_loss with beta = delta, times delta.
  function F.huber_loss(input, target, opts)
    lc.same_shape(input, target, "huber_loss", 2)
    local o = lc.options(opts, "huber_loss", {"delta"}, nil, 2)
    return lc.reduce(piecewise(input - target, o.delta, o.delta, 0.5), o.reduction)
  end

  --- torch.nn.functional.nll_loss(log_probs, labels [, {weight,
  --- ignore_index = -100, reduction = 'mean'}]): -w[y] log_probs[y] for
  --- log_probs [N, C, ...] (or [C]) and 1-based int32 labels [N, ...] (or
  --- 0-D); labels equal to ignore_index count nothing. 'mean' divides by the
  --- sum of w[y] over the labels not ignored (NaN when none is left, as
  --- torch); weight is [C].
  function F.nll_loss(log_probs, labels, opts)
    local fname = "nll_loss"
    checks.tensor(log_probs, "log_probs", fname)
    checks.tensor(labels, "labels", fname)
    local o = lc.options(opts, fname, {"weight", "ignore_index"}, nil, 2)
    if labels:dtype() ~= "int32" then
      error(string.format("nll_loss: labels must be an int32 tensor of 1-based classes, got %s (use "
        .. "lm.tensor(t, 'int32') or :int())", labels:dtype()), 2)
    end
    if log_probs:dim() == 0 then error("nll_loss: log_probs must be [N, C, ...] or [C], got a 0-D tensor", 2) end
    local cdim = log_probs:dim() == 1 and 1 or 2 -- the classes' dimension
    local want = log_probs:shape()
    table.remove(want, cdim)
    if table.concat(want, "x") ~= table.concat(labels:shape(), "x") then
      error(string.format("nll_loss: labels of shape %s do not fit log_probs of shape %s (labels [N, ...] for "
        .. "log_probs [N, C, ...], or 0-D for [C])", labels:shape_string(), log_probs:shape_string()), 2)
    end
    local classes = log_probs:size(cdim)
    if o.weight and (o.weight:dim() ~= 1 or o.weight:size(1) ~= classes) then
      error(string.format("nll_loss: weight must hold one value per class (%d), got shape %s", classes,
        o.weight:shape_string()), 2)
    end
    lc.same_device(o.weight, log_probs, "weight", fname, 2)
    if labels:device() ~= log_probs:device() then labels = labels:to(log_probs:device()) end -- (as F.embedding)
    local ignored = labels:eq(o.ignore_index)
    local safe = labels:masked_fill(ignored, 1) -- an ignored label picks class 1, weighed 0
    local index = cdim == 1 and safe:view(1) or safe:unsqueeze(cdim)
    local ok, picked = pcall(log_probs.gather, log_probs, cdim, index)
    if not ok then
      local label, rest = tostring(picked):match("index (%-?%d+) out of range for %d+ elements along dimension %d+(.*)")
      if not label then checks.reraise(picked, 2) end
      error(string.format("nll_loss: label %s out of range for %d classes%s", label, classes, rest), 2)
    end
    picked = cdim == 1 and picked:view({}) or picked:squeeze(cdim)
    local coef = lm.no_grad(function()
      local keep = 1 - ignored
      return o.weight and o.weight:index_select(safe:reshape(-1)):view(labels:shape()) * keep or keep
    end)
    local loss = lm.where(ignored, scalar(0, picked), picked * coef) -- (an ignored row's class 1 may be -inf or NaN)
    if o.reduction == "none" then return -loss end
    if o.reduction == "sum" then return -loss:sum() end
    -- the mean over the weights; with nothing left torch's is 0/0 = NaN and its gradient 0: the
    -- NaN comes as a constant beside a zero scale, so the gradient stays 0 instead of 0 * inf
    local den = coef:sum()
    local none_left = den:eq(0)
    local scale = lm.where(none_left, scalar(0, den), 1 / den)
    return -loss:sum() * scale + lm.where(none_left, scalar(0 / 0, den), scalar(0, den))
  end

  local fused_cross_entropy = F.cross_entropy

  --- torch.nn.functional.cross_entropy(logits, labels [, {weight,
  --- ignore_index = -100, label_smoothing = 0, reduction = 'mean'}]):
  --- nll_loss of log_softmax over the classes' dimension (logits [N, C, ...]
  --- or [C], labels 1-based int32), and with label smoothing eps torch's
  --- (1 - eps) nll + eps / C times the sum over classes of -w_c log p_c
  --- (0 where ignored; 'mean' divides it by nll's denominator). Without
  --- options, or with torch's defaults on [N, C], the fused kernel.
  function F.cross_entropy(logits, labels, opts)
    if opts == nil then return fused_cross_entropy(logits, labels) end
    local fname = "cross_entropy"
    checks.tensor(logits, "the logits", fname)
    checks.tensor(labels, "the labels", fname)
    local o = lc.options(opts, fname, {"weight", "ignore_index", "label_smoothing"}, nil, 2)
    local eps = o.label_smoothing
    -- the fused kernel where no class is ignored: an ignore_index outside the classes (torch's -100) can
    -- only match labels the kernel refuses as out of range, and those go the composed way
    local ignores_a_class = o.ignore_index >= 1 and logits:dim() == 2 and o.ignore_index <= logits:size(2)
    if not o.weight and eps == 0 and o.reduction == "mean" and logits:dim() == 2 and not ignores_a_class then
      local ok, loss = pcall(fused_cross_entropy, logits, labels)
      if ok then return loss end
      if not tostring(loss):find("out of range") then checks.reraise(loss, 2) end
    end
    if logits:dim() == 0 then error("cross_entropy: logits must be [N, C, ...] or [C], got a 0-D tensor", 2) end
    local cdim = logits:dim() == 1 and 1 or 2
    local logp = logits:log_softmax(cdim)
    local ok, nll = pcall(F.nll_loss, logp, labels, {weight = o.weight, ignore_index = o.ignore_index,
      reduction = o.reduction})
    if not ok then
      error(fname .. checks.message(nll):gsub("^nll_loss", ""):gsub("log_probs", "logits"), 2)
    end
    if eps == 0 then return nll end
    local classes = logp:size(cdim)
    local weighted = logp
    if o.weight then
      local shape = {}
      for d = 1, logp:dim() do shape[d] = d == cdim and classes or 1 end
      weighted = logp * o.weight:view(shape)
    end
    local ignored = labels:to(logp:device()):eq(o.ignore_index)
    local smooth = (-weighted:sum(cdim)):masked_fill(ignored, 0)
    if o.reduction == "sum" then
      smooth = smooth:sum()
    elseif o.reduction == "mean" then
      local den = lm.no_grad(function()
        if not o.weight then return (1 - ignored):sum() end
        local safe = labels:to(logp:device()):masked_fill(ignored, 1)
        return (o.weight:index_select(safe:reshape(-1)):view(labels:shape()) * (1 - ignored)):sum()
      end)
      smooth = smooth:sum() / den
    end
    return nll * (1 - eps) + smooth * (eps / classes)
  end

  --- torch.nn.functional.kl_div(input, target [, {reduction = 'mean',
  --- log_target = false}]): target (log target - input), 0 where the target
  --- is 0 (torch's xlogy), input being log-probabilities; with log_target,
  --- exp(target) (target - input). 'batchmean' is the sum divided by the
  --- first dimension (torch's KL divergence per sample); 'mean' averages
  --- over every element, as torch does.
  function F.kl_div(input, target, opts)
    lc.same_shape(input, target, "kl_div", 2)
    local o = lc.options(opts, "kl_div", {"log_target"}, {"mean", "batchmean", "sum", "none"}, 2)
    local loss
    if o.log_target then
      loss = target:exp() * (target - input)
    else
      local zero = scalar(0, target)
      loss = lm.where(target:eq(0), zero, target * target:log()) - target * input
    end
    if o.reduction == "batchmean" then
      local sum = loss:sum()
      return input:dim() > 0 and sum / input:size(1) or sum
    end
    return lc.reduce(loss, o.reduction)
  end
end
