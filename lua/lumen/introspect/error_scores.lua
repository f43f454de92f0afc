-- Error scores of a mapped classifier against its own confidence (issue 15;
-- docs/analyses/error-scores.md): the comparison behind
-- experiments/error_scores_mnist.lua and experiments/error_scores_cifar10.lua.
--
--   local ES = require 'lumen.introspect.error_scores'
--   local R = ES.record{net = net, recorder = rec, vae = vae,
--     sets = {train = tr, val = va, test = te},   -- {x, y}; x float or bytes
--     wide = conv_recorder}                       -- optional: R[split].W
--   local results = ES.compare(R, {est = est, vae = vae, seed = 1, ...})
--   ES.report(results, dir, "error_scores")   -- printed, and written as .json and .md
--
-- Every variant is an error score (higher = more likely wrong). Those
-- trained on the training split (as the method trains its estimator) are
-- measured on the validation split as they are; those fitted on the
-- validation split (combinations, estimators on held-out recordings) by
-- out-of-fold predictions there, then refitted on the whole split for the
-- test set. The variant chosen is the one with the largest validation
-- AUROC + AUPR among the non-baseline, non-diagnostic ones; the test set is
-- measured once, at the end, against the baseline with a paired bootstrap.
local lm = require 'lumen'
local I = require 'lumen.introspect'
local S = require 'lumen.introspect.scores'
local Progress = require 'lumen.progress'

local ES = {}

--- Records each split of o.sets (train, val, test: {x, y}) through o.net
--- with o.recorder and encodes it with o.vae. Returns R with, per split:
--- H (the recording), Z (its latents), T (log10 e), wrong (booleans), conf
--- (S.confidences of the logits), errors (their count), floor_share (the
--- share of targets at log10 I.ERROR_FLOOR) and, with o.wide (another
--- recorder of the same net), W (its recording). o.log(name, r) reports a
--- split.
-- One pass of x through o.net, a block at a time, in evaluation mode
-- without gradients: the recording (o.recorder), the wide one (o.wide's,
-- or nil), the outputs and the logits, which a hook on the final Sigmoid
-- or Softmax catches as its input. Three passes (the two recorders and
-- S.logits) took 2 of the 5 minutes of a CIFAR-10 run.
local function record_once(o, x, name)
  local net, n, bs = o.net, x:size(1), 1000
  local final = S.final_activation(net, "error_scores.record")
  local device = lm.train.device_of(net)
  local out = {}
  local function keep(key, t, start, len)
    out[key] = out[key] or lm.zeros(n, t:size(2))
    out[key]:narrow(1, start, len):copy_(t:device() == "cpu" and t or t:to("cpu"))
  end
  local batches = (n + bs - 1) // bs
  local progress = batches > 1 and Progress.new("recording " .. name, batches, {tty = o.tty})
  local logits
  local hook = final:register_forward_hook(function(_, input) logits = input end)
  local ok, err = pcall(lm.nn.evaluating, net, function() return lm.no_grad(function()
    for start = 1, n, bs do
      local len = math.min(bs, n - start + 1)
      local xb = lm.data.to_float(x:narrow(1, start, len))
      if xb:device() ~= device then xb = xb:to(device) end
      local w
      local y, h = o.recorder:capture(function()
        if not o.wide then return net(xb) end
        local y
        y, w = o.wide:capture(function() return net(xb) end)
        return y
      end)
      keep("H", h, start, len)
      keep("Y", y, start, len)
      keep("L", logits, start, len)
      if w then keep("W", w, start, len) end
      if progress then progress:update(1, string.format("%d samples", start + len - 1)) end
    end
  end) end)
  hook.remove()
  if not ok then error(err, 0) end
  if progress then progress:finish() end
  return out.H, out.W, out.Y, out.L
end

function ES.record(o)
  local R = {}
  for _, name in ipairs{"train", "val", "test"} do
    local s = o.sets[name]
    local r = {}
    local logits
    r.H, r.W, r.Y, logits = record_once(o, s.x, name)
    r.Z = o.vae:encode_all(r.H)
    r.T = I.log_errors(r.Y, s.y)
    r.wrong = {}
    for i, ok in ipairs(r.Y:argmax(2):eq(s.y):totable()) do r.wrong[i] = ok ~= 1 end
    r.conf = S.confidences(logits)
    r.errors = 0
    for _, w in ipairs(r.wrong) do if w then r.errors = r.errors + 1 end end
    -- the share of targets at the floor log10(1e-8), where the regression sees no order
    r.floor_share = r.T:le(math.log(I.ERROR_FLOOR, 10) + 1e-4):float():mean():item()
    R[name] = r
    if o.log then o.log(name, r) end
  end
  return R
end

-- ---- the variants --------------------------------------------------------------------------------------

--- The variants over R (ES.record) with o: est (the cached 2-D estimator),
--- vae, seed, est_epochs (20), long_epochs (60), wide_epochs (20),
--- heldout_epochs (100), folds (5), recording (true: the estimators on the
--- recording), wide_name (what R[split].W is, for its variant's name),
--- progress(name) after each. Returns a list of {name, family, what, fit,
--- val, test, model}.
function ES.variants(R, o)
  local variants = {}
  local function add(v)
    variants[#variants + 1] = v
    if o.progress then o.progress(v.name) end
  end

  -- an estimator trained on the training split: inputs(split) -> [N, k]
  local function trained(name, family, what, inputs, t)
    t = t or {}
    lm.manual_seed(o.seed)
    local X = inputs("train")
    local e = S.StandardizedEstimator{inputs = X:size(2), hidden = t.hidden, depth = t.depth}
    S.fit_standardized_estimator(e, X, t.target or R.train.T, {epochs = t.epochs or o.est_epochs, seed = o.seed,
      tty = false})
    local function score(split)
      local p = I.estimate(e, inputs(split)):totable()
      return t.negate and S.negated(p) or p
    end
    local v = {name = name, family = family, what = what, fit = "training split", val = score("val"),
      test = score("test")}
    add(v)
    return v
  end
  local function z_of(split) return R[split].Z end
  local function H_of(split) return R[split].H end
  local function with_max_logit(inputs)
    return function(split) return S.columns{inputs(split), R[split].conf.max_logit} end
  end

  -- the baselines: the classifier's own confidence
  add{name = "max_logit", family = "baseline",
    what = "minus the largest logit (max-sigmoid's order; I.baseline_scores)",
    fit = "none", val = S.negated(R.val.conf.max_logit), test = S.negated(R.test.conf.max_logit)}
  add{name = "max_softmax", family = "baseline", what = "minus the largest softmax of the logits", fit = "none",
    val = S.negated(R.val.conf.max_softmax), test = S.negated(R.test.conf.max_softmax)}
  add{name = "margin", family = "baseline", what = "minus (largest - second largest logit)", fit = "none",
    val = S.negated(R.val.conf.margin), test = S.negated(R.test.conf.margin)}

  -- the method as it is, and its cheap knobs
  local e_hat = {val = I.estimate(o.est, R.val.Z):totable(), test = I.estimate(o.est, R.test.Z):totable()}
  add{name = "e_hat", family = "map", what = "the cached estimator on z (2-D)", fit = "training split (cached)",
    val = e_hat.val, test = e_hat.test}
  trained("e_hat_long", "map", string.format("z -> log10 e, %d epochs", o.long_epochs), z_of,
    {epochs = o.long_epochs})
  trained("e_hat_wide", "map", string.format("z -> log10 e, 400 x 4 hidden, %d epochs", o.wide_epochs), z_of,
    {hidden = 400, depth = 4, epochs = o.wide_epochs})
  -- what the map keeps of the baseline: max_logit regressed from z alone
  trained("z_to_max_logit", "diagnostic", "minus max_logit as regressed from z (what the 2-D map keeps of it)", z_of,
    {target = lm.tensor(R.train.conf.max_logit), negate = true})

  -- the smallest changes: the estimator also sees the classifier's confidence
  trained("e_hat[z,max_logit]", "estimator input", "[z, max_logit] -> log10 e", with_max_logit(z_of))
  trained("e_hat[z,margin]", "estimator input", "[z, margin] -> log10 e",
    function(split) return S.columns{R[split].Z, R[split].conf.margin} end)
  trained("e_hat[max_logit]", "diagnostic", "max_logit -> log10 e (no z: what z adds)",
    function(split) return S.columns{R[split].conf.max_logit} end)

  -- fitted on the validation split: out-of-fold there, refitted whole for test
  local n_val, n_test = #R.val.wrong, #R.test.wrong
  local function fitted_on_val(name, family, what, features, fit, predict)
    local fv, ft = features("val"), features("test")
    local function part_of(rows)
      local part = {}
      for k, fk in ipairs(fv) do part[k] = S.pick(fk, rows) end
      return part
    end
    local oof = S.cross_fit(n_val, function(rows)
      return fit(part_of(rows), S.pick(R.val.wrong, rows), rows)
    end, function(model, rows) return predict(model, part_of(rows), rows, "val") end,
      {folds = o.folds, seed = o.seed})
    local all, rows_test = {}, {}
    for i = 1, n_val do all[i] = i end
    for i = 1, n_test do rows_test[i] = i end
    local model = fit(fv, R.val.wrong, all)
    add{name = name, family = family, what = what, fit = string.format("validation split (%d-fold out-of-fold)",
      o.folds), val = oof, test = predict(model, ft, rows_test, "test"),
      model = rawget(model, "kind") and model or nil}
  end
  local function and_confidence(score, key)
    return function(split) return {score[split], S.negated(R[split].conf[key])} end
  end
  local function apply(model, part) return S.apply(model, part) end
  local function rank_average(part, wrong) return S.fit_rank_average(part, wrong) end
  local function logistic(part, wrong) return S.fit_logistic(part, wrong) end
  fitted_on_val("rank_avg(e_hat,max_logit)", "combination", "weighted average of the two scores' validation ranks",
    and_confidence(e_hat, "max_logit"), rank_average, apply)
  fitted_on_val("logistic(e_hat,max_logit)", "combination", "logistic regression of 'wrong' on the two scores",
    and_confidence(e_hat, "max_logit"), logistic, apply)
  fitted_on_val("logistic(e_hat,margin)", "combination", "logistic regression of 'wrong' on e_hat and margin",
    and_confidence(e_hat, "margin"), logistic, apply)

  -- what is recorded: the estimator trained on held-out recordings (the
  -- validation split, whose errors look like the test set's) instead of
  -- the training split, which the classifier may fit better than new images
  local function heldout(name, what, inputs)
    local X = {val = inputs("val"), test = inputs("test")}
    fitted_on_val(name, "held-out estimator", what, function() return {} end, -- the fit takes rows of X
      function(_, _, rows)
        lm.manual_seed(o.seed)
        local idx = lm.tensor(rows, "int32")
        local Xs = X.val:index_select(idx)
        local e = S.StandardizedEstimator{inputs = Xs:size(2)}
        S.fit_standardized_estimator(e, Xs, R.val.T:index_select(idx),
          {epochs = o.heldout_epochs, seed = o.seed, tty = false})
        return e
      end,
      function(e, _, rows, split)
        return I.estimate(e, X[split]:index_select(lm.tensor(rows, "int32"))):totable()
      end)
  end
  heldout("e_hat_heldout[z]", string.format("z -> log10 e trained on validation recordings, %d epochs",
    o.heldout_epochs), z_of)
  heldout("e_hat_heldout[z,max_logit]", "[z, max_logit] -> log10 e trained on validation recordings",
    with_max_logit(z_of))

  -- is the 2-D map the bottleneck? the same estimator on wider representations
  trained("e_hat[pre-bottleneck 200]", "wider input", "the encoder's last hidden layer (200) -> log10 e",
    function(split)
      R[split].P = R[split].P or S.pre_bottleneck(o.vae, R[split].H)
      return R[split].P
    end)
  if o.recording ~= false then
    local width = R.train.H:size(2)
    local rec = trained(string.format("e_hat[recording %d]", width), "wider input",
      string.format("the whole recording (%d) -> log10 e", width), H_of)
    trained(string.format("e_hat[recording %d,max_logit]", width), "wider input",
      "[the recording, max_logit] -> log10 e", with_max_logit(H_of))
    fitted_on_val("logistic(e_hat[recording],max_logit)", "combination",
      "logistic regression of 'wrong' on the recording's estimate and the largest logit",
      and_confidence(rec, "max_logit"), logistic, apply)
    heldout(string.format("e_hat_heldout[recording %d]", width),
      string.format("the recording -> log10 e trained on validation recordings, %d epochs", o.heldout_epochs), H_of)
    if R.train.W then
      local wide = R.train.W:size(2)
      trained(string.format("e_hat[recording %d + %s %d]", width, o.wide_name or "wide", wide), "wider input",
        string.format("[the recording, %s (%d)] -> log10 e", o.wide_name or "a wider recording", wide),
        function(split) return S.columns{R[split].H, R[split].W} end)
    end
  end
  return variants
end

-- ---- choose on validation, report on test --------------------------------------------------------------

--- Measures ES.variants(R, o) on validation and test, chooses on
--- validation, bootstraps each variant's test difference to the baseline
--- (o.resamples, o.seed) and returns the results table (data = o.data,
--- from = o.from, ...; markdown = the table, note = what it shows).
function ES.compare(R, o)
  local t_start = lm.clock()
  local variants = ES.variants(R, o)
  local base = variants[1]
  for _, v in ipairs(variants) do
    v.validation, v.test_measures = S.evaluate(v.val, R.val.wrong), S.evaluate(v.test, R.test.wrong)
  end
  local function val_sum(v) return v.validation.auroc_correct + v.validation.aupr_error end
  local chosen
  for _, v in ipairs(variants) do
    if v.family ~= "baseline" and v.family ~= "diagnostic" and (not chosen or val_sum(v) > val_sum(chosen)) then
      chosen = v
    end
  end
  local md = {"| variant | family | fitted on | val AUROC | val AUPR | test AUROC | test AUPR "
    .. "| test AUROC - base [95 % CI] | test AUPR - base [95 % CI] |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"}
  local rows = {}
  for _, v in ipairs(variants) do
    local b = v ~= base and S.paired_bootstrap(v.test, base.test, R.test.wrong,
      {resamples = o.resamples, seed = o.seed}) or nil
    local function ci(k)
      if not b then return "-" end
      return string.format("%+.3f [%+.3f, %+.3f]", v.test_measures[k] - base.test_measures[k], b[k][1], b[k][3])
    end
    local fitted = v.fit
    if v.model and v.model.kind == "rank_average" then
      fitted = fitted .. string.format("; weight of e_hat %.2f", v.model.weight)
    elseif v.model and v.model.kind == "logistic" then
      local w = {}
      for k, x in ipairs(v.model.weights) do w[k] = string.format("%.2f", x) end
      fitted = fitted .. "; weights (standardised) " .. table.concat(w, ", ")
    end
    md[#md + 1] = string.format("| %s%s | %s | %s | %.3f | %.3f | %.3f | %.3f | %s | %s |", v.name,
      v == chosen and " (chosen)" or "", v.family, fitted, v.validation.auroc_correct, v.validation.aupr_error,
      v.test_measures.auroc_correct, v.test_measures.aupr_error, ci("auroc_correct"), ci("aupr_error"))
    rows[#rows + 1] = {name = v.name, family = v.family, what = v.what, fitted_on = v.fit, validation = v.validation,
      test = v.test_measures, test_minus_baseline_ci95 = b and {auroc_correct = {b.auroc_correct[1],
      b.auroc_correct[3]}, aupr_error = {b.aupr_error[1], b.aupr_error[3]}} or nil,
      matches_baseline_on_test = v.test_measures.auroc_correct >= base.test_measures.auroc_correct
        and v.test_measures.aupr_error >= base.test_measures.aupr_error,
      model = v.model and {kind = v.model.kind, weight = v.model.weight, weights = v.model.weights,
        bias = v.model.bias} or nil}
    if o.progress then o.progress(v.name .. " bootstrap") end
  end
  -- the best variant of each family on validation: the smallest change that gets there
  local best, best_per_family = {}, {}
  for _, v in ipairs(variants) do
    if not best[v.family] or val_sum(v) > val_sum(best[v.family]) then best[v.family] = v end
  end
  for family, v in pairs(best) do best_per_family[family] = v.name end
  local note = string.format("%s, classifier and autoencoder of %s. Validation: %d images (%d misclassified), "
    .. "test: %d (%d). Error scores, higher = more likely wrong; AUROC: correct vs wrong (I.auroc of minus the "
    .. "score), AUPR: the misclassified as positives (I.aupr). CIs: paired bootstrap over test images (%d "
    .. "resamples). Chosen: the largest validation AUROC + AUPR among the non-baseline, non-diagnostic variants.",
    o.data, o.from, #R.val.wrong, R.val.errors, #R.test.wrong, R.test.errors, o.resamples)
  return {data = o.data, from = o.from, seed = o.seed, validation_images = #R.val.wrong,
    validation_errors = R.val.errors, test_images = #R.test.wrong, test_errors = R.test.errors,
    training_errors = R.train.errors, training_images = #R.train.wrong,
    target_floor_share = {train = R.train.floor_share, validation = R.val.floor_share, test = R.test.floor_share},
    baseline = base.name, chosen = chosen.name, best_per_family = best_per_family,
    chosen_test = chosen.test_measures, baseline_test = base.test_measures,
    variants = rows, note = note, markdown = table.concat(md, "\n"), seconds = lm.clock() - t_start}
end

--- Prints results (ES.compare: the table, the note, the variant chosen) and
--- writes them to dir/stem.json and dir/stem.md.
function ES.report(results, dir, stem)
  print(results.markdown)
  print(results.note)
  print(string.format("chosen on validation: %s; test AUROC %.4f (baseline %.4f), AUPR %.4f (baseline %.4f)",
    results.chosen, results.chosen_test.auroc_correct, results.baseline_test.auroc_correct,
    results.chosen_test.aupr_error, results.baseline_test.aupr_error))
  lm.json.write(dir .. "/" .. stem .. ".json", results)
  lm.write_file(dir .. "/" .. stem .. ".md", "# Error scores\n\n" .. results.note .. "\n\n" .. results.markdown .. "\n")
  print(string.format("wrote %s/%s.json and %s.md", dir, stem, stem))
end

return ES
