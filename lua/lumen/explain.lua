-- lm.explain: input attributions, for class scores and for the map's own
-- quantities (the position z and the estimated error log10 e_hat), on
-- Lumen's autograd, for any model, any device, a batch at a time.
--
--   local E = lm.explain
--   local a = E.saliency(net, x)                         -- d score / d x
--   local ig, gap = E.integrated_gradients(net, x, {steps = 50})
--   local occ = E.occlusion(net, x, {window = 4, shape = {1, 28, 28}})
--   local cam = E.grad_cam(net, net[3], x, {upsample = true})
--   local why_err = E.log_error(recorder, vae, est, x)   -- which pixels raise e_hat
--   E.figure("why.png", x, {a, why_err}, {labels = {"class", "log10 e_hat"}})
--
-- A method scores each sample with one differentiable number (the model's
-- output for the target class, a map coordinate, log10 e_hat) and
-- attributes it to the input's elements. Models run in evaluation mode with
-- their parameters' gradients switched off (modes, flags and any .grad left
-- as they were), so an explanation never changes a model.
local lm = require 'lumen'

local explain = {}
local checks = require 'lumen.nn.checks'

-- The options each method reads: any other key (a typo, Captum's n_steps or
-- baselines) is an error rather than a silent default.
local function known(...)
  local set = {}
  for _, list in ipairs{...} do for _, k in ipairs(list) do set[k] = true end end
  return set
end
local METHOD_OPTIONS = {
  gradient = {"abs"}, saliency = {"abs"}, input_x_gradient = {},
  smoothgrad = {"samples", "sigma", "seed", "square", "input", "batch_size"},
  integrated_gradients = {"baseline", "rule", "steps", "batch_size"},
}
-- The options of a call that picks its method with opts.method: those of
-- that method only (an option it would not read is refused, as the class
-- methods refuse theirs: steps without method = 'integrated_gradients'
-- would give plain gradients without a word). Raised at the caller of the
-- public function.
local function method_options(opts, fname, own)
  local name = type(opts) == "table" and opts.method or "gradient"
  local list = METHOD_OPTIONS[name] or {}
  return checks.opts(opts, fname, known(own, list), nil, 4)
end

-- ---- running a model for an explanation ------------------------------------------------------------

local function device_of(model)
  return lm.train.device_of(model)
end

-- x as prepare_input takes it, checked before anything else reads it.
local function to_device(t, device)
  if t:device() == device then return t end
  return t:to(device)
end

-- Runs fn() with every module of `models` in evaluation mode, their
-- parameters not requiring gradients and recording switched on; puts each
-- module's mode, each parameter's flag and the recording switch back
-- afterwards, also on an error.
local function run_explaining(models, fn)
  local was = lm.set_grad_enabled(true)
  local results = table.pack(pcall(lm.nn.evaluating, models, fn, {frozen = true}))
  lm.set_grad_enabled(was)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

-- The target classes of a batch of n samples as an int32 tensor [n] on
-- `device`: a number (one class for all), a list or an int32 tensor, or
-- nil for `default` (a function returning the predictions).
local function targets_of(target, n, device, default, who)
  local t
  if target == nil then
    t = default()
  elseif type(target) == "number" then
    if math.type(target) ~= "integer" and target ~= math.floor(target) then
      error(string.format("%s: target must be a class number, got %s", who, tostring(target)), 3)
    end
    t = lm.full({n}, target, "int32")
  elseif type(target) == "table" then
    if #target ~= n then
      error(string.format("%s: target lists %d classes for a batch of %d samples", who, #target, n), 3)
    end
    t = lm.tensor(target, "int32")
  elseif lm.is_tensor(target) then
    if target:numel() ~= n then
      error(string.format("%s: target has %d classes for a batch of %d samples", who, target:numel(), n), 3)
    end
    if target:dtype() == "float32" and target:ne(target:int():float()):sum():item() > 0 then
      error(who .. ": target must hold class numbers, got fractions", 3)
    end
    t = target:view(-1):int()
  else
    error(who .. ": target must be a class number, a list of classes or an int32 tensor, got " .. type(target), 3)
  end
  return to_device(t, device)
end

-- One scalar per row for the class scores: out [reps * n, C] picked at each
-- sample's target (the rows hold `reps` variants of the batch, one after the
-- other).
local function class_scores(out, mask, reps)
  local n, c = mask:size(1), mask:size(2)
  if out:dim() ~= 2 or out:size(2) ~= c then
    error(string.format("explain: the model's output must be [N, classes], got %s", out:shape_string()), 0)
  end
  return (out:view(reps, n, c) * mask:view(1, n, c)):sum(3):view(-1)
end

-- A score function of a classifier: fn(X, reps) -> [rows] and the one-hot
-- mask of the targets. Predictions come from one forward pass without
-- gradients when no target is given.
-- Targets t (int32) must name classes of an output of `classes` columns.
local function check_classes(t, classes, who)
  local tmax, tmin = t:max():item(), t:min():item()
  if tmin < 1 or tmax > classes then
    error(string.format("%s: target classes must be in 1..%d, got %d..%d", who, classes, tmin, tmax), 0)
  end
end

local function classifier_score(model, x, target, who)
  local n, device = x:size(1), device_of(model)
  local t = targets_of(target, n, device, function()
    return lm.no_grad(function() return model(x):argmax(2):view(-1) end)
  end, who)
  local classes = lm.no_grad(function() return model(x:narrow(1, 1, 1)):size(2) end)
  check_classes(t, classes, who)
  local mask = lm.data.one_hot(t, classes):float()
  mask = to_device(mask, device)
  return function(X, reps) return class_scores(model(X), mask, reps or 1) end, t
end

-- ---- gradients of a score function -------------------------------------------------------------------

-- The gradient of sum_r w_r * fn(X)_r with respect to X (a fresh leaf) and
-- the scores; X holds `reps` variants of the n samples; weights [reps] or nil.
local function gradient(fn, X, reps, weights)
  X = X:detach():contiguous():requires_grad(true)
  local s = fn(X, reps)
  if not lm.is_tensor(s) then
    error("explain: the score function must return a tensor (one number per row), got " .. checks.shown(s), 0)
  end
  if s:numel() ~= X:size(1) then
    error(string.format("explain: the score function must give one number per row (%d), got %s", X:size(1),
      s:shape_string()), 0)
  end
  local total
  if weights then
    total = (s:view(reps, -1) * weights:view(reps, 1)):sum()
  else
    total = s:sum()
  end
  total:backward()
  local g = X.grad
  X.grad = nil
  return g, s:detach()
end

-- reps copies of the batch x [n, ...] stacked as [reps * n, ...], each
-- multiplied by coef[r] (a tensor [reps]) and shifted by `shift` (broadcast).
local function stacked(x, reps, coef, shift)
  local shape = x:shape()
  local ones = {reps}
  for _ = 1, #shape do ones[#ones + 1] = 1 end
  local out = x:unsqueeze(1) * coef:view(ones)
  if shift then out = out + shift end
  local flat = {reps * shape[1]}
  for i = 2, #shape do flat[#flat + 1] = shape[i] end
  return out:reshape(flat)
end

local function rows_per_pass(opts, n, total)
  local bs = opts.batch_size
  if bs ~= nil and not (checks.is_whole(bs) and bs >= 1) then
    error("explain: batch_size must be a positive integer (rows a pass), got " .. checks.shown(bs), 0)
  end
  local per = math.max(1, (bs or 1024) // n)
  return math.min(per, total)
end

-- The device and shape bookkeeping of the public functions: x on the
-- models' device, the result back on x's.
local function prepare_input(x, device, who)
  checks.tensor(x, "x (a batch)", "lm.explain." .. who, 4)
  if x:dim() < 2 then
    error("lm.explain." .. who .. ": x must be a batch [N, ...], got shape " .. x:shape_string(), 3)
  end
  -- detached: attributions are results, not part of the caller's graph when x requires grad
  return to_device(x:float(), device):detach()
end

local function back(t, like)
  return t:device() == like:device() and t or t:to(like:device())
end

-- ---- the methods on a score function -----------------------------------------------------------------

local function saliency_of(fn, x, opts)
  local g = gradient(fn, x, 1)
  if opts.abs then g = g:abs() end
  return g
end

local function input_x_gradient_of(fn, x)
  return x * gradient(fn, x, 1)
end

local function smoothgrad_of(fn, x, opts)
  local samples = opts.samples or 25
  if math.type(samples) ~= "integer" or samples < 1 then
    error("smoothgrad: samples must be an integer >= 1, got " .. tostring(samples), 0)
  end
  local sigma = opts.sigma
  if sigma ~= nil and not (type(sigma) == "number" and sigma >= 0 and sigma < math.huge) then
    error("smoothgrad: sigma must be a number >= 0 (the noise's standard deviation), got " .. checks.shown(sigma), 0)
  end
  if sigma == nil then
    sigma = 0.15 * (x:max():item() - x:min():item())
  end
  local seed, offset
  if opts.seed then
    seed, offset = lm.rng_state()
    lm.manual_seed(opts.seed)
  end
  local n, total, total_sq = x:size(1), nil, nil
  local per = rows_per_pass(opts, n, samples)
  local ok, err = pcall(function()
    local done = 0
    while done < samples do
      local k = math.min(per, samples - done)
      local X = stacked(x, k, lm.ones(k, x:device()))
      X = X + lm.randn(X:shape(), x:device()) * sigma
      local g = gradient(fn, X, k)
      local shape = x:shape()
      table.insert(shape, 1, k)
      g = g:view(shape)
      if opts.square then -- SmoothGrad-SQ: the mean of the squared gradients
        local sq = (g * g):sum(1)
        total_sq = total_sq and total_sq + sq or sq
      else
        g = g:sum(1)
        total = total and total + g or g
      end
      done = done + k
    end
  end)
  if seed then lm.set_rng_state(seed, offset) end
  if not ok then error(err, 0) end
  if opts.square then return total_sq / samples end
  local mean = total / samples
  if opts.input then return mean * x end
  return mean
end

-- Nodes in [0, 1] and weights (summing to 1) of the quadrature rules over
-- the path of integrated gradients, with `steps` evaluations.
local RULES = {}

function RULES.riemann_left(m)
  local a, w = {}, {}
  for k = 1, m do a[k], w[k] = (k - 1) / m, 1 / m end
  return a, w
end

function RULES.riemann_right(m)
  local a, w = {}, {}
  for k = 1, m do a[k], w[k] = k / m, 1 / m end
  return a, w
end

function RULES.riemann_middle(m)
  local a, w = {}, {}
  for k = 1, m do a[k], w[k] = (k - 0.5) / m, 1 / m end
  return a, w
end

function RULES.riemann_trapezoid(m)
  if m < 2 then error("integrated_gradients: the trapezoid rule needs steps >= 2", 0) end
  local a, w = {}, {}
  for k = 1, m do a[k], w[k] = (k - 1) / (m - 1), 1 / (m - 1) end
  w[1], w[m] = w[1] / 2, w[m] / 2
  return a, w
end

-- Gauss-Legendre: the roots of P_m by Newton's method from Chebyshev-like
-- guesses, mapped from [-1, 1] to [0, 1].
function RULES.gauss_legendre(m)
  local a, w = {}, {}
  for i = 1, m do
    local z = math.cos(math.pi * (i - 0.25) / (m + 0.5))
    local pp
    for _ = 1, 100 do
      local p1, p2 = 1, 0
      for j = 1, m do
        local p3 = p2
        p2 = p1
        p1 = ((2 * j - 1) * z * p2 - (j - 1) * p3) / j
      end
      pp = m * (z * p1 - p2) / (z * z - 1)
      local dz = p1 / pp
      z = z - dz
      if math.abs(dz) < 1e-15 then break end
    end
    a[i], w[i] = (1 - z) / 2, 1 / ((1 - z * z) * pp * pp)
  end
  return a, w
end

--- The quadrature rule of integrated gradients: nodes in [0, 1] and weights
--- (summing to 1) for `steps` evaluations.
function explain.quadrature(rule, steps)
  local f = RULES[rule]
  if not f then
    local names = {}
    for k in pairs(RULES) do names[#names + 1] = k end
    table.sort(names)
    error("integrated_gradients: rule must be one of " .. table.concat(names, ", ") .. ", got " .. tostring(rule), 2)
  end
  if math.type(steps) ~= "integer" or steps < 1 then
    error("integrated_gradients: steps must be a positive integer, got " .. tostring(steps), 2)
  end
  return f(steps)
end

local function baseline_of(baseline, x, who)
  if baseline == nil then return lm.zeros(x:shape(), x:device()) end
  if type(baseline) == "number" then return lm.full(x:shape(), baseline, "float32", x:device()) end
  if not lm.is_tensor(baseline) then error(who .. ": baseline must be a number or a tensor", 0) end
  -- detached: attributions never require gradients, whatever the baseline does
  baseline = to_device(baseline:float(), x:device()):detach()
  -- x's shape, or one sample's (with or without a leading 1): a shape that only has as many elements would
  -- pair the wrong pixels
  local one, sample = x:shape(), x:shape()
  one[1] = 1
  table.remove(sample, 1)
  local shape = table.concat(baseline:shape(), "x")
  if shape == table.concat(x:shape(), "x") then return baseline:contiguous() end
  if shape == table.concat(one, "x") or shape == table.concat(sample, "x") then
    return baseline:reshape(one):expand(x:shape()):contiguous()
  end
  error(string.format("%s: baseline of shape %s fits neither x (%s) nor one sample", who, baseline:shape_string(),
    x:shape_string()), 0)
end

local function integrated_gradients_of(fn, x, opts)
  local steps, rule = opts.steps or 50, opts.rule or "gauss_legendre"
  local alphas, weights = explain.quadrature(rule, steps)
  local base = baseline_of(opts.baseline, x, "integrated_gradients")
  local diff = x - base
  local n = x:size(1)
  local per = rows_per_pass(opts, n, steps)
  local total
  local shape = x:shape()
  table.insert(shape, 1, 0)
  local done = 0
  while done < steps do
    local k = math.min(per, steps - done)
    local a, w = {}, {}
    for j = 1, k do a[j], w[j] = alphas[done + j], weights[done + j] end
    local at = to_device(lm.tensor(a), x:device())
    local X = lm.no_grad(function() return stacked(diff, k, at, base:unsqueeze(1)) end)
    local g = gradient(fn, X, k, to_device(lm.tensor(w), x:device()))
    shape[1] = k
    g = g:view(shape):sum(1)
    total = total and total + g or g
    done = done + k
  end
  local attr = diff * total
  local gap = lm.no_grad(function()
    local ends = fn(lm.cat({x, base}, 1), 2):view(2, n)
    return attr:view(n, -1):sum(2) - (ends[1] - ends[2])
  end)
  return attr, gap
end

local METHODS = {
  gradient = function(fn, x, opts) return saliency_of(fn, x, opts) end,
  saliency = function(fn, x, opts) return saliency_of(fn, x, opts) end,
  input_x_gradient = function(fn, x) return input_x_gradient_of(fn, x) end,
  smoothgrad = smoothgrad_of,
  integrated_gradients = integrated_gradients_of,
}

--- Attributions of any differentiable per-sample score: fn(X, reps) takes
--- rows X holding `reps` variants of the batch x [N, ...] one after the
--- other (row (r - 1) * N + i is a variant of sample i) and returns one
--- score per row. opts.method: 'gradient' (default), 'input_x_gradient',
--- 'smoothgrad' or 'integrated_gradients', with that method's options. The
--- models whose parameters fn uses go in opts.models (evaluation mode,
--- parameters' gradients off for the call). Returns the attributions (and
--- the completeness gap for integrated gradients).
function explain.attribute(fn, x, opts)
  checks.callable(fn, "fn", "lm.explain.attribute")
  checks.tensor(x, "x (a batch)", "lm.explain.attribute")
  opts = method_options(opts, "attribute", {"method", "models"})
  local method = METHODS[opts.method or "gradient"]
  if not method then
    error("attribute: method must be 'gradient', 'input_x_gradient', 'smoothgrad' or 'integrated_gradients', got "
      .. tostring(opts.method), 2)
  end
  local models = opts.models or {}
  checks.table(models, "opts.models", "lm.explain.attribute")
  for i, m in ipairs(models) do checks.module(m, "opts.models[" .. i .. "]", "lm.explain.attribute") end
  local device = models[1] and device_of(models[1]) or x:device()
  local xd = prepare_input(x, device, "attribute")
  return run_explaining(models, function()
    local a, gap = method(fn, xd, opts)
    return back(a, x), gap and back(gap, x)
  end)
end

-- ---- class attributions ----------------------------------------------------------------------------------

local function class_method(name, method)
  local options = known({"target"}, METHOD_OPTIONS[name])
  local fname = "lm.explain." .. name
  return function(model, x, opts)
    checks.module(model, "model", fname)
    opts = checks.opts(opts, name, options)
    local xd = prepare_input(x, device_of(model), name)
    return run_explaining({model}, function()
      local fn = classifier_score(model, xd, opts.target, name)
      local a, gap = method(fn, xd, opts)
      return back(a, x), gap and back(gap, x)
    end)
  end
end

--- The gradient of the target class's output with respect to the input
--- (opts.abs: its magnitude). opts.target: a class for all samples, one per
--- sample (list or int32 tensor), or nil for the prediction.
explain.saliency = class_method("saliency", saliency_of)

--- The input times its gradient.
explain.input_x_gradient = class_method("input_x_gradient", input_x_gradient_of)

--- SmoothGrad: the mean gradient over opts.samples (25) noisy copies of each
--- input, Gaussian noise of standard deviation opts.sigma (default 0.15 x
--- the batch's value range); opts.seed draws the noise from a seeded stream
--- (the global one is left as it was); opts.square (SmoothGrad-SQ: the mean of
--- the squared gradients).
explain.smoothgrad = class_method("smoothgrad", smoothgrad_of)

--- Integrated gradients (Sundararajan et al. 2017): (x - baseline) times the
--- path integral of the gradient from the baseline (opts.baseline: a number,
--- 0 by default, or a tensor of x's or one sample's shape) to x, by
--- opts.rule ('gauss_legendre' (default), 'riemann_trapezoid',
--- 'riemann_left', 'riemann_right', 'riemann_middle') with opts.steps (50)
--- gradient evaluations, opts.batch_size (1024) rows per pass. Returns the
--- attributions and the completeness gap per sample [N]:
--- sum(attributions) - (f(x) - f(baseline)).
explain.integrated_gradients = class_method("integrated_gradients", integrated_gradients_of)

-- ---- occlusion ---------------------------------------------------------------------------------------------

-- a window's or a stride's size: a positive whole number, or {h, w} of them
local function pair(v, who, what)
  local h, w
  if type(v) == "number" then h, w = v, v elseif type(v) == "table" and #v == 2 then h, w = v[1], v[2] end
  if not (checks.is_whole(h) and checks.is_whole(w) and h >= 1 and w >= 1) then
    local shown = checks.shown(v)
    if type(v) == "table" then
      local parts = {}
      for i, e in ipairs(v) do parts[i] = tostring(e) end
      shown = "{" .. table.concat(parts, ", ") .. "}"
    end
    error(string.format("%s: %s must be a positive whole number or {h, w} of them, got %s", who, what, shown), 0)
  end
  return math.tointeger(h), math.tointeger(w)
end

--- Occlusion (Zeiler and Fergus 2014): every opts.window ({h, w} or a
--- number; for flat samples a length) slid by opts.stride (the window by
--- default) over the last two dimensions of each sample (every channel at
--- once) is set to opts.baseline (0), and each element is attributed the
--- mean drop of the target's output over the windows covering it (0 where
--- none does). opts.shape views flat samples as an image ({1, 28, 28} for
--- MNIST rows of 784). opts.target, opts.batch_size as for saliency.
function explain.occlusion(model, x, opts)
  checks.module(model, "model", "lm.explain.occlusion")
  opts = checks.opts(opts, "occlusion", known{"target", "window", "stride", "baseline", "shape", "batch_size"})
  local who = "occlusion"
  local xd = prepare_input(x, device_of(model), who)
  local n = xd:size(1)
  local sample_shape = opts.shape or xd:shape()
  if opts.shape then
    local count = 1
    for _, s in ipairs(opts.shape) do count = count * s end
    if count * n ~= xd:numel() then
      error(string.format("occlusion: shape {%s} does not hold a sample of %s", table.concat(opts.shape, ", "),
        xd:shape_string()), 2)
    end
  else
    table.remove(sample_shape, 1)
  end
  local dims = #sample_shape
  local H, W = 1, sample_shape[dims]
  if dims >= 2 then H = sample_shape[dims - 1] end
  local wh, ww
  if opts.window == nil then error("occlusion: needs opts.window", 2) end
  local sh, sw
  if dims == 1 then -- flat samples: lengths
    for _, k in ipairs{"window", "stride"} do
      local v = opts[k]
      if v ~= nil and not (checks.is_whole(v) and v >= 1) then
        error(string.format("occlusion: %s must be a positive whole number (a length: the samples are flat; "
          .. "opts.shape views them as images), got %s", k, checks.shown(v)), 2)
      end
    end
    wh, ww = 1, math.tointeger(opts.window)
    sh, sw = 1, math.tointeger(opts.stride or ww)
  else
    wh, ww = pair(opts.window, who, "window")
    sh, sw = pair(opts.stride or {wh, ww}, who, "stride")
  end
  if opts.baseline ~= nil and type(opts.baseline) ~= "number" and not lm.is_tensor(opts.baseline) then
    error("occlusion: baseline must be a number or a tensor, got " .. checks.shown(opts.baseline), 2)
  end
  if wh > H or ww > W or wh < 1 or ww < 1 then
    error(string.format("occlusion: window %dx%d does not fit samples of %dx%d", wh, ww, H, W), 2)
  end
  local positions = {}
  for r = 1, H - wh + 1, sh do
    for c = 1, W - ww + 1, sw do positions[#positions + 1] = {r, c} end
  end
  local baseline = opts.baseline or 0
  return run_explaining({model}, function()
    local fn = classifier_score(model, xd, opts.target, who)
    local s0 = lm.no_grad(function() return fn(xd, 1) end)
    local img = {1, n}
    for _, s in ipairs(sample_shape) do img[#img + 1] = s end
    local xi = xd:reshape(img)                                     -- [1, n, ..., H, W]
    local base = baseline
    if lm.is_tensor(base) then base = baseline_of(base, xd, who):reshape(img) end
    local per = rows_per_pass(opts, n, #positions)
    local sums = lm.zeros(n, H * W, xd:device())
    local counts = lm.zeros(H * W, xd:device())
    local done = 0
    lm.no_grad(function()
      while done < #positions do
        local k = math.min(per, #positions - done)
        local mask = lm.zeros(k, H, W)
        for j = 1, k do
          local p = positions[done + j]
          mask[j]:narrow(1, p[1], wh):narrow(2, p[2], ww):fill_(1)
        end
        mask = to_device(mask, xd:device())
        local mshape = {k, 1}
        for _ = 1, dims - 2 do mshape[#mshape + 1] = 1 end
        if dims >= 2 then mshape[#mshape + 1] = H end
        mshape[#mshape + 1] = W
        local m = mask:view(mshape)
        local X = xi + (base - xi) * m                             -- [k, n, ..., H, W]
        local rows = x:shape()
        rows[1] = k * n
        local s = fn(X:reshape(rows), k):view(k, n)
        local drop = s0:view(1, n) - s                             -- [k, n]
        local flat = mask:view(k, H * W)
        sums:add_(lm.autocast(false, lm.matmul, drop:t(), flat)) -- sums: float32 under autocast too
        counts:add_(flat:sum(1))
        done = done + k
      end
    end)
    local per_pixel = sums / counts:clamp(1, math.huge):view(1, -1)     -- [n, H * W]
    local full = {n}
    for i = 1, dims do full[#full + 1] = (i >= dims - 1) and sample_shape[i] or 1 end
    if dims == 1 then full = {n, W} end
    local expanded = {n}
    for _, s in ipairs(sample_shape) do expanded[#expanded + 1] = s end
    local a = per_pixel:view(full):expand(expanded):contiguous():reshape(x:shape())
    return back(a, x)
  end)
end

-- ---- Grad-CAM ---------------------------------------------------------------------------------------------

local function resolve_layer(model, layer, who)
  if type(layer) == "string" then
    for _, pair_ in ipairs(model:named_modules()) do
      if pair_[1] == layer then return pair_[2] end
    end
    error(string.format("%s: the model has no module named '%s' (names as net:named_modules() gives them)", who,
      layer), 3)
  end
  if type(layer) ~= "table" or not layer.register_forward_hook then
    error(who .. ": layer must be a module of the model or its name", 3)
  end
  return layer
end

local function upsample_to(cam, x, opts, who)
  local H, W
  if opts.size then
    H, W = opts.size[1], opts.size[2]
  elseif opts.shape then
    H, W = opts.shape[#opts.shape - 1], opts.shape[#opts.shape]
  elseif x:dim() >= 3 then
    H, W = x:size(x:dim() - 1), x:size(x:dim())
  else
    error(who .. ": upsample needs image samples, opts.shape ({1, 28, 28}) or opts.size ({h, w})", 3)
  end
  local n, h, w = cam:size(1), cam:size(2), cam:size(3)
  local up = lm.image.resize(cam:to("cpu"):contiguous():view(n, 1, h, w), H, W)
  return up:view(n, H, W)
end

local function cam_method(name, weights_of)
  local fname = "lm.explain." .. name
  return function(model, layer, x, opts)
    checks.module(model, "model", fname)
    opts = checks.opts(opts, name, known{"target", "upsample", "shape", "size"})
    local xd = prepare_input(x, device_of(model), name)
    local module = resolve_layer(model, layer, name)
    local cam = run_explaining({model}, function()
      local captured
      local handle = module:register_forward_hook(function(_, _, output)
        if lm.is_tensor(output) and output:requires_grad() then output:retain_grad() end
        captured = output
      end)
      local ok, err = pcall(function()
        local X = xd:detach():contiguous():requires_grad(true)
        local out = model(X)
        local t = targets_of(opts.target, xd:size(1), device_of(model), function()
          return lm.no_grad(function() return out:argmax(2):view(-1) end)
        end, name)
        check_classes(t, out:size(2), name)
        local mask = lm.data.one_hot(t, out:size(2)):float()
        class_scores(out, to_device(mask, out:device()), 1):sum():backward()
      end)
      handle:remove()
      if not ok then error(err, 0) end
      if not lm.is_tensor(captured) or captured:dim() ~= 4 then
        error(string.format("%s: the layer must output feature maps [N, C, h, w], got %s", name,
          lm.is_tensor(captured) and captured:shape_string() or type(captured)), 0)
      end
      local A, G = captured:detach(), captured.grad
      if not G then error(name .. ": no gradient reached the layer (is it used for the output?)", 0) end
      return lm.no_grad(function()
        local n, k = A:size(1), A:size(2)
        local w = weights_of(A, G)                                   -- [n, k]
        return (A * w:view(n, k, 1, 1)):sum(2):relu()
      end)
    end)
    if opts.upsample then cam = upsample_to(cam, x, opts, name) end
    return back(cam, x)
  end
end

--- Grad-CAM (Selvaraju et al. 2017) on `layer` (a module of the model, or
--- its name in net:named_modules()), which must output feature maps
--- [N, K, h, w]: relu(sum_k w_k A_k) with w_k the spatial mean of the
--- target output's gradient d y_c / d A_k. Returns [N, h, w], or with
--- opts.upsample = true [N, H, W] at the input's size (bilinear,
--- lm.image.resize; opts.shape or opts.size for flat inputs).
explain.grad_cam = cam_method("grad_cam", function(A, G)
  return G:view(A:size(1), A:size(2), -1):mean(3)
end)

--- Grad-CAM++ (Chattopadhyay et al. 2018, Eq. 19 with the exponential
--- score): w_k = sum_ij alpha_ij relu(g_ij) with alpha = g^2 / (2 g^2 +
--- sum_ab A_ab g^3) (0 where the denominator is 0), g = d y_c / d A_k.
explain.grad_cam_pp = cam_method("grad_cam_pp", function(A, G)
  local n, k = A:size(1), A:size(2)
  local g2 = G * G
  local g3 = g2 * G
  local sum_a = A:view(n, k, -1):sum(3):view(n, k, 1, 1)
  local denom = g2 * 2 + g3 * sum_a
  local nonzero = denom:ne(0)
  local safe = lm.where(nonzero, denom, lm.ones(1, denom:device()))
  local alpha = g2 / safe * nonzero
  return (alpha * G:relu()):view(n, k, -1):sum(3)
end)

-- ---- the map's quantities -----------------------------------------------------------------------------------

-- The latents z [rows, 2] of the rows X through classifier, recording and
-- encoder, differentiable with respect to X (Recorder:capture keeps the
-- graph; vae:encode standardises as the mapping does).
local function latents(recorder, vae, X)
  local _, h = recorder:capture(function() return recorder.model(X) end)
  return vae:encode(h)
end

local function map_method_of(opts, who)
  local name = opts.method or "gradient"
  local m = METHODS[name]
  if not m then
    error(who .. ": method must be 'gradient', 'input_x_gradient', 'smoothgrad' or 'integrated_gradients', got "
      .. tostring(name), 3)
  end
  return m
end

--- Which input elements move each sample along the map's axes: the
--- attribution of z[axis] (through classifier, recording and encoder) by
--- opts.method ('gradient' (default), 'input_x_gradient', 'smoothgrad',
--- 'integrated_gradients', with their options). With opts.axis (1 or 2)
--- returns that axis's attributions (and the completeness gap for
--- integrated gradients); without it both axes': a1, a2 (, gap1, gap2).
function explain.map_position(recorder, vae, x, opts)
  checks.recorder(recorder, "recorder", "lm.explain.map_position")
  checks.autoencoder(vae, "vae", "lm.explain.map_position")
  opts = method_options(opts, "map_position", {"method", "axis"})
  local method = map_method_of(opts, "map_position")
  local axes = opts.axis and {opts.axis} or {1, 2}
  for _, axis in ipairs(axes) do
    if axis ~= 1 and axis ~= 2 then error("map_position: axis must be 1 or 2, got " .. tostring(axis), 2) end
  end
  local xd = prepare_input(x, device_of(recorder.model), "map_position")
  return run_explaining({recorder.model, vae}, function()
    local attrs, gaps = {}, {}
    for i, axis in ipairs(axes) do
      local a, gap = method(function(X) return latents(recorder, vae, X):select(2, axis) end, xd, opts)
      attrs[i], gaps[i] = back(a, x), gap and back(gap, x)
    end
    if #axes == 1 then return attrs[1], gaps[1] end
    if gaps[1] then return attrs[1], attrs[2], gaps[1], gaps[2] end
    return attrs[1], attrs[2]
  end)
end

--- Which input elements raise the estimated error: the attribution of
--- log10 e_hat = est(vae:encode(recording(x))) by opts.method (as for
--- map_position), one backward pass through estimator, encoder, recording
--- and classifier. Returns the attributions (and the gap for integrated
--- gradients).
function explain.log_error(recorder, vae, est, x, opts)
  checks.recorder(recorder, "recorder", "lm.explain.log_error")
  checks.autoencoder(vae, "vae", "lm.explain.log_error")
  checks.module(est, "est", "lm.explain.log_error")
  opts = method_options(opts, "log_error", {"method"})
  local method = map_method_of(opts, "log_error")
  local xd = prepare_input(x, device_of(recorder.model), "log_error")
  return run_explaining({recorder.model, vae, est}, function()
    local a, gap = method(function(X)
      local z = latents(recorder, vae, X)
      return est(to_device(z, device_of(est))):view(-1)
    end, xd, opts)
    return back(a, x), gap and back(gap, x)
  end)
end

-- ---- figures -------------------------------------------------------------------------------------------------

local figures = require 'lumen.explain_figure'
explain.colorize = figures.colorize
explain.figure = figures.figure
explain.diverging = figures.diverging
require('lumen.explain_path')(explain)

return explain
