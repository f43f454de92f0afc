-- The analyses library on small synthetic cases whose answers are known.
local lm = require 'lumen'
local A = require 'lumen.introspect.analyses'
local I = lm.introspect

-- A stand-in autoencoder: decode(z) = z @ W, no parameters (so on the CPU).
local function linear_decoder(W)
  return {parameters = function() return {} end, decode = function(_, z) return lm.matmul(z, W) end}
end

describe("analyses: densities and expectations", function()
  it("the Riemann-sum expectation of a cluster's density is its centre", function()
    lm.manual_seed(1)
    local Z = lm.randn(400, 2) * 0.3 + lm.tensor({1, -2})
    local grid = A.grid{lim = 4, size = 80}
    local dens, h = A.density(Z, grid)
    near((dens * grid.cell):sum():item(), 1, 1e-4, "normalised")
    truthy(h > 0.05 and h < 0.3, "Scott's bandwidth " .. h)
    local ez = A.expected_latent(dens, grid):totable()
    near(ez[1], 1, 0.05)
    near(ez[2], -2, 0.05)
  end)
  it("a kernel too narrow for the grid still gives a normalised density at the nearest points", function()
    local grid = A.grid{lim = 4, size = 9} -- points 1 apart
    local dens = A.density(lm.tensor{{0.5, 0.5}}, grid, {bandwidth = 0.02}) -- exp(-0.5 / 0.0008) underflows
    local total = (dens * grid.cell):sum():item()
    near(total, 1, 1e-5, "normalised, not 0 / 0")
    -- all of it at the grid point nearest to (0.5, 0.5)
    local d2 = lm.nn.functional.squared_distances(grid.points, lm.tensor{{0.5, 0.5}}):view(-1)
    eq(dens:argmax():item(), d2:argmin():item())
  end)
  it("squared distances, Scott's bandwidth and the kernel density at points, by hand", function()
    lm.manual_seed(11)
    local a, b = lm.randn(7, 3), lm.randn(5, 3)
    local d = lm.nn.functional.squared_distances(a, b)
    eq(d:shape_string(), "7x5")
    local at, bt = a:totable(), b:totable()
    for i = 1, 7 do
      for j = 1, 5 do
        local want = 0
        for k = 1, 3 do want = want + (at[i][k] - bt[j][k]) ^ 2 end
        near(d[i][j], want, 1e-4)
      end
    end
    local self_d = lm.nn.functional.squared_distances(a)
    for i = 1, 7 do near(self_d[i][i], 0, 1e-5, "a with itself") end
    -- with gradients to a, the out-of-place path: the same values, and its gradient
    local ag = a:clone():requires_grad(true)
    local dg = lm.nn.functional.squared_distances(ag, b)
    eq(lm.encode(dg:detach(), "float32"), lm.encode(d, "float32"), "the same sums in the same order")
    dg:sum():backward()
    local gt = ag.grad:totable()
    for i = 1, 7 do
      for k = 1, 3 do
        local want = 0
        for j = 1, 5 do want = want + 2 * (at[i][k] - bt[j][k]) end
        near(gt[i][k], want, 1e-4, "d/da")
      end
    end
    same(a:totable(), at, 0, "the in-place path leaves its inputs as they were")
    truthy(not pcall(lm.nn.functional.squared_distances, a, lm.randn(5, 2)), "widths must match")
    local Z = lm.randn(300, 2) * 0.5
    local _, h = A.density(Z, A.grid{size = 10})
    eq(A.bandwidth(Z), h)
    near(h, Z:std(1):mean():item() * 300 ^ (-1 / 6), 1e-12)
    -- one reference point: p(z) = exp(-|z - r|^2 / (2 h^2)) / (2 pi h^2); more rows than a chunk
    local q = lm.tensor({{0, 0}, {1, 0}, {0, 2}})
    local p = A.kernel_density(q, lm.tensor({{0, 0}}), 0.5, {chunk = 2}):totable()
    for i, r2 in ipairs{0, 1, 4} do near(p[i], math.exp(-r2 / 0.5) / (2 * math.pi * 0.25), 1e-6) end
    -- in three dimensions the normaliser is (2 pi h^2)^(3/2), and Scott's factor N^(-1/7)
    near(A.kernel_density(lm.zeros(1, 3), lm.zeros(1, 3), 1):item(), (2 * math.pi) ^ -1.5, 1e-7)
    local Z3 = lm.randn(50, 3)
    near(A.bandwidth(Z3), Z3:std(1):mean():item() * 50 ^ (-1 / 7), 1e-12)
  end)
  it("a unit wired to one class is that class's unit, sorted and coloured by it", function()
    lm.manual_seed(2)
    local centres = {{2, 0}, {-2, 0}, {0, 2}}
    local parts, labels = {}, {}
    for k, c in ipairs(centres) do
      parts[k] = lm.randn(100, 2) * 0.2 + lm.tensor(c)
      for _ = 1, 100 do labels[#labels + 1] = k end
    end
    local Z, y = lm.cat(parts, 1), lm.tensor(labels, 'int32')
    -- units: 1 follows z1 (class 1), 2 follows -z1 (class 2), 3 follows z2 (class 3)
    local W = lm.tensor({{0, 1, -1, 0}, {1, 0, 0, 0}}) -- columns are units 3, 1, 2, and a dead one
    local Eh, Ez = A.expected_activations(linear_decoder(W), Z, y, 3, A.grid{size = 60})
    eq(table.concat(Eh:shape(), "x"), "3x4")
    near(Ez[1][1], 2, 0.1)
    local d = A.unit_classes(Eh):totable()
    eq(d[1], 3); eq(d[2], 1); eq(d[3], 2)
    local order = A.sort_units(Eh:narrow(2, 1, 3), {3})[1]
    eq(table.concat(order, ","), "2,3,1") -- units of classes 1, 2, 3
    local direct = A.class_means(lm.matmul(Z, W), y, 3)
    local cmp = A.compare(Eh, direct)
    truthy(cmp.correlation > 0.99 and cmp.relative_error < 0.05, "decoded vs direct class means")
  end)
end)

describe("analyses: brainbow", function()
  local C = lm.plot.CLASS_COLORS
  local function rgb(c) return {c >> 24, (c >> 16) & 255, (c >> 8) & 255} end
  local function saturation(c)
    local v = rgb(c)
    local hi, lo = math.max(v[1], v[2], v[3]), math.min(v[1], v[2], v[3])
    return hi == 0 and 0 or (hi - lo) / hi
  end

  it("follows Eq. 11: near-equal units are the class colours' mean, intensity kept", function()
    local K = 10
    -- units: near-equal [1.000, 1.001, 1.000, ...], class 2 only (20), class 2 weakly (2), silent
    local rows = {}
    for k = 1, K do rows[k] = {k == 2 and 1.001 or 1, k == 2 and 20 or 0, k == 2 and 2 or 0, 0} end
    local colours = A.brainbow(lm.tensor(rows), C)
    -- by hand: alpha_i = 1/K sum_k c_k E_ik; the brightest channel is unit 2's
    -- red, 255 * 20 / K = 510, so the layer's gain is 255 / 510 = 0.5
    local c2 = rgb(C[2])
    local got = rgb(colours[1])
    for ch = 1, 3 do
      local mean = 0
      for k = 1, K do mean = mean + rgb(C[k])[ch] / K end
      near(got[ch], (mean + c2[ch] * 0.001 / K) * 0.5, 0.5, "near-equal unit, channel " .. ch)
    end
    truthy(saturation(colours[1]) < 0.25, "greyish: saturation " .. saturation(colours[1]))
    eq(colours[2], C[2] | 0xFF, "a unit of one class takes its colour at full strength")
    local weak = rgb(colours[3])
    for ch = 1, 3 do near(weak[ch], c2[ch] / 10, 0.5, "a tenth as strong, channel " .. ch) end
    eq(colours[4], 0x000000FF, "a silent unit is black")
  end)

  it("scales each layer on its own and counts negative expectations as 0", function()
    local Eh = lm.tensor({{2, 0.2, -1}, {0, 0, -1}})
    local colours = A.brainbow(Eh, C, {layer_sizes = {1, 2}})
    -- class 1's colour (31, 119, 180) scaled so its brightest channel is 255
    local c1 = rgb(C[1])
    local want = rgb(colours[1])
    for ch = 1, 3 do near(want[ch], c1[ch] * 255 / 180, 0.5, "layer 1's brightest, channel " .. ch) end
    eq(colours[2], colours[1], "layer 2's brightest, though 10x weaker than layer 1")
    eq(colours[3], 0x000000FF, "ELU's negative expectations add no colour")
    raises(function() A.brainbow(Eh, C, {layer_sizes = {2, 2}}) end,
      "brainbow: layer_sizes add up to 4 units, Eh has 3")
    raises(function() A.brainbow(Eh, C, {mode = "pretty"}) end,
      "brainbow: mode must be 'eq11' or 'contrast', got pretty")
  end)

  it("keeps the contrast variant by name: any preference shows pure", function()
    -- units: class 1 only, nobody, everybody equally, classes 1 and 2 equally
    local Eh = lm.tensor({{1, 0, 5, 1}, {0, 0, 5, 1}, {0, 0, 5, 0}})
    local colours = A.brainbow(Eh, C, {mode = "contrast"})
    eq(colours[1], C[1] | 0xFF)
    eq(colours[2], 0xA0A0A0FF)
    eq(colours[3], 0xA0A0A0FF)
    for shift = 8, 24, 8 do
      local want = math.floor((((C[1] >> shift) & 255) + ((C[2] >> shift) & 255)) / 2 + 0.5)
      eq((colours[4] >> shift) & 255, want, "channel at bit " .. shift)
    end
    -- the paper's example: E = [1.000, 1.001, 1.000] is pure class 2 here, greyish under Eq. 11
    local near_equal = lm.tensor({{1}, {1.001}, {1}})
    eq(A.brainbow(near_equal, C, {mode = "contrast"})[1], C[2] | 0xFF)
    truthy(saturation(A.brainbow(near_equal, C)[1]) < saturation(C[2]), "Eq. 11 mixes the three")
  end)
end)

describe("analyses: scores", function()
  it("FPR at 95 % TPR and risk-coverage on hand-computed cases, ties included", function()
    local scores = {0.9, 0.8, 0.8, 0.3, 0.2, 0.1}
    local pos = {true, true, false, true, false, false}
    -- threshold at the 3rd positive's score (0.3): negatives >= 0.3: the 0.8 tie
    near(A.fpr_at_tpr(scores, pos, 0.95), 1 / 3, 1e-12)
    near(A.fpr_at_tpr(scores, pos, 0.5), 1 / 3, 1e-12) -- 2nd positive at 0.8 ties a negative
    local cov, acc = A.risk_coverage({0.9, 0.1, 0.5, 0.7}, {true, false, false, true}, 4)
    for i, want in ipairs{0.25, 0.5, 0.75, 1} do near(cov[i], want, 1e-12) end
    for i, want in ipairs{1, 1, 2 / 3, 0.5} do near(acc[i], want, 1e-12) end
    -- tied confidences: a coverage that takes part of a tie counts its share of
    -- correct ones, whichever samples they are by index
    local same_conf, odd_right, even_right = {}, {}, {}
    for i = 1, 10 do same_conf[i] = 1; odd_right[i] = i % 2 == 1; even_right[i] = i % 2 == 0 end
    for _, right in ipairs{odd_right, even_right} do
      local c, a = A.risk_coverage(same_conf, right, 2)
      same(c, {0.5, 1}); same(a, {0.5, 0.5})
    end
    local _, a2 = A.risk_coverage({0.9, 0.5, 0.5, 0.1}, {true, true, false, false}, 4)
    same(a2, {1, 0.75, 2 / 3, 0.5}, 1e-12, "the 0.5 tie is half right at coverage 1/2")
    local by = A.reliability_by_class(lm.tensor({-3, -1, -2, -0.5}), lm.tensor({1, 1, 2, 2}, 'int32'),
      lm.tensor({1, 2, 2, 2}, 'int32'), 2)
    eq(by[1].sensitivity, 0.5); eq(by[2].sensitivity, 1)
    eq(#by[1].wrong, 1); eq(by[1].wrong[1], -1)
    eq(A.accuracy_at_coverage(cov, acc, 0.5), 1)
    near(A.accuracy_at_coverage(cov, acc, 0.7), 2 / 3, 1e-12)
    eq(A.accuracy_at_coverage(cov, acc, 2), 0.5)
  end)
  it("the detection benchmark scores every task and score, and FGSM moves inputs off their class", function()
    lm.manual_seed(12)
    -- a classifier that reads which half of the input is brighter
    local net = lm.nn.Sequential(lm.nn.Linear(8, 6), lm.nn.ELU(), lm.nn.Linear(6, 2), lm.nn.Sigmoid())
    local rec = I.Recorder(net)
    local vae = I.InfoVAE{inputs = 6, hidden = 8, depth = 1}
    local est = I.Estimator{hidden = 8, depth = 1}
    local x = lm.rand(60, 8)
    local y = (x:narrow(2, 5, 4):sum(2):gt(x:narrow(2, 1, 4):sum(2)):int() + 1)
    local opt = lm.optim.Adam(net:parameters(), {lr = 0.05})
    for _ = 1, 200 do
      opt:zero_grad()
      lm.nn.functional.mse(net(x), lm.data.one_hot(y, 2):float()):backward()
      opt:step()
    end
    local H, Y = rec:record_set(x)
    I.fit_autoencoder(vae, H, {epochs = 1, batch_size = 20, tty = false})
    local correct = Y:argmax(2):eq(y)
    local adv = A.fgsm_untargeted(net, x, y, {steps = 5, eps = 0.1, classes = 2})
    truthy(adv:min():item() >= 0 and adv:max():item() <= 1, "pixels stay in [0, 1]")
    local acc_adv = lm.no_grad(function() return net(adv):argmax(2):eq(y):float():mean():item() end)
    truthy(acc_adv < correct:float():mean():item(), "FGSM costs accuracy: " .. acc_adv)
    local r = A.detection_benchmark{net = net, recorder = rec, vae = vae, est = est, x = x, y = y,
      correct = correct, n = 40, classes = 2, reference = vae:encode_all(H), fgsm_steps = 5, fgsm_eps = 0.1}
    local tasks = 0
    for task, by_score in pairs(r.detection) do
      tasks = tasks + 1
      for _, score in ipairs{"e_hat", "reconstruction", "neg_log_density", "max_sigmoid"} do
        local m = by_score[score]
        -- not a number where a task has no positives (a classifier without mistakes)
        for _, v in ipairs{m.auroc, m.aupr, m.fpr_at_95_tpr} do
          truthy(v ~= v or (v >= 0 and v <= 1), task .. ", " .. score .. ": " .. v)
        end
      end
    end
    eq(tasks, 3)
    truthy(r.detection["noisy (sigma 0.3) vs clean"].e_hat.auroc >= 0, "the noise task is named by its sigma")
    local _, rows = r.markdown:gsub("\n", "")
    eq(rows + 1, 2 + 3 * 4, "header and one row per task and score")
    truthy(r.note:find("first 40 test images; FGSM: 5 untargeted steps of 0.1", 1, true), r.note)
  end)
end)

describe("analyses: adversarial paths", function()
  it("targeted FGSM reaches the target and records one latent per iterate", function()
    lm.manual_seed(3)
    local net = lm.nn.Sequential(lm.nn.Linear(6, 8), lm.nn.ELU(), lm.nn.Linear(8, 3), lm.nn.Sigmoid())
    local rec = I.Recorder(net)
    local vae = I.InfoVAE{inputs = 8, hidden = 8, depth = 1}
    local x = lm.rand(1, 6)
    local start = net(x):argmax(2):item()
    local target = start % 3 + 1
    local path = A.fgsm_path(net, rec, vae, x, target, {steps = 60, eps = 0.05, classes = 3})
    eq(path.z:size(1), 61)
    eq(#path.predictions, 61)
    eq(path.predictions[1], start)
    truthy(path.flip ~= nil, "the prediction flips to the target")
    eq(path.predictions[path.flip + 1], target)
    truthy(path.x:min():item() >= 0 and path.x:max():item() <= 1, "pixels stay in [0, 1]")
  end)
end)

describe("analyses: adversarial paths of a saturated classifier", function()
  it("moves an input whose sigmoid outputs are exactly 0 and 1 in float32", function()
    -- l1 = 200 (x1 - x2), l2 = -l1 (x >= 0 passes the first two layers as it is): at
    -- x = (0.9, 0.1) the outputs round to exactly 1 and 0, so the gradient through the sigmoid is 0
    local lin = lm.nn.Linear(2, 2)
    lin.weight:detach():copy_(lm.tensor({{200, -200}, {-200, 200}}))
    lin.bias:detach():copy_(lm.tensor({0, 0}))
    -- an identity layer first (ELU keeps inputs >= 0): the recorder needs a hidden layer
    local id = lm.nn.Linear(2, 2)
    id.weight:detach():copy_(lm.tensor({{1, 0}, {0, 1}}))
    id.bias:detach():copy_(lm.tensor({0, 0}))
    local net = lm.nn.Sequential(id, lm.nn.ELU(), lin, lm.nn.Sigmoid())
    local x = lm.tensor({{0.9, 0.1}})
    local xin = x:clone():requires_grad(true)
    lm.nn.functional.mse(net(xin), lm.tensor({{0, 1}})):backward()
    eq(xin.grad:abs():max():item(), 0, "the plain gradient vanishes")
    local rec = I.Recorder(net)
    local vae = I.InfoVAE{inputs = 2, hidden = 4, depth = 1, standardize = false}
    local path = A.fgsm_path(net, rec, vae, x, 2, {steps = 20, eps = 0.03, classes = 2})
    -- by hand: after k steps x = (0.9 - 0.03 k, 0.1 + 0.03 k); class 2 wins from k = 14
    eq(path.flip, 14)
    near(path.x[1][1], 0.3, 1e-5)
    near(path.x[1][2], 0.7, 1e-5)
  end)
end)

describe("analyses: single samples and noise", function()
  it("frames latent points in a square view around their bounding box", function()
    -- box x [-1, 3], y [0, 1]: the longer side 4, centred at (1, 0.5), half 2 + 0.5
    local xl, yl = A.square_view({{{0, 0}}, {{-1, 1}, {3, 0.5}}}, 0.5)
    same(xl, {-1.5, 3.5}, 1e-12)
    same(yl, {-2, 3}, 1e-12)
    raises(function() A.square_view({{}}, 1) end, "analyses.square_view: no points")
  end)

  it("lays a recorded vector out by layer in the given order", function()
    local h = lm.tensor({1, 2, 3, 4, 5})
    local function ints(row)
      local t = {}
      for i, v in ipairs(row) do t[i] = string.format("%d", v) end
      return table.concat(t, ",")
    end
    local rows = A.activation_rows(h, {2, 3}, {{2, 1}, {5, 3, 4}})
    eq(ints(rows[1]), "2,1")
    eq(ints(rows[2]), "5,3,4")
    eq(ints(A.activation_rows(h, {2, 3})[2]), "3,4,5")
  end)
  it("noisy copies scatter more with sigma, and noise costs accuracy", function()
    lm.manual_seed(5)
    -- a classifier that reads the sign of the first pixel minus 0.5
    local net = lm.nn.Sequential(lm.nn.Linear(4, 6), lm.nn.ELU(), lm.nn.Linear(6, 2), lm.nn.Sigmoid())
    local rec = I.Recorder(net)
    local vae = I.InfoVAE{inputs = 6, hidden = 8, depth = 1, standardize = false}
    local c = A.noise_constellation(rec, vae, lm.tensor({{0.5, 0.5, 0.5, 0.5}}), {0, 0.1, 1}, 50)
    eq(#c.by_sigma, 3)
    eq(c.by_sigma[1].z:size(1), 50)
    near((c.by_sigma[1].z - c.clean):abs():max():item(), 0, 1e-5) -- sigma 0: the clean point
    local spread = function(b) return b.z:std(1):sum():item() end
    truthy(spread(c.by_sigma[3]) > spread(c.by_sigma[2]), "more noise, wider cloud")
    local x = lm.rand(300, 4)
    local y = (x:select(2, 1):gt(0.5):int() + 1)
    local W = lm.tensor({{-20, 0, 0, 0}, {20, 0, 0, 0}})
    local linear = lm.nn.Linear(4, 2)
    linear.weight:detach():copy_(W)
    linear.bias:detach():copy_(lm.tensor({10, -10}))
    local accs = A.accuracy_under_noise(linear, {x = x, y = y}, {0, 0.5})
    eq(accs[1], 1)
    truthy(accs[2] < 0.9, "noise of 0.5 costs accuracy: " .. accs[2])
  end)
end)

describe("figures: the paper's Fig. 3, 4, 6 and 7", function()
  local Fig = require 'lumen.introspect.figures'
  local tmp = os.tmpname()
  os.remove(tmp)
  os.execute("mkdir -p " .. tmp)
  local function png(name)
    local f = io.open(tmp .. "/" .. name, "rb")
    if not f then return false end
    local head = f:read(8)
    f:close()
    return head == "\137PNG\r\n\26\n"
  end
  -- a small classifier with two recorded layers of 8 and 5 units, and an untrained map
  local function small_model(seed)
    lm.manual_seed(seed)
    local net = lm.nn.Sequential(lm.nn.Linear(6, 8), lm.nn.ELU(), lm.nn.Linear(8, 5), lm.nn.ELU(),
      lm.nn.Linear(5, 3), lm.nn.Sigmoid())
    local rec = I.Recorder(net)
    return net, rec, I.InfoVAE{inputs = 13, hidden = 8, depth = 1}, I.Estimator{hidden = 8, depth = 1}
  end

  it("reads sample lists: indices and ranges in order, bad ones by name", function()
    eq(table.concat(Fig.parse_indices("1-3,7, 10-11", "--x"), ","), "1,2,3,7,10,11")
    eq(#Fig.parse_indices("1-40", "--x"), 40)
    raises(function() Fig.parse_indices("5-2", "--x") end, "--x: the range 5-2 runs backwards")
    raises(function() Fig.parse_indices("1,a", "--x") end, "--x: 'a' is not an index or a range like 1-40")
    raises(function() Fig.parse_indices("", "--x") end, "--x: no indices given")
  end)

  it("normalises each layer to 1 over all classes (Fig. 3), negatives as 0", function()
    local E = lm.tensor({{2, -1, 4, 1, -0.5}, {1, 0.5, 8, 2, -0.2}})
    local N, top = Fig.normalise_layers(E, {2, 2, 1})
    local want = {{1, 0, 0.5, 0.125, 0}, {0.5, 0.25, 1, 0.25, 0}}
    for k = 1, 2 do for i = 1, 5 do near(N[k][i], want[k][i], 1e-7, k .. "," .. i) end end
    eq(top[1], 2); eq(top[2], 8); eq(top[3], 0)
    local v = Fig.normalise_layers(lm.tensor({3, 6, -1, 2}), {2, 2})
    eq(v:dim(), 1)
    for i, w in ipairs{0.5, 1, 0, 1} do near(v[i], w, 1e-7) end
    raises(function() Fig.normalise_layers(E, {2, 2}) end,
      "normalise_layers: layer_sizes add up to 4 units, the activations have 5")
    -- the figure: every layer's maximum over the panels is 1, in the recorded order
    local Eh = lm.rand(3, 13) * lm.tensor({1, 1, 1, 1, 1, 1, 1, 1, 50, 50, 50, 50, 50})
    local r = Fig.expected_activations(tmp .. "/ea.png", {Eh = Eh, layer_sizes = {8, 5},
      orders = A.sort_units(Eh, {8, 5}), classes = {"a", "b", "c"}})
    truthy(png("ea.png"), "expected_activations written")
    near(r.layer_max[2], Eh:narrow(2, 9, 5):max():item(), 1e-6)
    near(r.shown:narrow(2, 1, 8):max():item(), 1, 1e-7, "layer 1's maximum")
    near(r.shown:narrow(2, 9, 5):max():item(), 1, 1e-7, "layer 2's maximum")
    near(r.shown[2][10], Eh[2][10] / r.layer_max[2], 1e-6, "a unit keeps its share of its layer's maximum")
  end)

  it("places each of 40 images on the map with its own point (Fig. 4)", function()
    local _, rec, vae, est = small_model(21)
    local x = lm.rand(50, 6)
    local _, out = rec:record(x)
    local lab = {}
    for i, p in ipairs(out:argmax(2):totable()) do lab[i] = i % 2 == 0 and p or p % 3 + 1 end -- half wrong
    local labels = lm.tensor(lab, 'int32')
    local indices = {}
    for i = 1, 40 do indices[i] = 51 - i end -- in a given order, not sorted
    local r = Fig.sample_grid(tmp .. "/s.png", {recorder = rec, vae = vae, est = est, x = x, labels = labels,
      indices = indices, layer_sizes = {8, 5}, classes = {"a", "b", "c"}, image_shape = {2, 3},
      background = lm.randn(30, 2)})
    truthy(png("s.png"), "sample_patterns written")
    eq(#r, 40)
    local seen, names, pred = {}, {"a", "b", "c"}, out:argmax(2):totable()
    for k, s in ipairs(r) do
      eq(s.index, indices[k])
      local z = vae:encode_all((rec:record(x:narrow(1, s.index, 1)))):totable()[1]
      near(s.z[1], z[1], 1e-5, "z1 of image " .. s.index)
      near(s.z[2], z[2], 1e-5, "z2 of image " .. s.index)
      near(s.log10_e_hat, I.estimate(est, lm.tensor({z})):item(), 1e-5)
      eq(s.label, names[lab[s.index]])
      eq(s.prediction, names[pred[s.index]])
      local key = string.format("%.6f,%.6f", s.z[1], s.z[2])
      truthy(not seen[key], "a point of its own: " .. key)
      seen[key] = true
    end
    raises(function() Fig.sample_grid(tmp .. "/s.png", {recorder = rec, vae = vae, est = est, x = x,
      labels = labels, indices = {3, 51}, layer_sizes = {8, 5}, classes = names, image_shape = {2, 3}}) end,
      "sample_grid: index 51 is not in the set (1..50)")
  end)

  it("runs targeted FGSM from six images in one figure (Fig. 6), each target reached or recorded as not", function()
    local net, rec, vae, est = small_model(22)
    local x = lm.rand(10, 6)
    local labels = lm.no_grad(function() return net(x):argmax(2) end) -- start correctly classified
    local steps = 40
    local summary, runs = Fig.fgsm_grid(tmp .. "/f.png", {net = net, recorder = rec, vae = vae, est = est, x = x,
      labels = labels, indices = {1, 2, 3, 4, 5, 6}, classes = {"a", "b", "c"}, steps = steps, eps = 0.05})
    truthy(png("f.png"), "fgsm grid written")
    eq(#summary, 6)
    local all = 0
    for k, s in ipairs(summary) do
      eq(s.index, k)
      eq(s.start_prediction, s.label, "starts correctly classified")
      local n, reached = 0, 0
      for _, p in ipairs(runs[k].paths) do
        n = n + 1
        eq(p.z:size(1), steps + 1)
        local name = ({"a", "b", "c"})[p.target]
        local t = s.targets[name]
        eq(t.success, p.flip ~= nil, "target " .. name)
        eq(t.flip_step, p.flip)
        if p.flip then
          reached = reached + 1
          eq(p.predictions[p.flip + 1], p.target, "predicts the target at the flip")
          for j = 1, p.flip do truthy(p.predictions[j] ~= p.target, "not before it") end
        else
          for _, q in ipairs(p.predictions) do truthy(q ~= p.target, "a failed target is never predicted") end
        end
      end
      eq(n, 2, "one path per other class")
      eq(s.reached, reached)
      near(s.success_rate, reached / 2, 1e-12)
      all = all + reached
    end
    -- measured 12 of 12 on this net; an attack that does not move the input reaches none
    truthy(all >= 8, all .. " of 12 targets reached")
    raises(function() Fig.fgsm_grid(tmp .. "/f.png", {net = net, recorder = rec, vae = vae, est = est, x = x,
      labels = labels, indices = {}, classes = {"a", "b", "c"}}) end, "fgsm_grid: indices must be a non-empty list")
  end)

  it("splits the estimated errors by class and correctness for the violins (Fig. 7)", function()
    local e = lm.tensor({-3, -1, -2, -0.5, -4, -2.5})
    local labels = lm.tensor({1, 1, 2, 2, 1, 2}, 'int32')
    local pred = lm.tensor({1, 2, 2, 2, 1, 1}, 'int32')
    local by = Fig.violins(tmp .. "/v.png", {log_e_hat = e, labels = labels, predictions = pred,
      classes = {"a", "b", "c"}})
    truthy(png("v.png"), "violins written")
    local function list(t)
      local parts = {}
      for i, v in ipairs(t) do parts[i] = string.format("%g", v) end
      return table.concat(parts, ",")
    end
    eq(list(by[1].correct), "-3,-4")
    eq(list(by[1].wrong), "-1")
    eq(list(by[2].correct), "-2,-0.5")
    eq(list(by[2].wrong), "-2.5")
    near(by[1].sensitivity, 2 / 3, 1e-12)
    near(by[2].sensitivity, 2 / 3, 1e-12)
    truthy(by[3].sensitivity ~= by[3].sensitivity, "a class without samples has no sensitivity")
  end)

  it("draws the wrong samples' violins in a colour no class has (CIFAR-10's horse is grey)", function()
    local K, e, labels, pred = 10, {}, {}, {}
    for k = 1, K do -- each class: 4 right near -3, 4 wrong near -1
      for i = 1, 8 do
        local n = #e + 1
        e[n], labels[n] = (i <= 4 and -3 or -1) + (i % 4) * 0.1, k
        pred[n] = i <= 4 and k or k % K + 1
      end
    end
    local names = {}
    for k = 1, K do names[k] = "c" .. k end
    Fig.violins(tmp .. "/classes.png", {log_e_hat = lm.tensor(e), labels = lm.tensor(labels, 'int32'),
      predictions = lm.tensor(pred, 'int32'), classes = names})
    local img = lm.image.load(tmp .. "/classes.png")
    -- the most frequent colour of a column that is not the white page: the
    -- fill of the violin at data x (the axes span 980 px over K + 0.2 units)
    local function fill(x)
      local col = math.floor(80 + (x - 0.4) / (K + 0.2) * 980 + 0.5) + 1
      local counts, best, best_n = {}, nil, 0
      for row = 1, img:size(2) do
        local r, g, b = img[1][row][col], img[2][row][col], img[3][row][col]
        if r < 0.99 or g < 0.99 or b < 0.99 then
          local key = string.format("%.3f,%.3f,%.3f", r, g, b)
          counts[key] = (counts[key] or 0) + 1
          if counts[key] > best_n then best, best_n = key, counts[key] end
        end
      end
      local rgb = {}
      for v in best:gmatch("[^,]+") do rgb[#rgb + 1] = tonumber(v) end
      return rgb, best_n
    end
    local function distance(a, b)
      return math.max(math.abs(a[1] - b[1]), math.abs(a[2] - b[2]), math.abs(a[3] - b[3]))
    end
    local wrong = fill(1 + 0.18)
    for k = 1, K do
      local right, n_right = fill(k - 0.18)
      local wrong_k, n_wrong = fill(k + 0.18)
      truthy(n_right > 20 and n_wrong > 20, "two violins drawn for class " .. k)
      eq(distance(wrong_k, wrong), 0, "one colour for every class's wrong samples")
      -- before, the wrong ones' grey matched tab10's eighth colour (horse) exactly
      truthy(distance(right, wrong) > 0.15, string.format("class %d: its colour %.3f %.3f %.3f against %.3f %.3f %.3f",
        k, right[1], right[2], right[3], wrong[1], wrong[2], wrong[3]))
    end
    os.execute("rm -rf " .. tmp)
  end)
end)

describe("analyses: arguments they would otherwise get wrong", function()
  it("refuses rates, steps, bandwidths, labels and colours out of range, before computing", function()
    local s, p = {0.9, 0.2, 0.4, 0.7}, {true, false, true, false}
    raises(function() A.fpr_at_tpr(s, p, 1.5) end, "fpr_at_tpr: tpr must be a rate in (0, 1], got 1.5")
    raises(function() A.fpr_at_tpr(s, p, 0 / 0) end, "fpr_at_tpr: tpr must be a rate in (0, 1]")
    for _, bad in ipairs{0, -3, 2.5} do
      raises(function() A.risk_coverage(s, p, bad) end, "risk_coverage: steps must be a positive integer, got " .. bad)
    end
    local Z, ref = lm.randn(5, 2), lm.randn(8, 2)
    raises(function() A.log_kernel_density(Z, ref, 0) end, "the bandwidth h must be a number > 0, got 0")
    raises(function() A.log_kernel_density(Z, lm.zeros(0, 2)) end, "ref must be reference points [M, d] with M >= 1")
    raises(function() A.kernel_density(Z, ref, {chunk = 0}) end, "chunk must be a positive integer")
    -- the bandwidth left out, as api.md writes the signature
    local by_default = A.kernel_density(Z, ref, {chunk = 2})
    local want = A.kernel_density(Z, ref, A.bandwidth(ref))
    same(by_default:totable(), want:totable(), 1e-6)
    local labels, preds = lm.tensor({1, 4, 2}, "int32"), lm.tensor({1, 1, 2}, "int32")
    raises(function() A.reliability_by_class(lm.randn(3), labels, preds, 3) end,
      "reliability_by_class: label 4 of sample 2 is not a class in 1..3")
    raises(function() A.brainbow(lm.rand(3, 5), {0xFF0000FF}) end,
      "brainbow: class_colors must list a colour for each of the 3 classes, got 1")
  end)
end)
