-- Error scores beside the classifier's confidence (lumen.introspect.scores)
-- on small generated data.
local lm = require 'lumen'
local I = lm.introspect
local S = require 'lumen.introspect.scores'

-- n draws of a seeded normal stream as a list
local function normals(n, seed)
  lm.manual_seed(seed)
  return lm.randn(n):totable()
end

-- wrong ~ Bernoulli(p) from a seeded stream
local function bernoulli(n, p, seed)
  lm.manual_seed(seed)
  local out = {}
  for i, u in ipairs(lm.rand(n):totable()) do out[i] = u < p end
  return out
end

describe("error scores: the classifier's confidence", function()
  it("reads max_logit, margin and max_softmax from logits", function()
    local c = S.confidences(lm.tensor{{1, 3, 2}, {0, 0, -1}})
    same(c.max_logit, {3, 0}, 1e-12)
    same(c.margin, {1, 0}, 1e-12)
    local e = math.exp(1)
    same(c.max_softmax, {math.log(e ^ 3 / (e + e ^ 3 + e ^ 2)), math.log(1 / (2 + math.exp(-1)))}, 1e-7)
    -- saturated rows stay apart (the probabilities are both 1.0 in double)
    local far = S.confidences(lm.tensor{{40, 0, 0}, {50, 0, 0}}).max_softmax
    truthy(far[1] < far[2] and far[2] < 0, "log p of the top class: " .. far[1] .. ", " .. far[2])
    near(far[1], -2 * math.exp(-40), 1e-25)
    raises(function() S.confidences(lm.tensor{1, 2}) end,
      "scores.confidences: logits must be a tensor [N, C] with C >= 2")
    -- a NaN logit anywhere in a row makes its confidences NaN (as torch's max), not the other logits'
    local nan = S.confidences(lm.tensor{{0 / 0, 1, 2}, {2, 0 / 0, 1}, {0, 5, 1}})
    for i = 1, 2 do
      for _, k in ipairs{"max_logit", "margin", "max_softmax"} do
        truthy(nan[k][i] ~= nan[k][i], k .. " of row " .. i)
      end
    end
    eq(nan.max_logit[3], 5)
    raises(function() S.paired_bootstrap({1, 2}, {2, 1}, {true, false}, {resamples = 0}) end,
      "scores.paired_bootstrap: resamples must be an integer >= 1, got 0")
  end)

  it("computes the logits of a sigmoid network, whose max is the baseline's score", function()
    lm.manual_seed(5)
    local net = lm.models.net1{inputs = 6, hidden = 5, layers = 3, classes = 4}
    local x = lm.randn(9, 6)
    local L = S.logits(net, x, {batch = 4})                   -- three batches, the last short
    same(L:shape(), {9, 4})
    local out = lm.no_grad(function() net:evaluate(); return net(x) end)
    same(L:sigmoid():totable(), out:totable(), 1e-6, "sigmoid of the logits is the output")
    local base, kind = I.baseline_scores(net, x)
    eq(kind, "max_logit")
    same(S.confidences(L).max_logit, base, 1e-6)
    raises(function() S.logits(lm.nn.Linear(6, 4), x) end,
      "scores.logits: the network must be an nn.Sequential ending in nn.Sigmoid or nn.Softmax")
  end)
end)

describe("error scores: the recording", function()
  it("records each split in one pass, as the two recorders and the logits give it pass by pass", function()
    local ES = require 'lumen.introspect.error_scores'
    lm.manual_seed(5)
    local net = lm.models.net1{inputs = 6, hidden = 5, layers = 3, classes = 4}
    local rec = I.Recorder(net)
    local wide = I.Recorder(net, {select = function(m) return m.__name == "nn.Linear" end})
    local vae = I.InfoVAE{inputs = 15, hidden = 8, depth = 1}
    local function set(n)
      local labels = {}
      for i = 1, n do labels[i] = i % 4 + 1 end
      return {x = lm.randn(n, 6), y = lm.tensor(labels, 'int32')}
    end
    local sets = {train = set(2300), val = set(7), test = set(1000)} -- blocks of 1000: the last short, exact
    local R = ES.record{net = net, recorder = rec, wide = wide, vae = vae, sets = sets}
    eq(net.training, true, "the net's mode is restored")
    for name, s in pairs(sets) do
      local H, Y = rec:record_set(s.x, {progress = false})
      local W = wide:record_set(s.x, {progress = false})
      same(R[name].H:totable(), H:totable(), 0, name .. ": recording")
      same(R[name].W:totable(), W:totable(), 0, name .. ": wide recording")
      same(R[name].Y:totable(), Y:totable(), 0, name .. ": outputs")
      same(R[name].conf.max_logit, S.confidences(S.logits(net, s.x)).max_logit, 0, name .. ": logits")
      eq(#R[name].wrong, s.x:size(1))
    end
    eq(#net[net:size()]._hooks, 0, "the logits' hook is removed")
    raises(function() ES.record{net = lm.nn.Sequential(lm.nn.Linear(6, 4)), recorder = rec, vae = vae, sets = sets} end,
      "error_scores.record: the network must be an nn.Sequential ending in nn.Sigmoid or nn.Softmax")
  end)
end)

describe("error scores: measures", function()
  it("measures AUROC (correct vs wrong) and AUPR (errors) of an error score", function()
    -- wrong scores {0.9, 0.3} against correct {0.1, 0.8}: 3 of 4 pairs in order;
    -- by descending score the wrong come 1st and 3rd: AP = (1/1 + 2/3) / 2
    local m = S.evaluate({0.9, 0.1, 0.8, 0.3}, {true, false, false, true})
    near(m.auroc_correct, 0.75, 1e-12)
    near(m.aupr_error, (1 + 2 / 3) / 2, 1e-12)
    raises(function() S.evaluate({1, 2}, {true}) end, "scores.evaluate: 2 scores for 1 samples")
  end)

  it("gives mid-rank empirical distribution values", function()
    same(S.ecdf({1, 2, 2, 3}, {2, 0, 4, 2.5}), {0.5, 0, 1, 0.75}, 1e-12)
  end)

  it("bootstraps paired differences: zero for a score against itself, positive for a better one", function()
    local n = 600
    local wrong = bernoulli(n, 0.1, 11)
    local noise, noise2 = normals(n, 12), normals(n, 13)
    local good, bad = {}, {}
    for i = 1, n do
      good[i] = (wrong[i] and 2 or 0) + noise[i]
      bad[i] = (wrong[i] and 0.3 or 0) + noise2[i]
    end
    local same_score = S.paired_bootstrap(good, good, wrong, {resamples = 50, seed = 3})
    same(same_score.auroc_correct, {0, 0, 0}, 0)
    same(same_score.aupr_error, {0, 0, 0}, 0)
    local b = S.paired_bootstrap(good, bad, wrong, {resamples = 100, seed = 3})
    truthy(b.auroc_correct[1] > 0 and b.aupr_error[1] > 0,
      "lower ends " .. b.auroc_correct[1] .. ", " .. b.aupr_error[1])
    truthy(b.auroc_correct[1] <= b.auroc_correct[2] and b.auroc_correct[2] <= b.auroc_correct[3], "ordered quantiles")
    same(S.paired_bootstrap(good, bad, wrong, {resamples = 100, seed = 3}), b, 0, "seeded")
    eq(b.redrawn, 0, "600 samples with 10 % errors: every resample has both")
  end)

  it("draws again a resample without errors, so that no quantile is NaN", function()
    local wrong, a, b = {}, {}, {}
    for i = 1, 40 do wrong[i] = i == 7; a[i] = i == 7 and 1 or (i % 5) / 10; b[i] = (i % 3) / 10 end
    local r = S.paired_bootstrap(a, b, wrong, {resamples = 200, seed = 4})
    truthy(r.redrawn > 0, "with one error in 40, about a third of the resamples miss it")
    for _, k in ipairs{"auroc_correct", "aupr_error"} do
      local q = r[k]
      truthy(q[1] == q[1] and q[2] == q[2] and q[3] == q[3], k .. ": no NaN")
      truthy(q[1] <= q[2] and q[2] <= q[3], k .. ": ordered")
    end
    raises(function() S.paired_bootstrap({1, 2}, {2, 1}, {false, false}) end, "0 of 2 samples are errors")
  end)
end)

describe("error scores: combinations fitted on one set", function()
  -- two independent noisy views of the same errors
  local n = 2000
  local wrong = bernoulli(n, 0.1, 21)
  local n1, n2 = normals(n, 22), normals(n, 23)
  local s1, s2 = {}, {}
  for i = 1, n do
    s1[i] = (wrong[i] and 1.5 or 0) + n1[i]
    s2[i] = (wrong[i] and 1.0 or 0) * 3 + n2[i] * 3 + 10 -- another scale and offset
  end

  it("rank-averages two scores, never worse than the better one on the fit set and better than both here", function()
    local m = S.fit_rank_average({s1, s2}, wrong)
    eq(m.kind, "rank_average")
    local c = S.apply(m, {s1, s2})
    local mc, m1, m2 = S.evaluate(c, wrong), S.evaluate(s1, wrong), S.evaluate(s2, wrong)
    local sum = function(r) return r.auroc_correct + r.aupr_error end
    truthy(sum(mc) >= math.max(sum(m1), sum(m2)), string.format("%.4f vs %.4f, %.4f", sum(mc), sum(m1), sum(m2)))
    truthy(mc.auroc_correct > math.max(m1.auroc_correct, m2.auroc_correct) + 0.01,
      string.format("combined AUROC %.4f, inputs %.4f and %.4f", mc.auroc_correct, m1.auroc_correct, m2.auroc_correct))
    truthy(m.weight > 0.2 and m.weight < 0.8, "weight " .. m.weight)
    -- a useless second score: the weight goes to the first and the order is the first's
    local junk = normals(n, 24)
    local mj = S.fit_rank_average({s1, junk}, wrong)
    eq(mj.weight, 1)
    near(S.evaluate(S.apply(mj, {s1, junk}), wrong).auroc_correct, m1.auroc_correct, 1e-12)
  end)

  it("fits a logistic regression that recovers known coefficients", function()
    local m = 4000
    local x1, x2 = normals(m, 31), normals(m, 32)
    lm.manual_seed(33)
    local u = lm.rand(m):totable()
    local y = {}
    for i = 1, m do y[i] = u[i] < 1 / (1 + math.exp(-(-1 + 2 * x1[i] - x2[i]))) end
    local fit = S.fit_logistic({x1, x2}, y)
    -- weights are per standardised feature: times the features' spread (about 1)
    near(fit.weights[1] / fit.std[1], 2, 0.25, "w1")
    near(fit.weights[2] / fit.std[2], -1, 0.2, "w2")
    near(fit.bias + fit.weights[1] * -fit.mean[1] / fit.std[1] + fit.weights[2] * -fit.mean[2] / fit.std[2], -1, 0.2,
      "intercept")
    local eta = S.apply(fit, {{0}, {0}})
    near(eta[1], fit.bias - fit.weights[1] * fit.mean[1] / fit.std[1] - fit.weights[2] * fit.mean[2] / fit.std[2],
      1e-12)
    -- combining the two error views beats each of them on the fit set
    local c = S.evaluate(S.apply(S.fit_logistic({s1, s2}, wrong), {s1, s2}), wrong)
    truthy(c.auroc_correct > S.evaluate(s1, wrong).auroc_correct + 0.01, "logistic " .. c.auroc_correct)
    -- separable data stays finite under the ridge
    local sep = S.fit_logistic({{1, 2, 3, 4}}, {false, false, true, true})
    truthy(sep.weights[1] > 0 and sep.weights[1] < 1e3, "separable weight " .. sep.weights[1])
  end)

  it("rejects bad input with clear messages", function()
    local six = {true, false, true, false, true, false}
    raises(function() S.fit_logistic({{1, 2, 3, 4, 5, 6}, {1, 2, 3, 4, 5}}, six) end,
      "fit_logistic: feature 2 has 5 values, positives 6")
    raises(function() S.fit_logistic({{1, 2}}, {false, false}) end,
      "fit_logistic: the fit set needs both positives and negatives")
    raises(function() S.fit_rank_average({{1, 2}}, {false, true}) end,
      "fit_rank_average: needs exactly two features, got 1")
    raises(function() S.fit_rank_average({{1, 2}, {1, 2}}, {false, true}, {measure = "f1"}) end,
      "scores: measure must be 'auroc', 'aupr' or 'sum', got f1")
    raises(function() S.apply({}, {{1}}) end, "scores.apply: not a fitted model (S.fit_rank_average or S.fit_logistic)")
    raises(function() S.apply(S.fit_logistic({{1, 2, 3}}, {false, true, true}), {{1}, {2}}) end,
      "scores.apply: the model takes 1 features, got 2")
  end)

  it("cross-fits: every row is predicted by a model that did not see it", function()
    local n_rows, fits = 23, 0
    local function fit(rows)
      fits = fits + 1
      local seen = {}
      for _, r in ipairs(rows) do seen[r] = true end
      return seen
    end
    local function predict(seen, rows)
      local out = {}
      for t, r in ipairs(rows) do out[t] = seen[r] and 1 or 0 end
      return out
    end
    local out = S.cross_fit(n_rows, fit, predict, {folds = 4, seed = 2})
    eq(#out, n_rows)
    eq(fits, 4)
    for i = 1, n_rows do eq(out[i], 0, "row " .. i) end
    raises(function() S.cross_fit(10, fit, predict, {folds = 1}) end, "cross_fit: 1 folds for 10 rows")
  end)
end)

describe("error scores: estimators on wider inputs", function()
  it("learns a known monotone relation to a confidence input of another scale", function()
    lm.manual_seed(41)
    local n = 2048
    local Z = lm.randn(n, 2)
    local c = lm.rand(n) * 20 + 5                          -- a max_logit-like input in [5, 25]
    local T = c * -0.3 + 1                                 -- log10 e falls with the confidence
    local X = S.columns{Z, c}
    same(X:shape(), {n, 3})
    local est = S.StandardizedEstimator{inputs = 3, hidden = 32, depth = 2}
    S.fit_standardized_estimator(est, X, T, {epochs = 30, batch_size = 64, lr = 3e-3, tty = false, seed = 1})
    near(est.mean[3], c:mean():item(), 1e-4, "mean of the confidence column")
    near(est.std[3], c:std():item(), 1e-3, "its standard deviation")
    local mse = ((I.estimate(est, X) - T) ^ 2):mean():item()
    truthy(mse < 0.05 * (T:std():item() ^ 2), "mse " .. mse .. " against a target variance " .. T:std():item() ^ 2)
    -- along the confidence at z = 0 the estimate falls monotonically
    local grid = {}
    for k = 0, 10 do grid[#grid + 1] = {0, 0, 6 + 1.8 * k} end
    local e = I.estimate(est, lm.tensor(grid)):totable()
    for k = 2, #e do truthy(e[k] < e[k - 1], string.format("e_hat(c=%g) %.3f >= %.3f", grid[k][3], e[k], e[k - 1])) end
    raises(function() S.fit_standardized_estimator(est, Z, T) end,
      "fit_standardized_estimator: X must be a tensor [N, 3]")
    raises(function() S.fit_standardized_estimator(est, X, T:narrow(1, 1, 5)) end,
      "fit_standardized_estimator: T must hold one target per row of X (2048)")
    raises(function() S.StandardizedEstimator{} end,
      "StandardizedEstimator: needs inputs (the number of values a sample)")
    raises(function() S.columns{Z, {1, 2}} end, "scores.columns: part 2 has 2 rows, part 1 2048")
  end)

  it("reads the encoder's representation before the bottleneck", function()
    lm.manual_seed(42)
    local H = lm.randn(50, 12) * 3 + 1
    local vae = I.InfoVAE{inputs = 12, hidden = 8, depth = 2}
    vae:fit_standardization(H)
    vae:evaluate()
    local P = S.pre_bottleneck(vae, H, {batch = 16})
    same(P:shape(), {50, 8})
    -- the bottleneck's linear layer on it gives the latents
    local enc = vae.encoder
    local Z = lm.no_grad(function() return enc[enc:size()](P) end)
    same(Z:totable(), vae:encode_all(H):totable(), 1e-5)
    truthy(P:min():item() >= -1 - 1e-6, "after an ELU") -- ELU(x) > -1
  end)
end)

describe("error scores: the epoch chosen on validation", function()
  it("keeps the epoch whose estimates find the validation errors best, and restores it", function()
    local est = lm.nn.Linear(1, 1)
    local X = lm.tensor{{1}, {2}, {3}, {4}}
    local wrong = {false, false, true, true}
    local seen = {}
    local opts, restore = S.keep_best_epoch(est, X, wrong,
      {epochs = 3, log = function(e, r) seen[e] = r.validation end})
    eq(opts.epochs, 3)
    local function epoch(e, w)
      lm.no_grad(function() est.weight:fill_(w); est.bias:fill_(0) end)
      opts.log(e, {loss = 0})
    end
    epoch(1, 1)    -- estimates rise with x: the wrong rows on top, AUROC 1 + AUPR 1
    epoch(2, -1)   -- reversed: the wrong rows at the bottom
    epoch(3, 0.5)  -- as good as epoch 1, not better: epoch 1 stays
    near(seen[1], 2, 1e-12)
    truthy(seen[2] < 1, tostring(seen[2]))
    near(seen[3], 2, 1e-12)
    local e, score = restore()
    eq(e, 1)
    near(score, 2, 1e-12)
    near(est.weight:item(), 1, 0, "epoch 1's weight is back")
    raises(function() S.keep_best_epoch(est, lm.zeros(3, 1), wrong) end,
      "keep_best_epoch: X_val must be a tensor with one row per entry of wrong")
  end)
end)

describe("error scores: the experiment", function()
  -- an experiment file run with arguments, its printing silenced
  local run_experiment = dofile("tests/helpers/run_experiment.lua")

  it("runs over a small main run and agrees with its metrics", function()
    local dir = os.tmpname()
    os.remove(dir)
    dofile("tests/helpers/fake_mnist.lua").write(dir, 600, 200)
    local out = dir .. "/out"
    local ok, metrics = run_experiment("experiments/introspect_mnist.lua", {"--data-dir", dir, "--cycles", "2",
      "--ae-epochs", "2", "--est-epochs", "2", "--est-period", "20", "--est-cycles", "3", "--trajectory-samples", "50",
      "--out", out})
    truthy(ok, metrics)
    local sok, r = run_experiment("experiments/error_scores_mnist.lua", {"--data-dir", dir, "--out", out,
      "--est-epochs", "1", "--long-epochs", "1", "--wide-epochs", "1", "--heldout-epochs", "1", "--folds", "3",
      "--resamples", "5"})
    truthy(sok, r)
    eq(#r.variants, 20)
    eq(r.validation_images, 60)
    eq(r.test_images, 200)
    local by = {}
    for _, v in ipairs(r.variants) do by[v.name] = v end
    -- the baseline and the cached estimator measured as the main run measured them
    near(by.max_logit.test.auroc_correct, metrics.auroc_correct_baseline, 1e-12, "baseline AUROC")
    near(by.max_logit.test.aupr_error, metrics.aupr_error_baseline, 1e-12, "baseline AUPR")
    near(by.e_hat.test.auroc_correct, metrics.auroc_correct, 1e-12, "e_hat AUROC")
    near(by.e_hat.test.aupr_error, metrics.aupr_error, 1e-12, "e_hat AUPR")
    eq(by[r.chosen].family ~= "baseline" and by[r.chosen].family ~= "diagnostic", true, "chosen " .. r.chosen)
    -- each family's best on validation, and the chosen one the best of the others
    local best = {}
    local function sum(v) return v.validation.auroc_correct + v.validation.aupr_error end
    for _, v in ipairs(r.variants) do
      if not best[v.family] or sum(v) > sum(best[v.family]) then best[v.family] = v end
    end
    for family, v in pairs(best) do eq(r.best_per_family[family], v.name, family) end
    for _, v in ipairs(r.variants) do
      if v.family ~= "baseline" and v.family ~= "diagnostic" then
        truthy(sum(v) <= sum(by[r.chosen]), v.name .. " is not ahead of the chosen variant on validation")
      end
    end
    local f = io.open(out .. "/error_scores.md")
    truthy(f and f:read("a"):find("| e_hat[recording 2400]", 1, true), "the markdown table")
    if f then f:close() end
    local missing = run_experiment("experiments/error_scores_mnist.lua", {"--out", dir .. "/nothing"})
    eq(missing, false)
    local _, err = run_experiment("experiments/error_scores_mnist.lua", {"--out", dir .. "/nothing"})
    truthy(tostring(err):find("error_scores_mnist: " .. dir .. "/nothing/classifier.safetensors is missing", 1, true),
      tostring(err))
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("runs over a small Net2 map on CIFAR-10, with an estimator that also sees the convolutions", function()
    local dir = os.tmpname()
    os.remove(dir)
    dofile("tests/helpers/fake_cifar.lua").write(dir, 200, 40)
    local out = dir .. "/out"
    local sok, err = run_experiment("experiments/error_scores_cifar10.lua", {"--data-dir", dir, "--out", out,
      "--model", dir .. "/net2.safetensors"})
    eq(sok, false)
    truthy(tostring(err):find("error_scores_cifar10: " .. dir .. "/net2.safetensors is missing", 1, true),
      tostring(err))
    -- a Net2 trained two short cycles: right on a tenth of the images, so
    -- that every fold of the validation split holds both outcomes
    local ok, trained = run_experiment("experiments/net2_cifar10.lua", {"--data-dir", dir, "--subset", "200",
      "--cycles", "2", "--batch", "16", "--width", "0.1", "--lr-max", "2e-3", "--period-epochs", "1",
      "--trajectory-samples", "10", "--out", dir .. "/net2"})
    truthy(ok, trained)
    local metrics
    ok, metrics = run_experiment("experiments/introspect_cifar10.lua", {"--data-dir", dir, "--model",
      dir .. "/net2/model.safetensors", "--width", "0.1", "--ae-epochs", "1", "--est-epochs", "1", "--est-period", "10",
      "--est-cycles", "2", "--out", out})
    truthy(ok, metrics)
    local r
    sok, r = run_experiment("experiments/error_scores_cifar10.lua", {"--data-dir", dir, "--out", out, "--model",
      dir .. "/net2/model.safetensors", "--width", "0.1", "--est-epochs", "1", "--long-epochs", "1",
      "--wide-epochs", "1", "--heldout-epochs", "1", "--folds", "3", "--resamples", "5"})
    -- a GPU asked for where there is none, and a folder without test images
    local gok, gerr = run_experiment("experiments/error_scores_cifar10.lua", {"--data-dir", dir, "--out", out,
      "--model", dir .. "/net2/model.safetensors", "--width", "0.1", "--device", "cuda"})
    if not lm.cuda.available() then
      eq(gok, false)
      truthy(tostring(gerr):find("--device cuda: " .. lm.cuda.status(), 1, true), tostring(gerr))
    end
    os.remove(dir .. "/cifar10/test_batch.bin")
    local tok, terr = run_experiment("experiments/error_scores_cifar10.lua", {"--data-dir", dir, "--out", out,
      "--model", dir .. "/net2/model.safetensors", "--width", "0.1"})
    os.execute("rm -rf '" .. dir .. "'")
    eq(tok, false)
    truthy(tostring(terr):find("error_scores_cifar10: no CIFAR-10 test images in", 1, true), tostring(terr))
    truthy(sok, r)
    same({r.training_images, r.validation_images, r.test_images}, {900, 100, 40})
    local by = {}
    for _, v in ipairs(r.variants) do by[v.name] = v end
    eq(#r.variants, 21)
    -- the conv ELUs of Net2 at width 0.1 (10, 10, 10, 19, 19, 19, 19 channels), averaged over space
    truthy(by["e_hat[recording 1536 + conv 106]"], "the estimator on the dense and pooled conv recordings")
    near(by.max_logit.test.auroc_correct, metrics.auroc_correct_baseline, 1e-12, "baseline AUROC")
    near(by.max_logit.test.aupr_error, metrics.aupr_error_baseline, 1e-12, "baseline AUPR")
    near(by.e_hat.test.auroc_correct, metrics.auroc_correct, 1e-12, "e_hat AUROC")
    near(by.e_hat.test.aupr_error, metrics.aupr_error, 1e-12, "e_hat AUPR")
  end)
end)

describe("error scores: arguments they would otherwise get wrong", function()
  it("refuses fractional folds, keeps w = 1 on every grid, and takes whole floats as seeds", function()
    raises(function() S.cross_fit(5, function() end, function() end, {folds = 2.5}) end,
      "cross_fit: folds must be a whole number, got 2.5")
    -- a grid of step 0.3 reaches w = 1: a feature that alone is perfect gets all the weight
    local f1, pos = {}, {}
    lm.manual_seed(3)
    local f2 = lm.rand(200):totable() -- noise: any weight on it mixes up the samples near the threshold
    for i = 1, 200 do f1[i], pos[i] = i, i > 100 end
    eq(S.fit_rank_average({f1, f2}, pos, {step = 0.3}).weight, 1)
    local a, b, w = {}, {}, {}
    for i = 1, 30 do a[i], b[i], w[i] = i % 7, i % 5, i % 3 == 0 end
    local r1 = S.paired_bootstrap(a, b, w, {seed = 4.0, resamples = 20})
    local r2 = S.paired_bootstrap(a, b, w, {seed = 4, resamples = 20})
    same(r1, r2)
    raises(function() S.paired_bootstrap(a, b, w, {seed = 4.5, resamples = 20}) end, "seed must be an integer, got 4.5")
  end)
end)
