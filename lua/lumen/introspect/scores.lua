-- Error scores of a mapped classifier beside its own confidence
-- (docs/analyses/error-scores.md): the classifier's logits and the
-- confidences read from them, an estimator that standardises its inputs
-- (so it can see [z, max_logit] or a wide representation), combinations of
-- scores fitted on one set and applied to another (a rank average and a
-- logistic regression), out-of-fold predictions for anything fitted on the
-- set it is judged on, and a paired bootstrap of the measures.
--
-- Every score here is an error score: higher means "more likely wrong".
--
--   local S = require 'lumen.introspect.scores'
--   local c = S.confidences(S.logits(net, x))          -- max_logit, margin, max_softmax
--   local m = S.fit_logistic({e_val, S.negated(c_val.max_logit)}, wrong_val)
--   local r = S.evaluate(S.apply(m, {e_test, S.negated(c_test.max_logit)}), wrong_test)
local lm = require 'lumen'
local I = require 'lumen.introspect'
local nn = lm.nn

local S = {}

local function check_list(who, what, v)
  if type(v) ~= "table" then error(string.format("%s: %s must be a list of numbers", who, what), 3) end
end

-- The lists of `features` (a list of lists) all as long as `positives`.
local function check_features(who, features, positives)
  check_list(who, "features", features)
  check_list(who, "positives", positives)
  if #features == 0 then error(who .. ": needs at least one feature", 3) end
  for k, f in ipairs(features) do
    check_list(who, "feature " .. k, f)
    if #f ~= #positives then
      error(string.format("%s: feature %d has %d values, positives %d", who, k, #f, #positives), 3)
    end
  end
  local pos = 0
  for _, p in ipairs(positives) do if p then pos = pos + 1 end end
  if pos == 0 or pos == #positives then error(who .. ": the fit set needs both positives and negatives", 3) end
end

-- ---- the classifier's own confidence ---------------------------------------------------------------

--- The last module of net, an nn.Sequential ending in nn.Sigmoid or
--- nn.Softmax, whose input is the logits; otherwise an error naming `who`
--- at `level`.
function S.final_activation(net, who, level)
  local last = net.__name == "nn.Sequential" and net:size() > 0 and net[net:size()] or nil
  if not (last and (last.__name == "nn.Sigmoid" or last.__name == "nn.Softmax")) then
    error(who .. ": the network must be an nn.Sequential ending in nn.Sigmoid or nn.Softmax", level or 2)
  end
  return last
end

--- The logits [N, C] of a network that is an nn.Sequential ending in
--- nn.Sigmoid or nn.Softmax (every module but the last), o.batch (1000)
--- rows at a time (float32 images, or bytes read as x / 255), in evaluation
--- mode, without gradients, on the host. No rows give [0, C].
function S.logits(net, x, o)
  o = o or {}
  S.final_activation(net, "scores.logits", 3)
  local batch, n = o.batch or 1000, x:size(1)
  local device = lm.train.device_of(net)
  local out
  lm.nn.evaluating(net, function() return lm.no_grad(function()
    for s = 1, n, batch do
      local len = math.min(batch, n - s + 1)
      local h = lm.data.to_float(x:narrow(1, s, len)) -- images kept as bytes become [0, 1]
      if h:device() ~= device then h = h:to(device) end
      for i = 1, net:size() - 1 do h = net[i](h) end
      out = out or lm.zeros(n, h:size(2))
      out:narrow(1, s, len):copy_(h:to("cpu"))
    end
  end) end)
  if not out then -- no rows: the width from one sample of zeros, for [0, C]
    local shape = x:shape()
    shape[1] = 1
    local h = lm.data.to_float(lm.zeros(shape, x:dtype())):to(device)
    lm.nn.evaluating(net, function() return lm.no_grad(function()
      for i = 1, net:size() - 1 do h = net[i](h) end
    end) end)
    out = lm.zeros(0, h:size(2))
  end
  return out
end

--- Confidences (higher = more confident) of each row of logits [N, C], as
--- lists computed in double: max_logit (the largest logit: the order of the
--- largest sigmoid, I.baseline_scores' score for Net1), margin (largest
--- minus second largest logit) and max_softmax (the largest softmax
--- probability of the logits, as its logarithm: log p = -log1p(the sum of
--- exp(l_j - l_top) over the other classes). The probability itself rounds
--- to 1.0 in double once the others are 37 below the top, and such rows
--- would tie; its logarithm keeps them apart, in the same order.
function S.confidences(logits)
  if not lm.is_tensor(logits) or logits:dim() ~= 2 or logits:size(2) < 2 then
    error("scores.confidences: logits must be a tensor [N, C] with C >= 2", 2)
  end
  local max_logit, margin, max_softmax = {}, {}, {}
  for i, row in ipairs(logits:totable()) do
    local top, second, at = -math.huge, -math.huge, 0
    for j, v in ipairs(row) do
      if v > top then top, second, at = v, top, j elseif v > second then second = v end
      -- a NaN logit makes the row's confidences NaN (as torch's max), so the
      -- ranking measures refuse it instead of scoring the other logits
      if v ~= v then top, second, at = v, v, j break end
    end
    local rest = 0 -- the other classes' exp(l_j - l_top): 1 / (1 + rest) is the top probability
    for j, v in ipairs(row) do if j ~= at then rest = rest + math.exp(v - top) end end
    -- log1p for small rest (1 + 1e-17 is 1): Lua has none, so its series where it matters
    local log1p = rest < 1e-5 and rest - rest * rest / 2 + rest ^ 3 / 3 or math.log(1 + rest)
    max_logit[i], margin[i], max_softmax[i] = top, top - second, -log1p
  end
  return {max_logit = max_logit, margin = margin, max_softmax = max_softmax}
end

--- A new list with every value negated (a confidence as an error score).
function S.negated(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = -v end
  return out
end

-- ---- measures ---------------------------------------------------------------------------------------

--- The two measures of the main experiment for an error score (higher =
--- more likely wrong) and a list of booleans `wrong`: auroc_correct (the
--- minus score separating correct from wrong, I.auroc) and aupr_error
--- (finding the wrong by the score, I.aupr).
function S.evaluate(score, wrong)
  check_list("scores.evaluate", "score", score)
  check_list("scores.evaluate", "wrong", wrong)
  if #score ~= #wrong then
    error(string.format("scores.evaluate: %d scores for %d samples", #score, #wrong), 2)
  end
  local correct = {}
  for i, w in ipairs(wrong) do correct[i] = not w end
  return {auroc_correct = I.auroc(S.negated(score), correct), aupr_error = I.aupr(score, wrong)}
end

-- A small seeded generator (a 64-bit LCG) so that folds and resamples are
-- reproducible without touching lm's or math.random's streams.
local function generator(seed)
  local whole = math.tointeger(seed or 0)
  if not whole then error("scores: seed must be an integer, got " .. tostring(seed), 3) end
  local x = whole * 2654435761 + 12345
  return function(n) -- an integer in 1..n
    x = x * 6364136223846793005 + 1442695040888963407
    return (x >> 33) % n + 1
  end
end

--- Paired bootstrap of two error scores a and b on the same samples:
--- o.resamples (1000) draws of the samples with replacement (o.seed), and
--- for each measure of S.evaluate the 2.5 %, 50 % and 97.5 % quantiles of
--- measure(a) - measure(b). A resample with no error (or no correct
--- sample) has no such measure: it is drawn again, and `redrawn` counts
--- those. Returns {auroc_correct = {lo, mid, hi}, aupr_error = {lo, mid,
--- hi}, redrawn = n}.
function S.paired_bootstrap(a, b, wrong, o)
  o = o or {}
  local resamples = o.resamples or 1000
  if math.type(resamples) ~= "integer" or resamples < 1 then
    error("scores.paired_bootstrap: resamples must be an integer >= 1, got " .. tostring(resamples), 2)
  end
  if #a ~= #wrong or #b ~= #wrong then
    error(string.format("scores.paired_bootstrap: %d and %d scores for %d samples", #a, #b, #wrong), 2)
  end
  local rand, n = generator(o.seed or 1), #wrong
  local errors = 0
  for i = 1, n do if wrong[i] then errors = errors + 1 end end
  if errors == 0 or errors == n then
    error(string.format("scores.paired_bootstrap: %d of %d samples are errors: nothing to tell apart", errors, n), 2)
  end
  local diffs = {auroc_correct = {}, aupr_error = {}}
  local redrawn, r = 0, 1
  while r <= resamples do
    local sa, sb, sw, drawn_errors = {}, {}, {}, 0
    for i = 1, n do
      local j = rand(n)
      sa[i], sb[i], sw[i] = a[j], b[j], wrong[j]
      if wrong[j] then drawn_errors = drawn_errors + 1 end
    end
    if drawn_errors == 0 or drawn_errors == n then
      redrawn = redrawn + 1
      if redrawn > 100 * resamples then
        error("scores.paired_bootstrap: almost every resample has no error or no correct sample", 2)
      end
    else
      local ma, mb = S.evaluate(sa, sw), S.evaluate(sb, sw)
      for k, list in pairs(diffs) do list[r] = ma[k] - mb[k] end
      r = r + 1
    end
  end
  local out = {redrawn = redrawn}
  for k, list in pairs(diffs) do
    table.sort(list)
    local function q(p) return list[math.max(1, math.min(#list, math.floor(p * #list + 0.5)))] end
    out[k] = {q(0.025), q(0.5), q(0.975)}
  end
  return out
end

-- ---- combinations fitted on one set ------------------------------------------------------------------

--- The empirical distribution function of `reference` at each of `values`
--- (mid-rank: ties count one half), a list in [0, 1].
function S.ecdf(reference, values)
  local sorted = {}
  for i, v in ipairs(reference) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  local function below(v, strict) -- how many reference values are < v (strict) or <= v
    local lo, hi = 1, n + 1
    while lo < hi do
      local mid = (lo + hi) // 2
      if (strict and sorted[mid] < v) or (not strict and sorted[mid] <= v) then lo = mid + 1 else hi = mid end
    end
    return lo - 1
  end
  local out = {}
  for i, v in ipairs(values) do out[i] = (below(v, true) + below(v, false)) / 2 / n end
  return out
end

local function objective(name)
  if name == "auroc" then return function(s, p) return S.evaluate(s, p).auroc_correct end end
  if name == "aupr" then return function(s, p) return S.evaluate(s, p).aupr_error end end
  if name == "sum" then
    return function(s, p)
      local m = S.evaluate(s, p)
      return m.auroc_correct + m.aupr_error
    end
  end
  error("scores: measure must be 'auroc', 'aupr' or 'sum', got " .. tostring(name), 3)
end

--- A rank average of two error scores: each mapped to its empirical
--- distribution on the fit set, then w * F1(s1) + (1 - w) * F2(s2), with w
--- from 0 to 1 in steps of o.step (0.05) chosen to maximise o.measure
--- ('sum' of AUROC and AUPR, the default, 'auroc' or 'aupr') on the fit set.
--- The grid holds both ends, so on the fit set the average is never worse
--- than its better input. Returns a model for S.apply.
function S.fit_rank_average(features, positives, o)
  o = o or {}
  check_features("fit_rank_average", features, positives)
  if #features ~= 2 then error("fit_rank_average: needs exactly two features, got " .. #features, 2) end
  local measure, step = objective(o.measure or "sum"), o.step or 0.05
  local m = {kind = "rank_average", reference = {features[1], features[2]}}
  local q1, q2 = S.ecdf(features[1], features[1]), S.ecdf(features[2], features[2])
  if type(step) ~= "number" or not (step > 0 and step <= 1) then
    error("fit_rank_average: step must be a number in (0, 1], got " .. tostring(step), 2)
  end
  local best, best_w = -math.huge, nil
  -- 0, step, 2 step, ... and 1 itself (a step that does not divide 1 would miss it)
  local count = math.ceil(1 / step - 1e-9)
  for k = 0, count do
    local w = math.min(1, k * step)
    local s = {}
    for i = 1, #q1 do s[i] = w * q1[i] + (1 - w) * q2[i] end
    local v = measure(s, positives)
    if v > best then best, best_w = v, w end
  end
  m.weight = best_w
  return m
end

-- Solves A x = b (A [k, k] as nested lists) by Gaussian elimination with
-- partial pivoting.
local function solve(A, b)
  local k = #b
  local M = {}
  for i = 1, k do
    M[i] = {}
    for j = 1, k do M[i][j] = A[i][j] end
    M[i][k + 1] = b[i]
  end
  for c = 1, k do
    local p = c
    for r = c + 1, k do if math.abs(M[r][c]) > math.abs(M[p][c]) then p = r end end
    M[c], M[p] = M[p], M[c]
    for r = c + 1, k do
      local f = M[r][c] / M[c][c]
      for j = c, k + 1 do M[r][j] = M[r][j] - f * M[c][j] end
    end
  end
  local x = {}
  for i = k, 1, -1 do
    local s = M[i][k + 1]
    for j = i + 1, k do s = s - M[i][j] * x[j] end
    x[i] = s / M[i][i]
  end
  return x
end

--- Logistic regression of the positives on the features (each standardised
--- with its mean and standard deviation on the fit set), by Newton's method
--- in double precision with a ridge penalty o.l2 (1e-3) on the weights
--- (not the intercept), at most o.iterations (50). Returns a model for
--- S.apply, which gives the log-odds of a positive; model.weights are per
--- standardised feature, model.bias the intercept.
function S.fit_logistic(features, positives, o)
  o = o or {}
  check_features("fit_logistic", features, positives)
  local k, n, l2 = #features, #positives, o.l2 or 1e-3
  local mean, std = {}, {}
  for j, f in ipairs(features) do
    local s, ss = 0, 0
    for _, v in ipairs(f) do s = s + v end
    mean[j] = s / n
    for _, v in ipairs(f) do ss = ss + (v - mean[j]) ^ 2 end
    std[j] = math.max(math.sqrt(ss / math.max(1, n - 1)), 1e-12)
  end
  local X = {}
  for i = 1, n do
    local row = {1}
    for j = 1, k do row[j + 1] = (features[j][i] - mean[j]) / std[j] end
    X[i] = row
  end
  local beta = {}
  for j = 1, k + 1 do beta[j] = 0 end
  for _ = 1, o.iterations or 50 do
    local g, H = {}, {}
    for a = 1, k + 1 do
      g[a], H[a] = (a > 1) and l2 * n * beta[a] or 0, {}
      for b = 1, k + 1 do H[a][b] = (a == b and a > 1) and l2 * n or 0 end
    end
    for i = 1, n do
      local row, eta = X[i], 0
      for a = 1, k + 1 do eta = eta + row[a] * beta[a] end
      local p = 1 / (1 + math.exp(-eta))
      local r, w = p - (positives[i] and 1 or 0), p * (1 - p)
      for a = 1, k + 1 do
        g[a] = g[a] + r * row[a]
        local ra = w * row[a]
        for b = a, k + 1 do H[a][b] = H[a][b] + ra * row[b] end
      end
    end
    for a = 1, k + 1 do for b = 1, a - 1 do H[a][b] = H[b][a] end end
    local delta = solve(H, g)
    local size = 0
    for a = 1, k + 1 do
      beta[a] = beta[a] - delta[a]
      size = math.max(size, math.abs(delta[a]))
    end
    if size < 1e-10 then break end
  end
  local weights = {}
  for j = 1, k do weights[j] = beta[j + 1] end
  return {kind = "logistic", mean = mean, std = std, weights = weights, bias = beta[1]}
end

--- The combined error score of a fitted model (S.fit_rank_average,
--- S.fit_logistic) for features given as on fitting, a list.
function S.apply(model, features)
  check_list("scores.apply", "features", features)
  local n = features[1] and #features[1] or 0
  local out = {}
  if model.kind == "rank_average" then
    if #features ~= 2 then error("scores.apply: a rank average takes two features, got " .. #features, 2) end
    local q1, q2 = S.ecdf(model.reference[1], features[1]), S.ecdf(model.reference[2], features[2])
    for i = 1, n do out[i] = model.weight * q1[i] + (1 - model.weight) * q2[i] end
  elseif model.kind == "logistic" then
    if #features ~= #model.weights then
      error(string.format("scores.apply: the model takes %d features, got %d", #model.weights, #features), 2)
    end
    for i = 1, n do
      local eta = model.bias
      for j, w in ipairs(model.weights) do eta = eta + w * (features[j][i] - model.mean[j]) / model.std[j] end
      out[i] = eta
    end
  else
    error("scores.apply: not a fitted model (S.fit_rank_average or S.fit_logistic)", 2)
  end
  return out
end

--- Out-of-fold predictions: the rows split into o.folds (5) seeded folds
--- (o.seed), fit(rows) (a list of row indices) trained on all folds but
--- one and predict(model, rows) giving that fold's scores (a list, in the
--- order of rows). Returns a list of n scores, each from a model that did
--- not see its row: a fair measure, on the fit set, of something fitted.
function S.cross_fit(n, fit, predict, o)
  o = o or {}
  local folds = o.folds or 5
  if math.type(folds) ~= "integer" and not (type(folds) == "number" and folds == math.floor(folds)) then
    error("cross_fit: folds must be a whole number, got " .. tostring(folds), 2) -- (2.5 left rows unpredicted)
  end
  folds = math.tointeger(folds)
  if folds < 2 or folds > n then error(string.format("cross_fit: %d folds for %d rows", folds, n), 2) end
  local rand, order = generator(o.seed or 1), {}
  for i = 1, n do order[i] = i end
  for i = n, 2, -1 do -- Fisher-Yates
    local j = rand(i)
    order[i], order[j] = order[j], order[i]
  end
  local fold_of = {}
  for r, i in ipairs(order) do fold_of[i] = (r - 1) % folds + 1 end
  local out = {}
  for f = 1, folds do
    local train, held = {}, {}
    for i = 1, n do
      if fold_of[i] == f then held[#held + 1] = i else train[#train + 1] = i end
    end
    local model = fit(train)
    for t, v in ipairs(predict(model, held)) do out[held[t]] = v end
  end
  return out
end

--- The values of a list at the given indices, a new list.
function S.pick(list, rows)
  local out = {}
  for t, i in ipairs(rows) do out[t] = list[i] end
  return out
end

-- ---- estimators on wider inputs ----------------------------------------------------------------------

local StandardizedEstimator = nn.Module:extend("StandardizedEstimator")

--- I.Estimator's network (opts.hidden, 200; opts.depth, 3) on opts.inputs
--- values a sample, each standardised with a mean and standard deviation
--- kept as buffers (set by est:fit_standardization or S.fit_standardized_estimator from its training
--- inputs): for [z, max_logit], whose parts have different scales, or for a
--- wide representation such as the recording.
function StandardizedEstimator:init(opts)
  opts = opts or {}
  if type(opts.inputs) ~= "number" or opts.inputs < 1 then
    error("StandardizedEstimator: needs inputs (the number of values a sample)", 3)
  end
  self.inputs = opts.inputs
  self:child("net", I.Estimator{latent = opts.inputs, hidden = opts.hidden, depth = opts.depth})
  self:buffer("mean", lm.zeros(opts.inputs))
  self:buffer("std", lm.ones(opts.inputs))
end

function StandardizedEstimator:forward(x) return self.net(I.standardize(x, self.mean, self.std)) end

--- Sets the standardisation from inputs X [N, inputs] (I.standardization:
--- with `distributed` under several ranks, X is this rank's rows).
function StandardizedEstimator:fit_standardization(X, distributed)
  local mean, std = I.standardization(X, distributed)
  self.mean:copy_(mean)
  self.std:copy_(std)
end

S.StandardizedEstimator = StandardizedEstimator

--- Sets est's standardisation from X [N, inputs] (standard deviations
--- clamped at 1e-3, as the InfoVAE's) and trains it on the targets T [N]
--- with I.fit_estimator and its opts. Returns the training history.
function S.fit_standardized_estimator(est, X, T, opts)
  if not lm.is_tensor(X) or X:dim() ~= 2 or X:size(2) ~= est.inputs then
    error(string.format("fit_standardized_estimator: X must be a tensor [N, %d]", est.inputs), 2)
  end
  if not lm.is_tensor(T) or T:numel() ~= X:size(1) then
    error(string.format("fit_standardized_estimator: T must hold one target per row of X (%d)", X:size(1)), 2)
  end
  est:fit_standardization(X)
  return I.fit_estimator(est, X, T, opts)
end

--- Early stopping on held-out errors: returns opts for I.fit_estimator
--- (or I.fit_autoencoder's loop) whose log callback scores `est` after each
--- epoch on the validation inputs X_val against `wrong` (a list of
--- booleans, true where the classifier errs) as AUROC (correct vs wrong) +
--- AUPR (errors), keeps a copy of the best epoch's parameters, and calls
--- opts.log(epoch, record) with record.validation added; and a function
--- that loads the best epoch's parameters back and returns that epoch and
--- its score. Every rank computes the same score from the same parameters.
function S.keep_best_epoch(est, X_val, wrong, opts)
  if not lm.is_tensor(X_val) or X_val:size(1) ~= #wrong then
    error("keep_best_epoch: X_val must be a tensor with one row per entry of wrong", 2)
  end
  local best, best_epoch, best_state = -math.huge, 0, nil
  local fit_opts = {}
  for k, v in pairs(opts or {}) do fit_opts[k] = v end
  local user_log = fit_opts.log
  fit_opts.log = function(epoch, record)
    local was = est.training
    est:evaluate()
    local e = I.estimate(est, X_val):to("cpu"):totable()
    if was then est:train() end
    local score = S.evaluate(e, wrong)
    record.validation = score.auroc_correct + score.aupr_error
    if record.validation > best then
      best, best_epoch, best_state = record.validation, epoch, {}
      for name, t in pairs(est:state_dict()) do best_state[name] = t:clone() end
    end
    if user_log then user_log(epoch, record) end
  end
  local function restore()
    if best_state then est:load_state_dict(best_state) end
    return best_epoch, best
  end
  return fit_opts, restore
end

--- Columns joined into one tensor [N, sum of widths]: tensors [N, k] or
--- [N], and lists of N numbers (each one column).
function S.columns(parts)
  local cols = {}
  for k, p in ipairs(parts) do
    if type(p) == "table" then p = lm.tensor(p) end
    if not lm.is_tensor(p) then error(string.format("scores.columns: part %d is not a tensor or list", k), 2) end
    if p:dim() == 1 then p = p:view(-1, 1) end
    if k > 1 and p:size(1) ~= cols[1]:size(1) then
      error(string.format("scores.columns: part %d has %d rows, part 1 %d", k, p:size(1), cols[1]:size(1)), 2)
    end
    cols[k] = p:float()
  end
  return lm.cat(cols, 2)
end

--- The InfoVAE's representation just before the 2-D bottleneck (the last
--- hidden layer of the encoder, after its ELU) of a recording H [N, Nh], in
--- batches of o.batch (I.block_rows), without gradients.
function S.pre_bottleneck(vae, H, o)
  local batch, n = (o and o.batch) or I.block_rows(H:size(2)), H:size(1)
  local enc = vae.encoder
  local out
  lm.no_grad(function()
    for s = 1, n, batch do
      local len = math.min(batch, n - s + 1)
      local h = vae:prepare(H:narrow(1, s, len))
      for i = 1, enc:size() - 1 do h = enc[i](h) end
      out = out or lm.zeros(n, h:size(2))
      out:narrow(1, s, len):copy_(h)
    end
  end)
  return out
end

return S
