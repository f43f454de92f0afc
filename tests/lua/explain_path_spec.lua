-- Attributions along a path of inputs (lm.explain.path): the chosen steps,
-- the same numbers as lm.explain's methods give for those inputs, the
-- default target (where the path ends), log10 e_hat's attributions, the
-- figure, and FGSM iterates kept for it (analyses.fgsm_path{keep_inputs}).
local lm = require 'lumen'
local nn, I, E = lm.nn, lm.introspect, lm.explain
local A = require 'lumen.introspect.analyses'

local function setup()
  lm.manual_seed(31)
  local net = nn.Sequential(nn.Linear(16, 8), nn.ELU(), nn.Linear(8, 8), nn.ELU(), nn.Linear(8, 3), nn.Sigmoid())
  local rec = I.Recorder(net)
  local vae = I.InfoVAE{inputs = 16, hidden = 8, depth = 1}
  local est = I.Estimator{hidden = 8, depth = 1}
  vae:fit_standardization(rec:record(lm.rand(40, 16)))
  return net, rec, vae, est
end

local function max_abs(a, b) return (a - b):abs():max():item() end

describe("lm.explain.path", function()
  it("attributes the chosen steps exactly as the method does, to the class the path ends in", function()
    local net = setup()
    local xs = lm.rand(10, 16)
    local r = E.path(net, xs, {count = 4, steps = 16})
    same(r.at, {1, 4, 7, 10})
    local last = lm.no_grad(function() return net(xs:narrow(1, 10, 1)) end)
    eq(r.target, last:argmax(2):item(), "the default target is the last step's prediction")
    local picked = xs:index_select(lm.tensor({1, 4, 7, 10}, 'int32'))
    eq(max_abs(r.inputs, picked), 0)
    local want = E.integrated_gradients(net, picked, {target = r.target, steps = 16})
    eq(max_abs(r.class, want), 0, "integrated gradients of the same inputs")
    local sal = E.path(net, xs, {at = {2, 9}, method = "saliency", target = 1})
    eq(max_abs(sal.class, E.saliency(net, xs:index_select(lm.tensor({2, 9}, 'int32')), {target = 1})), 0)
  end)

  it("adds log10 e_hat's attributions and draws the steps", function()
    local net, rec, vae, est = setup()
    local xs = lm.rand(6, 16)
    local path = os.tmpname() .. ".png"
    local r = E.path(net, xs, {count = 3, recorder = rec, vae = vae, est = est, steps = 8, figure = path,
      shape = {1, 4, 4}})
    local want = E.log_error(rec, vae, est, r.inputs, {method = "integrated_gradients", steps = 8})
    eq(max_abs(r.error, want), 0)
    local w, h = lm.image.info(path)
    truthy(w > 100 and h > 50, "the figure was written: " .. w .. "x" .. h)
    -- a title of its own, and a class for each step (a list or a tensor) in the figure's label
    E.path(net, xs, {count = 3, steps = 4, title = "my path", target = {1, 2, 1}, figure = path, shape = {1, 4, 4}})
    E.path(net, xs, {count = 3, steps = 4, target = lm.tensor({2, 2, 1}, "int32"), figure = path, shape = {1, 4, 4}})
    truthy(lm.image.info(path) > 100)
    os.remove(path)
  end)

  it("says what is wrong with its arguments", function()
    local net = setup()
    raises(function() E.path(net, lm.rand(16)) end, "xs must be a tensor of inputs [T, ...]")
    raises(function() E.path(net, lm.rand(4, 16), {at = {5}}) end, "step 5 is not one of the path's 4 steps")
    raises(function() E.path(net, lm.rand(4, 16), {count = 0}) end, "path: count must be an integer >= 1, got 0")
    same(E.path(net, lm.rand(4, 16), {count = 1, method = "saliency"}).at, {4}, 0, "one step: where the path ends")
    raises(function() E.path(net, lm.rand(4, 16), {method = "occlusion"}) end, "method must be 'integrated_gradients'")
  end)

  it("takes FGSM's iterates, kept by analyses.fgsm_path", function()
    local net, rec, vae = setup()
    local x = lm.rand(1, 16)
    local p = A.fgsm_path(net, rec, vae, x, 2, {steps = 5, classes = 3, keep_inputs = true})
    same(p.xs:shape(), {6, 16})
    eq(max_abs(p.xs:narrow(1, 1, 1), x), 0, "the first iterate is the input")
    eq(max_abs(p.xs:narrow(1, 6, 1), p.x), 0, "the last is the attack's result")
    local r = E.path(net, p.xs, {count = 3, target = 2, steps = 8})
    same(r.at, {1, 4, 6})
  end)
end)
