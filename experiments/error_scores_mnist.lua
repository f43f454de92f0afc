-- Error scores of the mapped Net1 against its own confidence (issue 15;
-- docs/analyses/error-scores.md), over the models the main experiment
-- cached (run experiments/introspect_mnist.lua first; the classifier and the
-- autoencoder are reused, never retrained):
--   lumen experiments/error_scores_mnist.lua [--out DIR] [--data mnist|fashion]
--        [--data-dir DIR] [--seed S] [--threads T] [--est-epochs N]
--        [--long-epochs N] [--wide-epochs N] [--heldout-epochs N] [--folds K]
--        [--resamples N] [--recording=false] [--name STEM]
--
-- Every variant is an error score (higher = more likely wrong). Those
-- trained on the training split (as the method trains its estimator) are
-- measured on the validation split as it is; those fitted on the
-- validation split (combinations, estimators on held-out recordings) by
-- out-of-fold predictions there (--folds), then refitted on the whole
-- split for the test set. The variant chosen is the one with the largest
-- validation AUROC + AUPR; the test set is measured once, at the end.
-- The split is the run's (its metrics.json's seed); --seed seeds the
-- estimators, folds and bootstrap. Writes DIR/error_scores.json (also the
-- chunk's return value) and DIR/error_scores.md (--name: another stem), and
-- prints the table.
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect
local S = require 'lumen.introspect.scores'
local study = require 'lumen.introspect.study'

local opts = cli.parse(arg, {out = "results/introspect_mnist", data = "mnist", data_dir = "", seed = 1, threads = 2,
  est_epochs = 20, long_epochs = 60, wide_epochs = 20, heldout_epochs = 100, folds = 5, resamples = 200,
  recording = true, name = "error_scores"},
  "Error scores of the mapped Net1: lumen experiments/error_scores_mnist.lua [options]")
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
study.require_mnist_run(opts.out, "error_scores_mnist")
local t_start = lm.clock()

-- ---- the cached run and the three splits -------------------------------------------------------------
local d = lm.data.mnist{kind = opts.data, dir = opts.data_dir ~= "" and opts.data_dir or nil}
local split_seed = 1 -- study.mnist splits with the run's seed, which its metrics.json records
local f = io.open(opts.out .. "/metrics.json")
if f then -- the run must have used the same data set
  local ran = lm.json.decode(f:read("a"))
  f:close()
  if ran.data and ran.data ~= d.name then
    error(string.format("error_scores_mnist: %s was a run on %s, not %s (use --data)", opts.out, ran.data, d.name), 0)
  end
  split_seed = ran.seed or split_seed
end
local train, val = lm.data.split(d.train, {fraction = 0.1, seed = split_seed}) -- the run's split
local sets = {train = train, val = val, test = d.test}
local net = lm.models.net1()
net:load(opts.out .. "/classifier.safetensors")
net:evaluate()
local recorder = I.Recorder(net)
local vae, est = study.load_map(opts.out, recorder, train.x:narrow(1, 1, 1))

local R = {} -- per split: H, Y, Z, T (log10 e), wrong, confidences
for _, name in ipairs{"train", "val", "test"} do
  local s = sets[name]
  local r = {}
  r.H, r.Y = recorder:record_set(s.x)
  r.Z = vae:encode_all(r.H)
  r.T = I.log_errors(r.Y, s.y)
  r.wrong = {}
  for i, ok in ipairs(r.Y:argmax(2):eq(s.y):totable()) do r.wrong[i] = ok ~= 1 end
  r.conf = S.confidences(S.logits(net, s.x))
  r.errors = 0
  for _, w in ipairs(r.wrong) do if w then r.errors = r.errors + 1 end end
  -- the share of targets at the floor log10(1e-8), where the regression sees no order
  r.floor_share = r.T:le(math.log(I.ERROR_FLOOR, 10) + 1e-4):float():mean():item()
  R[name] = r
  print(string.format("%-5s %6d images, %4d misclassified, %.1f %% of log10 e at the floor", name, s.x:size(1),
    r.errors, 100 * r.floor_share))
end

-- ---- the variants --------------------------------------------------------------------------------------
local variants = {}
local function add(v)
  variants[#variants + 1] = v
  print(string.format("   %-28s done (%.0f s)", v.name, lm.clock() - t_start))
end

-- an estimator trained on the training split: inputs(split) -> [N, k]
local function trained(name, family, what, inputs, o)
  o = o or {}
  lm.manual_seed(opts.seed)
  local X = inputs("train")
  local e = S.StandardizedEstimator{inputs = X:size(2), hidden = o.hidden, depth = o.depth}
  S.fit_standardized_estimator(e, X, o.target or R.train.T, {epochs = o.epochs or opts.est_epochs, seed = opts.seed,
    tty = false})
  local function score(split)
    local p = I.estimate(e, inputs(split)):totable()
    return o.negate and S.negated(p) or p
  end
  add{name = name, family = family, what = what, fit = "training split", val = score("val"), test = score("test")}
end

local function z_of(split) return R[split].Z end
local function col(key) return function(split) return R[split].conf[key] end end

-- the baselines: the classifier's own confidence
add{name = "max_logit", family = "baseline", what = "minus the largest logit (max-sigmoid's order; I.baseline_scores)",
  fit = "none", val = S.negated(R.val.conf.max_logit), test = S.negated(R.test.conf.max_logit)}
add{name = "max_softmax", family = "baseline", what = "minus the largest softmax of the logits", fit = "none",
  val = S.negated(R.val.conf.max_softmax), test = S.negated(R.test.conf.max_softmax)}
add{name = "margin", family = "baseline", what = "minus (largest - second largest logit)", fit = "none",
  val = S.negated(R.val.conf.margin), test = S.negated(R.test.conf.margin)}

-- the method as it is, and its cheap knobs
local e_val, e_test = I.estimate(est, R.val.Z):totable(), I.estimate(est, R.test.Z):totable()
add{name = "e_hat", family = "map", what = "the cached estimator on z (2-D)", fit = "training split (cached)",
  val = e_val, test = e_test}
trained("e_hat_long", "map", string.format("z -> log10 e, %d epochs", opts.long_epochs), z_of,
  {epochs = opts.long_epochs})
trained("e_hat_wide", "map", string.format("z -> log10 e, 400 x 4 hidden, %d epochs", opts.wide_epochs), z_of,
  {hidden = 400, depth = 4, epochs = opts.wide_epochs})
-- what the map keeps of the baseline: max_logit regressed from z alone
trained("z_to_max_logit", "diagnostic", "minus max_logit as regressed from z (what the 2-D map keeps of it)", z_of,
  {target = lm.tensor(R.train.conf.max_logit), negate = true})

-- the smallest changes: the estimator also sees the classifier's confidence
trained("e_hat[z,max_logit]", "estimator input", "[z, max_logit] -> log10 e",
  function(split) return S.columns{R[split].Z, R[split].conf.max_logit} end)
trained("e_hat[z,margin]", "estimator input", "[z, margin] -> log10 e",
  function(split) return S.columns{R[split].Z, R[split].conf.margin} end)
trained("e_hat[max_logit]", "diagnostic", "max_logit -> log10 e (no z: what z adds)",
  function(split) return S.columns{col("max_logit")(split)} end)

-- combinations of e_hat and max_logit fitted on the validation split
local function fitted_on_val(name, family, what, features, fit, predict)
  local fv, ft = features("val"), features("test")
  local function rows_of(list, rows) return S.pick(list, rows) end
  local oof = S.cross_fit(#R.val.wrong, function(rows)
    local part = {}
    for k, fk in ipairs(fv) do part[k] = rows_of(fk, rows) end
    return fit(part, rows_of(R.val.wrong, rows), rows)
  end, function(model, rows)
    local part = {}
    for k, fk in ipairs(fv) do part[k] = rows_of(fk, rows) end
    return predict(model, part, rows, "val")
  end, {folds = opts.folds, seed = opts.seed})
  local all = {}
  for i = 1, #R.val.wrong do all[i] = i end
  local model = fit(fv, R.val.wrong, all)
  local rows_test = {}
  for i = 1, #R.test.wrong do rows_test[i] = i end
  add{name = name, family = family, what = what, fit = string.format("validation split (%d-fold out-of-fold)",
    opts.folds), val = oof, test = predict(model, ft, rows_test, "test"),
    model = rawget(model, "kind") and model or nil}
end
local function e_and(key)
  return function(split)
    local e = split == "val" and e_val or e_test
    return {e, S.negated(R[split].conf[key])}
  end
end
local function apply(model, part) return S.apply(model, part) end
fitted_on_val("rank_avg(e_hat,max_logit)", "combination", "weighted average of the two scores' validation ranks",
  e_and("max_logit"), function(part, wrong) return S.fit_rank_average(part, wrong) end, apply)
fitted_on_val("logistic(e_hat,max_logit)", "combination", "logistic regression of 'wrong' on the two scores",
  e_and("max_logit"), function(part, wrong) return S.fit_logistic(part, wrong) end, apply)
fitted_on_val("logistic(e_hat,margin)", "combination", "logistic regression of 'wrong' on e_hat and margin",
  e_and("margin"), function(part, wrong) return S.fit_logistic(part, wrong) end, apply)

-- what is recorded: the estimator trained on held-out recordings (the
-- validation split, whose errors look like the test set's) instead of the
-- training split, which the classifier fits almost perfectly
local function heldout(name, what, inputs)
  local X = {val = inputs("val"), test = inputs("test")}
  fitted_on_val(name, "held-out estimator", what, function() return {} end, -- the fit takes rows of X
    function(_, _, rows)
      lm.manual_seed(opts.seed)
      local idx = lm.tensor(rows, "int32")
      local Xs = X.val:index_select(idx)
      local e = S.StandardizedEstimator{inputs = Xs:size(2)}
      S.fit_standardized_estimator(e, Xs, R.val.T:index_select(idx),
        {epochs = opts.heldout_epochs, seed = opts.seed, tty = false})
      return e
    end,
    function(e, _, rows, split)
      local idx = lm.tensor(rows, "int32")
      return I.estimate(e, X[split]:index_select(idx)):totable()
    end)
end
heldout("e_hat_heldout[z]", string.format("z -> log10 e trained on validation recordings, %d epochs",
  opts.heldout_epochs), z_of)
heldout("e_hat_heldout[z,max_logit]", "[z, max_logit] -> log10 e trained on validation recordings",
  function(split) return S.columns{R[split].Z, R[split].conf.max_logit} end)

-- is the 2-D map the bottleneck? the same estimator on wider representations
trained("e_hat[pre-bottleneck 200]", "wider input", "the encoder's last hidden layer (200) -> log10 e",
  function(split)
    R[split].P = R[split].P or S.pre_bottleneck(vae, R[split].H)
    return R[split].P
  end)
if opts.recording then
  trained("e_hat[recording 2400]", "wider input", "the whole recording (2400) -> log10 e", function(split)
    return R[split].H
  end)
end

-- ---- choose on validation, report on test --------------------------------------------------------------
local base = variants[1]
for _, v in ipairs(variants) do
  v.validation, v.test_measures = S.evaluate(v.val, R.val.wrong), S.evaluate(v.test, R.test.wrong)
end
local chosen
for _, v in ipairs(variants) do
  local s = v.validation.auroc_correct + v.validation.aupr_error
  if v.family ~= "baseline" and v.family ~= "diagnostic"
    and (not chosen or s > chosen.validation.auroc_correct + chosen.validation.aupr_error) then chosen = v end
end
local md = {"| variant | family | fitted on | val AUROC | val AUPR | test AUROC | test AUPR "
  .. "| test AUROC - base [95 % CI] "
  .. "| test AUPR - base [95 % CI] |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"}
local rows = {}
for _, v in ipairs(variants) do
  local b = v ~= base and S.paired_bootstrap(v.test, base.test, R.test.wrong,
    {resamples = opts.resamples, seed = opts.seed}) or nil
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
  print(string.format("   %-28s bootstrap done (%.0f s)", v.name, lm.clock() - t_start))
end
local table_md = table.concat(md, "\n")
-- the best variant of each family on validation: the smallest change that gets there
local best_per_family = {}
for _, r in ipairs(rows) do
  local b = best_per_family[r.family]
  if not b or r.validation.auroc_correct + r.validation.aupr_error > b.validation.auroc_correct
    + b.validation.aupr_error then best_per_family[r.family] = r end
end
for k, r in pairs(best_per_family) do best_per_family[k] = r.name end
local note = string.format("%s, classifier and autoencoder of %s. Validation: %d images (%d misclassified), "
  .. "test: %d (%d). Error scores, higher = more likely wrong; AUROC: correct vs wrong (I.auroc of minus the "
  .. "score), AUPR: the misclassified as positives (I.aupr). CIs: paired bootstrap over test images (%d "
  .. "resamples). Chosen: the largest validation AUROC + AUPR among the non-baseline, non-diagnostic variants.",
  d.name, opts.out, #R.val.wrong, R.val.errors, #R.test.wrong, R.test.errors, opts.resamples)
print(table_md)
print(note)
print(string.format("chosen on validation: %s; test AUROC %.4f (baseline %.4f), AUPR %.4f (baseline %.4f)",
  chosen.name, chosen.test_measures.auroc_correct, base.test_measures.auroc_correct, chosen.test_measures.aupr_error,
  base.test_measures.aupr_error))
local results = {data = d.name, from = opts.out, seed = opts.seed, validation_images = #R.val.wrong,
  validation_errors = R.val.errors, test_images = #R.test.wrong, test_errors = R.test.errors,
  training_errors = R.train.errors, split_seed = split_seed,
  target_floor_share = {train = R.train.floor_share, validation = R.val.floor_share, test = R.test.floor_share},
  baseline = base.name, chosen = chosen.name, best_per_family = best_per_family,
  variants = rows, note = note,
  markdown = table_md, seconds = lm.clock() - t_start}
lm.json.write(opts.out .. "/" .. opts.name .. ".json", results)
lm.write_file(opts.out .. "/" .. opts.name .. ".md", "# Error scores\n\n" .. note .. "\n\n" .. table_md .. "\n")
print(string.format("wrote %s/%s.json and %s.md", opts.out, opts.name, opts.name))
return results
