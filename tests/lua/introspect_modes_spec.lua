-- The introspection helpers leave a network as they found it: each
-- module's own mode (not the top's), no parameter gradients after FGSM,
-- the caller's option tables untouched; and their edge cases: a FGSM path
-- longer than a cat of 256, a misclassified start, a density far from
-- every point, a saturated classifier under untargeted FGSM, a run's seed.
local lm = require 'lumen'
local nn, I, E = lm.nn, lm.introspect, lm.explain
local A = require 'lumen.introspect.analyses'
local Fig = require 'lumen.introspect.figures'
local study = require 'lumen.introspect.study'

local function setup()
  lm.manual_seed(31)
  local net = nn.Sequential(nn.Linear(16, 8), nn.ELU(), nn.Dropout(0.1), nn.Linear(8, 3), nn.Sigmoid())
  local rec = I.Recorder(net)
  local vae = I.InfoVAE{inputs = 8, hidden = 8, depth = 1}
  local est = I.Estimator{hidden = 8, depth = 1}
  vae:fit_standardization(rec:record(lm.rand(40, 16)))
  return net, rec, vae, est
end

local function modes(net)
  local out = {}
  for i, m in ipairs(net:modules()) do out[i] = m.training end
  return out
end

describe("introspection helpers and the network's state", function()
  it("put back each module's own mode and leave no parameter gradient", function()
    local net, rec, vae = setup()
    net:train()
    net[3]:evaluate() -- a mixed state: dropout off inside a training net
    local before = modes(net)
    local x = lm.rand(5, 16)
    rec:record(x)
    same(modes(net), before, "Recorder:record")
    I.baseline_scores(net, x)
    same(modes(net), before, "baseline_scores")
    A.accuracy_under_noise(net, {x = x, y = lm.tensor({1, 2, 3, 1, 2}, 'int32')}, {0, 0.1})
    same(modes(net), before, "accuracy_under_noise")
    A.fgsm_path(net, rec, vae, x:narrow(1, 1, 1), 2, {steps = 3, classes = 3})
    same(modes(net), before, "fgsm_path")
    A.fgsm_untargeted(net, x, lm.tensor({1, 2, 3, 1, 2}, 'int32'), {steps = 2, classes = 3})
    same(modes(net), before, "fgsm_untargeted")
    for _, p in ipairs(net:parameters()) do eq(p.grad, nil, "FGSM leaves no parameter gradient") end
    for _, p in ipairs(net:parameters()) do truthy(p:requires_grad(), "the parameters still require gradients") end
    -- and after an error too
    raises(function() rec:record(lm.rand(2, 5)) end, "linear")
    same(modes(net), before, "after a failed recording")
    raises(function() lm.nn.evaluating(net, function() error("inside") end) end, "inside")
    same(modes(net), before, "after a failed nn.evaluating")
  end)

  it("follow a FGSM path of more steps than 256", function()
    local net, rec, vae = setup()
    local r = A.fgsm_path(net, rec, vae, lm.rand(1, 16), 2, {steps = 300, eps = 0.001, classes = 3,
      keep_inputs = true})
    eq(r.z:shape_string(), "301x2")
    eq(r.xs:shape_string(), "301x16")
    eq(#r.predictions, 301)
  end)

  it("aim FGSM at every class but the one the start is classified as", function()
    local net, rec, vae = setup()
    local x = lm.rand(1, 16)
    local pred = lm.no_grad(function() net:evaluate(); return net(x):argmax(2):item() end)
    local label = pred % 3 + 1 -- a label the net gets wrong
    local run = Fig.fgsm_run{net = net, recorder = rec, vae = vae, x = x, label = label,
      classes = {"a", "b", "c"}, steps = 0, eps = 0}
    eq(#run.paths, 2)
    for _, p in ipairs(run.paths) do truthy(p.target ~= pred, "no path to the start's own class") end
    eq(run.success_rate, 0, "no step taken, nothing reached")
  end)

  it("leave the caller's options as they were", function()
    local _, _, _, est = setup()
    local o = {epochs = 1, tty = false}
    I.fit_estimator(est, lm.randn(300, 2), lm.randn(300), o)
    I.fit_estimator(est, lm.randn(50, 2), lm.randn(50), o) -- reused with fewer rows than a batch
    same(o, {epochs = 1, tty = false})
  end)

  it("give the error attributions along a path the class attributions' settings", function()
    local net, rec, vae, est = setup()
    local xs = lm.rand(4, 16)
    local r = E.path(net, xs, {count = 2, recorder = rec, vae = vae, est = est, steps = 8, baseline = 0.5})
    local want = E.log_error(rec, vae, est, r.inputs, {method = "integrated_gradients", steps = 8, baseline = 0.5})
    eq((r.error - want):abs():max():item(), 0)
  end)
end)

describe("densities and scores far from the map", function()
  it("keep log p finite and ordered where p underflows", function()
    lm.manual_seed(1)
    local ref = lm.randn(500, 2) * 0.3
    local Z = lm.tensor{{0, 0}, {3, 0}, {4, 0}, {6, 0}}
    local p = A.kernel_density(Z, ref):totable()
    eq(p[3], 0, "p underflows in float32")
    local lp = A.log_kernel_density(Z, ref):totable()
    near(lp[1], math.log(p[1]), 1e-4)
    truthy(lp[2] > lp[3] and lp[3] > lp[4] and lp[4] > -math.huge, table.concat(lp, " "))
    -- against a double-precision sum over the reference points
    local h = A.bandwidth(ref)
    local pts, sum = ref:totable(), 0
    local best = -math.huge
    local terms = {}
    for i, r in ipairs(pts) do
      terms[i] = -((4 - r[1]) ^ 2 + r[2] ^ 2) / (2 * h * h)
      best = math.max(best, terms[i])
    end
    for _, t in ipairs(terms) do sum = sum + math.exp(t - best) end
    local want = best + math.log(sum / #pts) - math.log(2 * math.pi * h * h)
    near(lp[3], want, 1e-3 * math.abs(want))
  end)

  it("move a saturated classifier's inputs under untargeted FGSM (at its logits)", function()
    local net = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())
    lm.no_grad(function()
      net[1].weight:copy_(lm.tensor{{400, 0, 0, 0}, {0, -400, 0, 0}, {0, 0, -400, 0}})
      net[1].bias:fill_(0)
    end)
    local x = lm.full({1, 4}, 0.5)
    local adv = A.fgsm_untargeted(net, x, lm.tensor({1}, 'int32'), {steps = 3, eps = 0.1, classes = 3})
    truthy((adv - x):abs():max():item() > 0.1, "the input moved")
  end)

  it("read a run's split seed and refuse a run on another data set", function()
    local dir = os.tmpname()
    os.remove(dir)
    lm.mkdir(dir)
    eq(study.run_seed(dir, "t"), 1, "no metrics.json: the default")
    local f = io.open(dir .. "/metrics.json", "w")
    f:write('{"seed": 7, "data": "mnist"}')
    f:close()
    eq(study.run_seed(dir, "t", "mnist"), 7)
    raises(function() study.run_seed(dir, "t", "fashion") end, "t: " .. dir .. " was a run on mnist, not fashion")
    -- the options that made the models, where a run recorded them: its metrics.json may be an older run's
    lm.json.write(dir .. "/options.json", {seed = 3, data = "fashion"})
    eq(study.run_seed(dir, "t", "mnist"), 3)
    eq(study.run_data(dir), "fashion")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
