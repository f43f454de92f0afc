-- Flagging suspicious inputs with a mapped classifier (beyond the paper;
-- docs/analyses/detection.md, docs/analyses/risk-coverage.md): scores where
-- higher means "suspicious", the detection benchmark over misclassified,
-- noisy and FGSM inputs, and the measures it reports. lumen.introspect.analyses
-- re-exports every function here, so the reference calls them `analyses.*`:
--
--   local A = require 'lumen.introspect.analyses'
--   local r = A.detection_benchmark{net = net, recorder = rec, vae = vae, est = est,
--     x = test.x, y = test.y, correct = pred:eq(test.y), reference = Z_train, n = 2000}
--   print(r.markdown)
local lm = require 'lumen'
local Adv = require 'lumen.introspect.adversarial'
local I = require 'lumen.introspect'

local D = {}

-- lumen.introspect.analyses requires this module, so it is looked up on use
local function analyses() return require 'lumen.introspect.analyses' end

-- ---- measures --------------------------------------------------------------------------------------

--- False-positive rate at the threshold where `tpr` (0.95) of the positives
--- score at or above it (higher score = more likely positive).
function D.fpr_at_tpr(scores, positives, tpr)
  I.check_scored("fpr_at_tpr", scores, positives)
  tpr = tpr or 0.95
  if type(tpr) ~= "number" or not (tpr > 0 and tpr <= 1) then
    error("fpr_at_tpr: tpr must be a rate in (0, 1], got " .. tostring(tpr), 2)
  end
  local pos, neg = {}, {}
  for i, s in ipairs(scores) do
    if positives[i] then pos[#pos + 1] = s else neg[#neg + 1] = s end
  end
  if #pos == 0 or #neg == 0 then return 0 / 0 end
  table.sort(pos, function(a, b) return a > b end)
  local threshold = pos[math.max(1, math.ceil(tpr * #pos))]
  local fp = 0
  for _, s in ipairs(neg) do if s >= threshold then fp = fp + 1 end end
  return fp / #neg
end

--- Risk-coverage: keep the fraction `coverage` of samples with the highest
--- confidence and measure the accuracy on them, for coverages 1/steps ..
--- 1. Samples of equal confidence cannot be told apart: where a coverage
--- takes part of such a group, it counts the group's share of correct ones
--- (the expected accuracy over the group's orders), not the first by index.
--- Returns lists coverage, accuracy.
function D.risk_coverage(confidence, correct, steps)
  steps = steps or 50
  if math.type(steps) ~= "integer" or steps < 1 then -- (0 or -3 gave empty lists, 2.5 odd points)
    error("risk_coverage: steps must be a positive integer, got " .. tostring(steps), 2)
  end
  I.check_scored("risk_coverage", confidence, correct)
  local n = #confidence
  local cov, acc = {}, {}
  local hits, next_mark = 0, 1 -- hits among the groups before this one
  for r, last, group_hits in I.tie_groups(confidence, correct, true) do
    -- every mark whose kept count falls in this group
    while next_mark <= steps and math.ceil(n * next_mark / steps) <= last do
      local kept = math.ceil(n * next_mark / steps)
      local share = (kept - r + 1) / (last - r + 1)
      cov[#cov + 1], acc[#acc + 1] = kept / n, (hits + share * group_hits) / kept
      next_mark = next_mark + 1
    end
    hits = hits + group_hits
  end
  return cov, acc
end

--- The accuracy of a risk-coverage curve (the lists D.risk_coverage returns)
--- at the first coverage that reaches `c` (the last point if none does).
function D.accuracy_at_coverage(coverage, accuracy, c)
  for i = 1, #coverage do if coverage[i] >= c - 1e-9 then return accuracy[i] end end
  return accuracy[#accuracy]
end

-- ---- scores ----------------------------------------------------------------------------------------

--- Untargeted iterative FGSM away from the true labels: x <- clip(x + eps *
--- sign(grad_x L), 0, 1) with L the classifier's error against the one-hot
--- labels, for inputs x [N, ...] (pixels in [0, 1]) and 1-based labels [N].
--- o.steps (10), o.eps (0.02), o.classes (10). Returns the last iterate, in
--- evaluation mode.
function D.fgsm_untargeted(net, x, labels, o)
  o = require('lumen.nn.checks').opts(o, "fgsm_untargeted", {"steps", "eps", "classes"})
  local steps, eps = o.steps or 10, o.eps or 0.02
  local device = lm.train.device_of(net)
  local goal = lm.data.one_hot(labels, o.classes or 10):float():to(device)
  local adv = x:to(device):clone()
  local logits = Adv.logits_of(net) -- a saturated sigmoid still moves the input
  lm.nn.evaluating(net, function() -- the input's gradient only: the parameters gather none
    for _ = 1, steps do
      local xin = adv:detach():requires_grad(true)
      local grad = Adv.gradient(net, logits, xin, goal)
      adv = lm.no_grad(function() return (xin + grad:sign() * eps):clamp(0, 1) end)
    end
  end, {frozen = true})
  return adv:to('cpu')
end

--- The suspicion scores of each input x [N, ...] (higher = more
--- suspicious), as lists: e_hat (log10 of the estimated error),
--- reconstruction (the autoencoder's mean squared error, in standardised
--- units), neg_log_density (-log p(z) under a kernel density of the latents
--- o.reference [M, 2], bandwidth o.bandwidth or Scott's) and max_sigmoid
--- (minus the largest logit, lm.introspect.baseline_scores negated). o: net,
--- recorder, vae, est, reference. Also returns the classifier's outputs [N, C].
function D.detection_scores(o, x)
  local h = o.bandwidth or analyses().bandwidth(o.reference)
  local H, Y = o.recorder:record_set(x)
  local Z = o.vae:encode_all(H)
  local e = I.estimate(o.est, Z):totable()
  local vae = o.vae
  local recon = lm.no_grad(function()
    local s = vae:prepare(H)
    return ((vae.decoder(vae.encoder(s)) - s) ^ 2):mean(2)
  end):totable()
  local nlp = {}
  for i, v in ipairs(analyses().log_kernel_density(Z, o.reference, h):totable()) do nlp[i] = -v end
  local base = {}
  for i, v in ipairs(I.baseline_scores(o.net, x)) do base[i] = -v end -- the largest logit, negated
  return {e_hat = e, reconstruction = recon, neg_log_density = nlp, max_sigmoid = base}, Y
end

-- ---- the benchmark ---------------------------------------------------------------------------------

local SCORES = {"e_hat", "reconstruction", "neg_log_density", "max_sigmoid"}

-- The scores of two sets as one list, with the second set's as positives.
local function pair(a, b)
  local s, p = {}, {}
  for _, v in ipairs(a) do s[#s + 1], p[#p + 1] = v, false end
  for _, v in ipairs(b) do s[#s + 1], p[#p + 1] = v, true end
  return s, p
end

--- How well each score of D.detection_scores flags (a) the classifier's
--- mistakes, (b) noisy inputs (Gaussian noise of sigma o.sigma, 0.3,
--- clipped to [0, 1], from the seeded stream) and (c) untargeted FGSM inputs
--- (o.fgsm_steps, 10, of o.fgsm_eps, 0.02) against the clean ones, over the
--- first o.n (all) rows of o.x with labels o.y and correctness o.correct
--- ([N], 1 where the classifier is right). o: net, recorder, vae, est,
--- reference (training latents for the density; o.bandwidth), classes (10).
--- Returns {detection = {task -> {score -> {auroc, aupr, fpr_at_95_tpr}}},
--- note (what was measured, in words), markdown (a table, one row per task
--- and score), adversarial_accuracy (the classifier's on the FGSM inputs)}.
function D.detection_benchmark(o)
  local n = math.min(o.n or o.x:size(1), o.x:size(1))
  local sigma, steps, eps = o.sigma or 0.3, o.fgsm_steps or 10, o.fgsm_eps or 0.02
  local so = {net = o.net, recorder = o.recorder, vae = o.vae, est = o.est, reference = o.reference,
    bandwidth = o.bandwidth or analyses().bandwidth(o.reference)}
  local clean_x, clean_y = lm.data.to_float(o.x:narrow(1, 1, n)), o.y:narrow(1, 1, n)
  local clean = D.detection_scores(so, clean_x)
  local noisy = D.detection_scores(so, (clean_x + lm.randn(clean_x:shape()) * sigma):clamp(0, 1))
  local adv_x = D.fgsm_untargeted(o.net, clean_x, clean_y, {steps = steps, eps = eps, classes = o.classes})
  local adv = D.detection_scores(so, adv_x)
  local adv_acc = lm.no_grad(function()
    return o.net(adv_x:to(lm.train.device_of(o.net))):argmax(2):to('cpu'):eq(clean_y):float():mean():item()
  end)
  local wrong = {}
  local ct = o.correct:narrow(1, 1, n):totable()
  for i = 1, n do wrong[i] = ct[i] == 0 end
  local detection = {}
  local md = {"| task | score | AUROC | AUPR | FPR at 95 % TPR |", "| --- | --- | --- | --- | --- |"}
  local tasks = {
    {"misclassified vs correct", function(score) return clean[score], wrong end},
    {string.format("noisy (sigma %g) vs clean", sigma), function(score) return pair(clean[score], noisy[score]) end},
    {"FGSM vs clean", function(score) return pair(clean[score], adv[score]) end},
  }
  for _, task in ipairs(tasks) do
    detection[task[1]] = {}
    for _, score in ipairs(SCORES) do
      local s, p = task[2](score)
      local r = {auroc = I.auroc(s, p), aupr = I.aupr(s, p), fpr_at_95_tpr = D.fpr_at_tpr(s, p, 0.95)}
      detection[task[1]][score] = r
      md[#md + 1] = string.format("| %s | %s | %.3f | %.3f | %.3f |", task[1], score, r.auroc, r.aupr, r.fpr_at_95_tpr)
    end
  end
  local note = string.format("first %d test images; FGSM: %d untargeted steps of %g leave %.1f %% of them correct. " ..
    "Positives are the misclassified, noisy or FGSM inputs; every score is higher for more suspicious inputs " ..
    "(max_sigmoid: minus the largest logit, which orders as the largest sigmoid without float32's ties at 1.0). " ..
    "FPR at 95 %% TPR: the share of negatives scoring at or above the score that 95 %% of the positives reach.",
    n, steps, eps, 100 * adv_acc)
  return {detection = detection, note = note, markdown = table.concat(md, "\n"), adversarial_accuracy = adv_acc}
end

return D
