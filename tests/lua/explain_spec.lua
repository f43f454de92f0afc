-- lm.explain: attributions checked against what they promise (completeness
-- of integrated gradients, the autograd gradient, hand-computed occlusion,
-- finite differences for the map's quantities), Grad-CAM and Grad-CAM++
-- against PyTorch (tests/torch/explain_reference.py) on the same weights,
-- and the figures by their pixels.
local lm = require 'lumen'
local nn = lm.nn
local E = lm.explain
local I = lm.introspect

local function max_abs(t) return t:abs():max():item() end
local function mlp()
  lm.manual_seed(11)
  return lm.models.net1{inputs = 20, hidden = 32, layers = 4, classes = 5}
end

local function convnet()
  lm.manual_seed(12)
  return nn.Sequential(nn.Conv2d(2, 6, 3, {padding = 1}), nn.ELU(), nn.Conv2d(6, 8, 3, {stride = 2, padding = 1}),
    nn.ELU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4), nn.Sigmoid())
end

describe("integrated gradients", function()
  it("is complete on a Net1-like MLP: the gap is small and shrinks as steps grow", function()
    local net = mlp()
    lm.manual_seed(1)
    local x = lm.rand(6, 20)
    local gaps = {}
    for _, rule in ipairs{"riemann_left", "riemann_trapezoid", "gauss_legendre"} do
      gaps[rule] = {}
      for _, steps in ipairs{4, 16, 64} do
        local a, gap = E.integrated_gradients(net, x, {steps = steps, rule = rule})
        eq(a:shape_string(), "6x20")
        eq(gap:shape_string(), "6")
        gaps[rule][steps] = max_abs(gap)
      end
    end
    -- the score moves by about 0.1-0.4 between baseline and input; measured
    -- left 0.03 / 0.008 / 0.002, trapezoid 3e-3 / 2e-4 / 1e-5, Gauss-Legendre
    -- 1e-5 / 5e-7 / 5e-7 (float32 rounding)
    for _, rule in ipairs{"riemann_left", "riemann_trapezoid"} do
      local g = gaps[rule]
      truthy(g[16] < g[4] / 2 and g[64] < g[16] / 2, rule .. " gap shrinks: " .. g[4] .. " " .. g[16] .. " " .. g[64])
    end
    truthy(gaps.riemann_trapezoid[64] < 1e-4, "trapezoid, 64 steps: " .. gaps.riemann_trapezoid[64])
    truthy(gaps.gauss_legendre[16] < 1e-5, "Gauss-Legendre, 16 steps: " .. gaps.gauss_legendre[16])
    truthy(gaps.gauss_legendre[4] < gaps.riemann_trapezoid[4], "Gauss-Legendre beats the trapezoid rule")
  end)

  it("is complete on a conv net, with a baseline of one sample's shape", function()
    local net = convnet()
    lm.manual_seed(2)
    local x = lm.rand(5, 2, 8, 8)
    local base = lm.full({2, 8, 8}, 0.5)
    local prev = math.huge
    for _, steps in ipairs{4, 16, 64} do
      local a, gap = E.integrated_gradients(net, x, {steps = steps, rule = "riemann_trapezoid", baseline = base,
        target = 2, batch_size = 17})
      eq(a:shape_string(), "5x2x8x8")
      local g = max_abs(gap)
      truthy(g < prev / 2 or g < 1e-6, string.format("gap %.3g after %.3g", g, prev))
      prev = g
    end
    truthy(prev < 1e-4, "trapezoid, 64 steps: " .. prev)
    -- the gap is sum(a) - (f(x) - f(baseline)), recomputed here
    local a, gap = E.integrated_gradients(net, x, {steps = 8, target = {1, 2, 3, 4, 1}})
    local out = lm.no_grad(function() return net(x) end)
    local out0 = lm.no_grad(function() return net(lm.zeros(5, 2, 8, 8)) end)
    local sums = a:view(5, -1):sum(2)
    for i, t in ipairs{1, 2, 3, 4, 1} do
      near(gap[i], sums[i] - (out[i][t] - out0[i][t]), 1e-5, "gap " .. i)
    end
  end)

  it("has quadrature rules whose weights sum to 1 and integrate polynomials", function()
    for _, rule in ipairs{"riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gauss_legendre"} do
      local a, w = E.quadrature(rule, 7)
      local sw, s3 = 0, 0
      for k = 1, 7 do sw, s3 = sw + w[k], s3 + w[k] * a[k] ^ 3 end
      near(sw, 1, 1e-12, rule .. " weights")
      if rule == "gauss_legendre" then near(s3, 0.25, 1e-12, "Gauss-Legendre integrates t^3 exactly") end
    end
    raises(function() E.quadrature("simpson", 4) end, "rule must be one of")
    raises(function() E.integrated_gradients(mlp(), lm.rand(2, 20), {rule = "riemann_trapezoid", steps = 1}) end,
      "steps >= 2")
  end)
end)

describe("gradient methods", function()
  it("saliency is the autograd input gradient of the target's output", function()
    local net = mlp():evaluate()
    lm.manual_seed(3)
    local x = lm.rand(4, 20)
    local targets = {2, 5, 1, 3}
    local xr = x:clone():requires_grad(true)
    local out = net(xr)
    local mask = lm.data.one_hot(lm.tensor(targets, "int32"), 5):float()
    net:zero_grad()
    ;(out * mask):sum():backward()
    local direct = xr.grad
    local a = E.saliency(net, x, {target = targets})
    truthy(max_abs(a - direct) <= 1e-7 * max_abs(direct), "saliency = autograd gradient")
    same(E.saliency(net, x, {target = lm.tensor(targets, "int32")}):totable(), a:totable(), 0)
    near(max_abs(E.saliency(net, x, {target = targets, abs = true}) - direct:abs()), 0, 0)
    near(max_abs(E.input_x_gradient(net, x, {target = targets}) - direct * x), 0, 1e-7)
    -- default target: the prediction
    local pred = lm.no_grad(function() return net(x):argmax(2) end)
    near(max_abs(E.saliency(net, x) - E.saliency(net, x, {target = pred})), 0, 0)
    raises(function() E.saliency(net, x, {target = {1, 2}}) end, "target lists 2 classes for a batch of 4")
    raises(function() E.saliency(net, x, {target = 6}) end, "target classes must be in 1..5")
  end)

  it("leaves the model as it was: mode, parameter flags and gradients", function()
    local net = mlp()
    net:train()
    net[3]:evaluate() -- a mixed mode stays mixed
    local p = net:parameters()[1]
    p.grad = lm.full(p:shape(), 0.25)
    local x = lm.rand(3, 20)
    lm.no_grad(function() E.integrated_gradients(net, x, {steps = 4}) end) -- also inside no_grad
    E.saliency(net, x)
    E.occlusion(net, x, {window = 5})
    eq(net.training, true)
    eq(net[3].training, false)
    eq(net[6].training, true)
    eq(p:requires_grad(), true)
    near(p.grad:sum():item(), 0.25 * p:numel(), 1e-6, "gradient untouched")
    eq(lm.is_grad_enabled(), true)
    raises(function() E.saliency(net, lm.rand(3, 7)) end, "linear: input has 7 features")
    eq(net.training, true, "restored after an error")
    eq(p:requires_grad(), true, "flags restored after an error")
  end)

  it("smoothgrad is the mean gradient over noisy copies, seeded without touching the global stream", function()
    local net = mlp():evaluate()
    local x = lm.rand(3, 20)
    near(max_abs(E.smoothgrad(net, x, {sigma = 0, samples = 3, target = 2}) - E.saliency(net, x, {target = 2})), 0,
      1e-7)
    local s1, o1 = lm.rng_state()
    local a = E.smoothgrad(net, x, {sigma = 0.3, samples = 10, seed = 5, batch_size = 9})
    local s2, o2 = lm.rng_state()
    eq(s1, s2)
    eq(o1, o2)
    local b = E.smoothgrad(net, x, {sigma = 0.3, samples = 10, seed = 5})
    near(max_abs(a - b), 0, 1e-6, "the same seed gives the same map, whatever the batch size")
    -- by hand: the mean of the saliencies of the same noisy copies
    lm.manual_seed(5)
    local noise = lm.randn(10 * 3, 20) * 0.3
    local sum = lm.zeros(3, 20)
    local target = lm.no_grad(function() return net(x):argmax(2) end)
    for k = 1, 10 do
      sum = sum + E.saliency(net, x + noise:narrow(1, (k - 1) * 3 + 1, 3), {target = target})
    end
    truthy(max_abs(sum / 10 - b) < 1e-5, "mean of noisy saliencies: " .. max_abs(sum / 10 - b))
    -- SmoothGrad-SQ: the mean of the squared saliencies of the same copies (not the square of their mean)
    local sq = E.smoothgrad(net, x, {sigma = 0.3, samples = 10, seed = 5, square = true})
    local sum_sq = lm.zeros(3, 20)
    for k = 1, 10 do
      local g = E.saliency(net, x + noise:narrow(1, (k - 1) * 3 + 1, 3), {target = target})
      sum_sq = sum_sq + g * g
    end
    truthy(max_abs(sum_sq / 10 - sq) < 1e-6 * (1 + max_abs(sq)), "mean of squares: " .. max_abs(sum_sq / 10 - sq))
    truthy(max_abs(b * b - sq) > 1e-4 * max_abs(sq), "not the square of the mean")
  end)

  it("refuses what it would otherwise get wrong: unknown options, shapes, targets", function()
    local net = mlp():evaluate()
    local x = lm.rand(3, 20)
    raises(function() E.integrated_gradients(net, x, {n_steps = 4}) end,
      "integrated_gradients: unknown option 'n_steps'; did you mean steps? "
        .. "(known: baseline, batch_size, rule, steps, target)")
    raises(function() E.saliency(net, x, {targets = 3}) end, "saliency: unknown option 'targets'")
    raises(function() E.integrated_gradients(net, x, {baseline = lm.zeros(4, 15)}) end,
      "integrated_gradients: baseline of shape 4x15 fits neither x (3x20) nor one sample")
    raises(function() E.saliency(net, x, {target = 2.5}) end, "saliency: target must be a class number, got 2.5")
    raises(function() E.saliency(net, x, {target = lm.tensor{1, 2.7, 3}}) end, "target must hold class numbers")
    raises(function() E.smoothgrad(net, x, {samples = 2.5}) end, "smoothgrad: samples must be an integer >= 1")
    -- a baseline of one sample's shape, with or without its leading 1, is every sample's
    local one = E.integrated_gradients(net, x, {baseline = lm.full({20}, 0.5), steps = 4})
    local lead = E.integrated_gradients(net, x, {baseline = lm.full({1, 20}, 0.5), steps = 4})
    local all = E.integrated_gradients(net, x, {baseline = 0.5, steps = 4})
    same(one:totable(), all:totable(), 1e-7); same(lead:totable(), all:totable(), 1e-7)
    -- attributions are results, not part of the caller's graph
    local xr = x:clone():requires_grad(true)
    eq(E.integrated_gradients(net, xr, {steps = 4}):requires_grad(), false)
    eq(E.input_x_gradient(net, xr):requires_grad(), false)
    eq(E.integrated_gradients(net, x, {steps = 4, baseline = lm.zeros(20):requires_grad(true)}):requires_grad(), false,
      "a baseline that requires gradients")
    -- options the chosen method would not read (method = 'integrated_gradients' forgotten: plain gradients)
    local score = function(X) return X:sum(2) end
    raises(function() E.attribute(function() return 3 end, x) end,
      "explain: the score function must return a tensor (one number per row), got 3")
    raises(function() E.attribute(score, x, {steps = 5}) end, "attribute: unknown option 'steps' (known: abs, method")
    raises(function() E.attribute(score, x, {method = "integrated_gradients", abs = true}) end,
      "attribute: unknown option 'abs'")
    -- sizes and noise that are not what they must be
    raises(function() E.integrated_gradients(net, x, {batch_size = 0}) end,
      "batch_size must be a positive integer (rows a pass), got 0")
    raises(function() E.smoothgrad(net, x, {sigma = -1}) end, "smoothgrad: sigma must be a number >= 0")
    -- Grad-CAM names its target range too
    local conv = convnet():evaluate()
    raises(function() E.grad_cam(conv, "3", lm.rand(2, 2, 8, 8), {target = 7}) end,
      "grad_cam: target classes must be in 1..4, got 7..7")
  end)
end)

describe("occlusion's arguments", function()
  it("refuses windows, strides and baselines it cannot slide", function()
    local conv = convnet():evaluate()
    local img = lm.rand(2, 2, 8, 8)
    for _, bad in ipairs{
      {{window = 2, stride = -1}, "stride must be a positive whole number or {h, w} of them, got -1"},
      {{window = 2, stride = 0}, "got 0"},
      {{window = 1.5}, "window must be a positive whole number"},
      {{window = {2, 0}}, "got {2, 0}"},
      {{window = 2, baseline = "a"}, 'baseline must be a number or a tensor, got "a"'}} do
      raises(function() E.occlusion(conv, img, bad[1]) end, bad[2])
    end
    raises(function() E.occlusion(mlp():evaluate(), lm.rand(2, 20), {window = {1, 2}}) end,
      "occlusion: window must be a positive whole number (a length: the samples are flat")
  end)
end)

describe("occlusion", function()
  -- a linear model: occluding a window (baseline 0) drops the score by
  -- sum over the window of w * x
  local lin = nn.Sequential(nn.Linear(16, 2))
  lm.manual_seed(4)
  local x = lm.rand(3, 16)
  local w = lin[1].weight:select(1, 2):totable()
  local xs = x:totable()
  local function window_sum(n, r, c, h, wd)
    local s = 0
    for i = r, r + h - 1 do for j = c, c + wd - 1 do s = s + w[(i - 1) * 4 + j] * xs[n][(i - 1) * 4 + j] end end
    return s
  end

  it("matches a hand-computed linear case, non-overlapping windows", function()
    local a = E.occlusion(lin, x, {window = 2, shape = {1, 4, 4}, target = 2})
    eq(a:shape_string(), "3x16")
    local got = a:totable()
    for n = 1, 3 do
      for i = 1, 4 do
        for j = 1, 4 do
          local r, c = (i - 1) // 2 * 2 + 1, (j - 1) // 2 * 2 + 1
          near(got[n][(i - 1) * 4 + j], window_sum(n, r, c, 2, 2), 1e-5, string.format("sample %d (%d, %d)", n, i, j))
        end
      end
    end
  end)

  it("averages overlapping windows, leaves uncovered pixels at 0 and honours the baseline", function()
    local a = E.occlusion(lin, x, {window = {2, 3}, stride = {1, 2}, shape = {4, 4}, target = 2, batch_size = 4})
    local got = a:totable()
    for n = 1, 3 do
      for i = 1, 4 do
        for j = 1, 4 do
          local s, count = 0, 0
          for r = 1, 3 do
            local c = 1 -- a window from column 3 would end at 5 > 4: one window column, column 4 uncovered
            if i >= r and i < r + 2 and j >= c and j < c + 3 then
              s, count = s + window_sum(n, r, c, 2, 3), count + 1
            end
          end
          near(got[n][(i - 1) * 4 + j], count > 0 and s / count or 0, 1e-5, string.format("(%d, %d)", i, j))
        end
      end
    end
    -- occluding with the input itself changes nothing
    near(max_abs(E.occlusion(lin, x, {window = 2, shape = {4, 4}, baseline = x})), 0, 0)
  end)

  it("covers every channel of a conv net's images", function()
    local net = convnet()
    local xi = lm.rand(2, 2, 8, 8)
    local a = E.occlusion(net, xi, {window = 4, target = 1})
    eq(a:shape_string(), "2x2x8x8")
    near(max_abs(a:select(2, 1) - a:select(2, 2)), 0, 0, "both channels share a window's drop")
    -- the top-left window's drop, by hand
    local masked = xi:clone()
    masked:narrow(3, 1, 4):narrow(4, 1, 4):fill_(0)
    local drop = lm.no_grad(function() return net(xi):select(2, 1) - net(masked):select(2, 1) end)
    near(a[1][1][1][1], drop[1], 1e-6)
    near(a[2][1][4][4], drop[2], 1e-6)
  end)
end)

describe("Grad-CAM against PyTorch", function()
  local py = dofile("tests/helpers/python.lua")
  local dir = os.tmpname()
  os.remove(dir)
  local ready, why
  local function prepare()
    if ready ~= nil then return end
    if not py.can_import("torch, numpy") then
      ready, why = false, "/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed"
      return
    end
    lm.mkdir(dir)
    local out
    ready, out = py.run("tests/torch/explain_reference.py", "write '" .. dir .. "'")
    if not ready then error("explain_reference.py failed:\n" .. out, 0) end
  end
  local function twin()
    local net = nn.Sequential(nn.Conv2d(3, 6, 3, {padding = 1}), nn.ELU(),
      nn.Conv2d(6, 8, 3, {stride = 2, padding = 1}), nn.ELU(), nn.Flatten(), nn.Linear(128, 5), nn.Sigmoid())
    net:load(dir .. "/convnet.safetensors")
    return net, lm.load(dir .. "/explain_io.safetensors")
  end
  local function check(name, got, want)
    local err = rel_error(got, want)
    truthy(err <= 1e-5, name .. " relative error " .. err)
  end

  it("Grad-CAM and Grad-CAM++ match the published formulas in PyTorch, for given and predicted classes", function()
    prepare()
    if not ready then skip(why, true) end
    local net, ref = twin()
    check("Grad-CAM, targets", E.grad_cam(net, net[4], ref.x, {target = ref.target}), ref.cam_t)
    check("Grad-CAM, predictions", E.grad_cam(net, "3", ref.x), ref.cam_p)
    check("Grad-CAM++, targets", E.grad_cam_pp(net, net[4], ref.x, {target = ref.target}), ref.campp_t)
    check("Grad-CAM++, predictions", E.grad_cam_pp(net, "3", ref.x), ref.campp_p)
    local up = E.grad_cam(net, net[4], ref.x, {target = ref.target, upsample = true})
    eq(up:shape_string(), "6x8x8")
    check("Grad-CAM upsampled (bilinear)", up, ref.cam_up)
  end)

  it("saliency and integrated gradients (Gauss-Legendre, 16 nodes) match PyTorch", function()
    prepare()
    if not ready then skip(why, true) end
    local net, ref = twin()
    check("saliency", E.saliency(net, ref.x, {target = ref.target}), ref.saliency_t)
    check("integrated gradients", E.integrated_gradients(net, ref.x, {target = ref.target, steps = 16}), ref.ig_t)
  end)

  it("names a layer that is not a feature map, and an unknown name", function()
    local net = convnet()
    raises(function() E.grad_cam(net, net[6], lm.rand(2, 2, 8, 8)) end, "must output feature maps [N, C, h, w]")
    raises(function() E.grad_cam(net, "nope", lm.rand(2, 2, 8, 8)) end, "no module named 'nope'")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

describe("attributions of the map", function()
  -- a tiny classifier, its recording (16 units), a map and an estimator
  local function setup()
    lm.manual_seed(21)
    local net = nn.Sequential(nn.Linear(6, 8), nn.ELU(), nn.Dropout(0.1), nn.Linear(8, 8), nn.ELU(), nn.Linear(8, 3),
      nn.Sigmoid())
    local rec = I.Recorder(net)
    local vae = I.InfoVAE{inputs = 16, hidden = 8, depth = 1}
    local est = I.Estimator{hidden = 8, depth = 1}
    vae:fit_standardization(rec:record(lm.randn(50, 6)))
    return net, rec, vae, est
  end
  -- central differences of interrogate (the mapping itself), column by column
  local function finite_differences(rec, vae, est, x, pick)
    local eps = 1e-2
    local n, d = x:size(1), x:size(2)
    local g = lm.zeros(n, d)
    for j = 1, d do
      local up, down = x:clone(), x:clone()
      up:select(2, j):add_(eps)
      down:select(2, j):add_(-eps)
      local fu = pick(I.interrogate(rec, vae, est, up))
      local fd = pick(I.interrogate(rec, vae, est, down))
      g:select(2, j):copy_((fu - fd) / (2 * eps))
    end
    return g
  end

  it("map_position is the gradient of z through classifier, recording and standardised encoder", function()
    local net, rec, vae, est = setup()
    net:train()
    local x = lm.randn(5, 6)
    local a1, a2 = E.map_position(rec, vae, x)
    local f1 = finite_differences(rec, vae, est, x, function(z) return z:select(2, 1) end)
    local f2 = finite_differences(rec, vae, est, x, function(z) return z:select(2, 2) end)
    truthy(rel_error(a1, f1) < 2e-3, "axis 1: " .. rel_error(a1, f1))
    truthy(rel_error(a2, f2) < 2e-3, "axis 2: " .. rel_error(a2, f2))
    near(max_abs(E.map_position(rec, vae, x, {axis = 2}) - a2), 0, 0)
    eq(net.training, true, "the classifier's mode is restored")
    local ig, gap = E.map_position(rec, vae, x, {axis = 1, method = "integrated_gradients", steps = 32})
    eq(ig:shape_string(), "5x6")
    local z1 = I.interrogate(rec, vae, est, x):select(2, 1)
    local z0 = I.interrogate(rec, vae, est, lm.zeros(5, 6)):select(2, 1)
    -- z moves by 1.4; measured gap 1.4e-4 (ELU's kink at 0 slows the rule)
    truthy(max_abs(gap) < 1e-3 * max_abs(z1 - z0), "z's completeness gap " .. max_abs(gap))
  end)

  it("log_error is the gradient of log10 e_hat, one backward pass through all three parts", function()
    local _, rec, vae, est = setup()
    local x = lm.randn(5, 6)
    local a = E.log_error(rec, vae, est, x)
    local f = finite_differences(rec, vae, est, x, function(_, e) return e end)
    truthy(rel_error(a, f) < 2e-3, "log10 e_hat: " .. rel_error(a, f))
    local ig, gap = E.log_error(rec, vae, est, x, {method = "integrated_gradients", baseline = 0.1})
    eq(ig:shape_string(), "5x6")
    truthy(max_abs(gap) < 1e-4, "completeness gap " .. max_abs(gap))
    for _, p in ipairs(est:parameters()) do eq(p.grad, nil, "no gradient left on the estimator") end
    for _, p in ipairs(vae:parameters()) do eq(p.grad, nil, "no gradient left on the autoencoder") end
  end)
end)

describe("figures", function()
  local plot = lm.plot
  local function rgb_of(c) return {c >> 24, (c >> 16) & 255, (c >> 8) & 255} end
  local function pixel(canvas, x, y)
    local r, g, b = canvas:pixel(x, y)
    return {r, g, b}
  end

  it("colours attributions on a diverging map centred at 0, over the grey image", function()
    local attr = lm.tensor{{1, -1}, {0, 0.5}}
    local rgb = E.colorize(attr)
    eq(rgb:shape_string(), "3x2x2")
    local t = rgb:totable()
    same({t[1][1][1], t[2][1][1], t[3][1][1]}, {0.792, 0.000, 0.125}, 1e-6) -- red end
    same({t[1][1][2], t[2][1][2], t[3][1][2]}, {0.020, 0.443, 0.690}, 1e-6) -- blue end
    same({t[1][2][1], t[2][2][1], t[3][2][1]}, {1, 1, 1}, 1e-6)             -- white at 0
    near(t[1][2][2], 0.5 + 0.5 * 0.792, 1e-6)
    -- over an image: 0 shows the grey level (ink on paper with invert)
    local img = lm.tensor{{0, 1}, {0.5, 1}}
    local over = E.colorize(attr, img):totable()
    near(over[1][2][1], 0.45 + 0.55 * 0.5, 1e-6)
    local ink = E.colorize(attr, img, {invert = true}):totable()
    near(ink[2][2][1], 1 - 0.55 * 0.5, 1e-6)
    same(rgb_of(E.diverging(0.5)), {255, 255, 255})
    same(rgb_of(E.diverging(1)), rgb_of(plot.rgba(0.792, 0, 0.125)))
  end)

  it("writes a grid of samples with the expected size and the heat maps' pixels", function()
    local path = os.tmpname() .. ".png"
    local images = lm.zeros(3, 1, 4, 4)
    local attr = lm.zeros(3, 1, 4, 4)
    attr[1][1][1][1] = 2
    attr[1][1][1][2] = -2
    local second = lm.rand(3, 16)
    local _, fig, panels = E.figure(path, images, {attr, second}, {scale = 10, titles = {"a", "b", "c"},
      labels = {"class", "log10 e_hat"}, title = "why", cols = 2})
    local w, h = lm.image.info(path)
    eq(w, fig.width)
    eq(h, fig.height)
    eq(#panels, 9, "input and two maps per sample")
    -- two cells per row: the third sample starts a second row
    eq(panels[7].sample, 3)
    truthy(panels[7].y > panels[1].y and panels[7].x == panels[1].x, "grid layout")
    local canvas = fig:render()
    local p = panels[2] -- sample 1, first map: red, blue, then the (white) background
    same(pixel(canvas, p.x + 5, p.y + 5), rgb_of(plot.rgba(0.792, 0, 0.125)), 1)
    same(pixel(canvas, p.x + 15, p.y + 5), rgb_of(plot.rgba(0.020, 0.443, 0.690)), 1)
    same(pixel(canvas, p.x + 35, p.y + 35), {255, 255, 255}, 1)
    same(pixel(canvas, panels[1].x + 5, panels[1].y + 5), {0, 0, 0}, 1) -- the input (black)
    canvas:free()
    os.remove(path)
    -- flat MNIST-like rows become 28 x 28 panels; Grad-CAM maps are resized
    local _, fig2, panels2 = E.figure(path, lm.rand(2, 784), {lm.randn(2, 784), lm.rand(2, 7, 7)})
    eq(panels2[1].w, 28 * 3)
    eq(#panels2, 6)
    local w2, h2 = lm.image.info(path)
    eq(w2, fig2.width)
    eq(h2, fig2.height)
    os.remove(path)
    raises(function() E.figure(path, lm.rand(2, 10), lm.rand(2, 10)) end, "give opts.shape")
  end)
end)

describe("experiments/explain_mnist.lua", function()
  it("attributes arm and error-zone samples of a (random) mapped Net1 on generated data", function()
    local ok, summary, files = dofile("tests/helpers/explain_mnist_run.lua")(function(out)
      local found = {}
      for _, f in ipairs{"class_arms.png", "error_zone.png", "region_means.png", "map_picks.png", "explain.json"} do
        local fh = io.open(out .. "/" .. f, "rb")
        if fh then found[#found + 1] = f; fh:close() end
      end
      return found
    end)
    truthy(ok, summary)
    eq(#files, 5, "files: " .. table.concat(files, ", "))
    eq(summary.test_images, 40)
    truthy(#summary.regions >= 2, "at least one arm and the error zone")
    eq(summary.regions[#summary.regions].name, "error zone")
    eq(summary.regions[#summary.regions].n, 4)
    local n = 0
    for _, r in ipairs(summary.regions) do n = n + r.n end
    eq(summary.attributed, n)
    for _, s in ipairs(summary.samples) do
      truthy(s.index >= 1 and s.index <= 40, "1-based test index")
      truthy(s.gap_class == s.gap_class and s.gap_log_error == s.gap_log_error, "gaps are numbers")
    end
  end)
end)
