-- Wrong kinds of argument to lm.introspect's and lm.explain's public
-- functions are reported at their entry points: the message names the
-- function and the argument and points at the caller's line, instead of
-- Lua's "attempt to index a nil value" from inside Lumen.
local lm = require 'lumen'
local I, E = lm.introspect, lm.explain

local at_caller = dofile("tests/helpers/refused.lua")("arg_checks_introspect_spec.lua", raises, truthy)

local function net()
  return lm.nn.Sequential(lm.nn.Linear(4, 3), lm.nn.ELU(), lm.nn.Linear(3, 2))
end

describe("lm.introspect argument checks", function()
  local model = net()
  local rec = I.Recorder(model)
  local vae = I.InfoVAE{inputs = 3, latent = 2, hidden = 4, depth = 1}
  local est = I.Estimator{latent = 2, hidden = 4, depth = 1}
  local x = lm.randn(5, 4)
  local H = lm.randn(6, 3)

  it("checks the helpers' arguments", function()
    at_caller(function() I.block_rows("wide") end, 'lm.introspect.block_rows: width must be a number, got "wide"')
    at_caller(function() I.elus_after(nil, "nn.Linear") end,
      "lm.introspect.elus_after: model must be a module (an lm.nn layer or model), got nil")
    at_caller(function() I.elus_after(model, 3) end, "lm.introspect.elus_after: kind must be a string, got 3")
    at_caller(function() I.tie_groups(nil, {}) end, "lm.introspect.tie_groups: scores must be a table, got nil")
    at_caller(function() I.tie_groups({1, {}}, {true, false}) end,
      "lm.introspect.tie_groups: scores[2] must be a number, got a table")
    at_caller(function() I.standardization(4) end, "lm.introspect.standardization: H must be a tensor, got 4")
    at_caller(function() I.standardize(H, nil, lm.ones(3)) end,
      "lm.introspect.standardize: mean must be a tensor, got nil")
  end)

  it("checks the recorder and its methods", function()
    at_caller(function() I.Recorder(3) end,
      "lm.introspect.Recorder: model must be a module (an lm.nn layer or model), got 3")
    at_caller(function() I.Recorder(model, 5) end, "lm.introspect.Recorder: options must be a table, got 5")
    at_caller(function() I.Recorder(model, {select = {"1", 7}}) end,
      "Recorder: select[2] must be a module name (a string), got 7")
    at_caller(function() rec:record(nil) end, "recorder:record: x must be a tensor, got nil")
    at_caller(function() rec:capture(3) end, "recorder:capture: fn must be a function, got 3")
    local one = I.Recorder(lm.nn.Sequential(lm.nn.Linear(3, 4), lm.nn.ELU(), lm.nn.Linear(4, 2)))
    at_caller(function() one:record(lm.randn(3)) end, "recorder:record: layer '1' gave an output of shape [4] for x of "
      .. "shape [3]: x must be a batch [N, ...] of samples (one sample as x:view(1, ...))")
    same(one:record(lm.randn(1, 3)):shape(), {1, 4}, 0, "one sample as a batch")
    at_caller(function() one:width(lm.randn(3)) end, "x must be a batch [N, ...] of samples")
    at_caller(function() rec:width({}) end, "recorder:width: sample must be a tensor, got a table")
    at_caller(function() rec:record_set("x") end, 'recorder:record_set: x must be a tensor, got "x"')
    at_caller(function() rec:record_set(x, {batch_size = 0}) end,
      "recorder:record_set: opts.batch_size must be a positive integer (or nil), got 0")
    at_caller(function() rec:record_set(x, {append_rows = 2}) end,
      "recorder:record_set: opts.append_rows must be a table, got 2")
  end)

  it("records a module's last call in a forward pass, and refuses a capture that runs the model twice", function()
    local Twice = lm.nn.Module:extend("TwiceAppliedForTest")
    function Twice:init() self:child("fc", lm.nn.Linear(3, 3)); self:child("act", lm.nn.ELU()) end
    function Twice:forward(h) return self.act(self.fc(self.act(self.fc(h)))) end
    local m, xt = Twice(), lm.randn(2, 3)
    local h, out = I.Recorder(m):record(xt)
    same(h:totable(), out:totable(), 0, "the second application: the model's output")
    -- a ResNet block applies its one ReLU twice, as torchvision's: the block's output is recorded
    local resnet = lm.models.resnet18{stem = "cifar", num_classes = 3, width = 4}
    resnet:eval()
    local xr = lm.randn(2, 3, 8, 8)
    local hr = I.Recorder(resnet, {select = {"layer1.0.relu"}}):record(xr)
    local hb = I.Recorder(resnet, {select = {"layer1.0"}}):record(xr)
    same(hr:totable(), hb:totable(), 1e-6, "layer1.0.relu's last call is layer1.0's output")
    eq(#I.Recorder(resnet).layer_names, 9, "the default selection: the stem's ReLU and each block's")
    local seq = lm.nn.Sequential(lm.nn.Linear(3, 3), lm.nn.ELU())
    local rs = I.Recorder(seq)
    at_caller(function() rs:capture(function() seq(lm.randn(2, 3)); return seq(lm.randn(4, 3)) end) end,
      "Recorder: the model ran 2 times in one recording")
    local _, hs = rs:capture(function() return seq(lm.randn(4, 3)) end)
    same(hs:shape(), {4, 3}, 0, "a later capture records")
  end)

  it("checks the errors' inputs", function()
    at_caller(function() I.sample_errors(nil, lm.tensor({1}, 'int32')) end,
      "lm.introspect.sample_errors: outputs must be a tensor, got nil")
    at_caller(function() I.log_errors(lm.randn(2, 3), {1, 2}) end,
      "lm.introspect.log_errors: labels must be a tensor, got a table")
  end)

  it("checks the autoencoder and the estimator", function()
    at_caller(function() I.InfoVAE(3) end, "lm.introspect.InfoVAE: options must be a table, got 3")
    at_caller(function() I.InfoVAE{inputs = "many"} end,
      'lm.introspect.InfoVAE: opts.inputs must be a positive integer, got "many"')
    at_caller(function() I.InfoVAE{inputs = 4, depth = -1} end,
      "lm.introspect.InfoVAE: opts.depth must be a positive integer (or nil), got -1")
    raises(function() I.InfoVAE{} end, "InfoVAE: needs inputs (the recorded vector size)")
    at_caller(function() vae:init(false) end, "lm.introspect.InfoVAE: options must be a table, got false")
    at_caller(function() vae:encode(nil) end, "vae:encode: h must be a tensor, got nil")
    at_caller(function() vae:forward(2) end, "vae:forward: h must be a tensor, got 2")
    at_caller(function() vae(nil) end, "vae:forward: h must be a tensor, got nil")
    at_caller(function() vae:call("h") end, 'vae:forward: h must be a tensor, got "h"')
    -- misspelt options and inputs of another width, named before anything trains
    at_caller(function() I.InfoVAE{inputs = 3, mmd_wieght = 3} end,
      "lm.introspect.InfoVAE: unknown option 'mmd_wieght'; did you mean mmd_weight?")
    at_caller(function() I.fit_autoencoder(vae, H, {epoch = 1}) end,
      "lm.introspect.fit_autoencoder: unknown option 'epoch'; did you mean epochs?")
    at_caller(function() I.fit_autoencoder(vae, lm.randn(6, 9), {epochs = 1}) end,
      "lm.introspect.fit_autoencoder: H must be a recording [N, 3] (the autoencoder's inputs), got shape 6x9")
    at_caller(function() I.fit_estimator(est, lm.randn(6, 2), lm.randn(5), {epochs = 1}) end,
      "lm.introspect.fit_estimator: Z has 6 rows but T 5 targets (one a row)")
    at_caller(function() I.Recorder(model, {selct = {"1"}}) end,
      "lm.introspect.Recorder: unknown option 'selct'; did you mean select?")
    at_caller(function() I.Recorder(lm.nn.Sequential(lm.nn.Linear(2, 2))) end,
      "Recorder: the model has no layer to record (by default it records every nn.ELU")
    -- a recording of another width is named as such, not as a broadcast inside the standardisation
    at_caller(function() vae(lm.randn(4, 5)) end, "vae:forward: h must be a recording [N, 3], got shape 4x5")
    at_caller(function() vae:loss(lm.randn(4)) end, "vae:loss: h must be a recording [N, 3], got shape 4")
    at_caller(function() vae:fit_standardization(lm.randn(6, 2)) end,
      "vae:fit_standardization: H must be a recording [N, 3], got shape 6x2")
    at_caller(function() vae:encode_all(nil) end, "vae:encode_all: H must be a tensor, got nil")
    at_caller(function() vae:encode_all(H, 0.5) end,
      "vae:encode_all: batch_size must be a positive integer (or nil), got 0.5")
    at_caller(function() vae:fit_standardization(nil) end, "vae:fit_standardization: H must be a tensor, got nil")
    at_caller(function() vae:validation_loss({}) end, "vae:validation_loss: H must be a tensor, got a table")
    at_caller(function() vae:validation_loss(lm.zeros(0, 3)) end,
      "vae:validation_loss: H has no rows (no loss to take)")
    at_caller(function() vae:loss(H, 3) end, "vae:loss: gather must be a function, got 3")
    at_caller(function() I.Estimator(7) end, "lm.introspect.Estimator: options must be a table, got 7")
    at_caller(function() I.Estimator{hidden = "wide"} end,
      'lm.introspect.Estimator: opts.hidden must be a positive integer (or nil), got "wide"')
  end)

  it("checks the training and mapping functions", function()
    at_caller(function() I.fit_autoencoder(nil, H) end,
      "lm.introspect.fit_autoencoder: vae must be an autoencoder (lm.introspect.InfoVAE), got nil")
    at_caller(function() I.fit_autoencoder(lm.nn.Linear(3, 2), H) end,
      "fit_autoencoder: vae must be an autoencoder (lm.introspect.InfoVAE), got an nn.Linear")
    at_caller(function() I.fit_autoencoder(vae, 3) end, "lm.introspect.fit_autoencoder: H must be a tensor, got 3")
    at_caller(function() I.fit_autoencoder(vae, H, 1) end,
      "lm.introspect.fit_autoencoder: options must be a table, got 1")
    at_caller(function() I.fit_estimator(est, lm.randn(6, 2), nil) end,
      "lm.introspect.fit_estimator: T must be a tensor, got nil")
    at_caller(function() I.fit_estimator(true, lm.randn(6, 2), lm.randn(6)) end,
      "lm.introspect.fit_estimator: est must be a module (an lm.nn layer or model), got true")
    local set = {x = x, y = lm.tensor({1, 2, 1, 2, 1}, 'int32')}
    at_caller(function() I.fit_jointly(model, model, vae, est, set) end,
      "lm.introspect.fit_jointly: recorder must be a recorder (lm.introspect.Recorder), got a table")
    at_caller(function() I.fit_jointly(model, rec, vae, est, {x = x}) end,
      "lm.introspect.fit_jointly: set must be a data set {x = tensor, y = tensor}, got a table without a tensor y")
    at_caller(function() I.interrogate(nil, vae, est, x) end,
      "lm.introspect.interrogate: recorder must be a recorder (lm.introspect.Recorder), got nil")
    at_caller(function() I.interrogate(rec, vae, est, "x") end,
      'lm.introspect.interrogate: x must be a tensor, got "x"')
    at_caller(function() I.estimate(est, nil) end, "lm.introspect.estimate: Z must be a tensor, got nil")
    at_caller(function() I.estimate(nil, lm.randn(3, 2)) end,
      "lm.introspect.estimate: est must be a module (an lm.nn layer or model), got nil")
    at_caller(function() I.baseline_scores(nil, x) end,
      "lm.introspect.baseline_scores: net must be a module (an lm.nn layer or model), got nil")
    at_caller(function() I.baseline_scores(model, x, "fast") end,
      "lm.introspect.baseline_scores: options must be a table, got \"fast\"")
  end)

  it("checks the fits' option values and data before anything trains", function()
    local FA, FE = "lm.introspect.fit_autoencoder: ", "lm.introspect.fit_estimator: "
    local Z, T = lm.randn(6, 2), lm.randn(6)
    local cyc = function(c)
      local t = {max = 1e-3, period = 2, cycles = 1, validate = function() return 1 end}
      for k, v in pairs(c) do t[k] = v end
      return t
    end
    for _, case in ipairs({
      {{batch_size = 0}, "opts.batch_size must be a positive integer (or nil), got 0"},
      {{batch_size = 1.5}, "opts.batch_size must be a positive integer (or nil), got 1.5"},
      {{epochs = -1}, "opts.epochs must be a positive integer (or nil), got -1"},
      {{epochs = 1.5}, "opts.epochs must be a positive integer (or nil), got 1.5"},
      {{seed = "a"}, 'opts.seed must be an integer, got "a"'},
      {{log = 3}, "opts.log must be a function, got 3"},
      {{lr = -1}, "opts.lr must be a finite number >= 0, got -1"},
      {{progress = 0}, "opts.progress must be true or false, got 0"},
      {{cyclic = cyc{patiense = 1}}, "opts.cyclic: unknown option 'patiense'; did you mean patience?"},
      {{cyclic = cyc{period = 1}}, "opts.cyclic.period must be an integer >= 2 (iterations a cycle), got 1"},
      {{cyclic = cyc{cycles = 0}}, "opts.cyclic.cycles must be a positive integer (or nil), got 0"},
      {{cyclic = cyc{max = -1}}, "opts.cyclic.max must be a finite number >= 0, got -1"},
      {{cyclic = {max = 1e-3, period = 6}},
        "opts.cyclic needs {max = number, period = iterations, cycles = number, validate = function}"},
      {{epochs = 2, cyclic = cyc{}}, "opts.cyclic replaces opts.epochs (the cycles end the run): give one of them"},
    }) do
      at_caller(function() I.fit_autoencoder(vae, H, case[1]) end, FA .. case[2])
      at_caller(function() I.fit_estimator(est, Z, T, case[1]) end, FE .. case[2])
    end
    at_caller(function() I.fit_autoencoder(vae, lm.zeros(0, 3)) end, FA .. "H has no rows to train on")
    at_caller(function() I.fit_estimator(est, lm.zeros(0, 2), lm.zeros(0)) end, FE .. "Z has no rows to train on")
    local bad = H:clone()
    bad[2][2] = 0 / 0
    at_caller(function() I.fit_autoencoder(vae, bad) end,
      FA .. "H holds a NaN or an infinity (every loss would be NaN)")
    local inf = T:clone()
    inf[3] = math.huge
    at_caller(function() I.fit_estimator(est, Z, inf) end,
      FE .. "T holds a NaN or an infinity (every loss would be NaN)")
  end)

  it("checks the shapes of the data, naming the function", function()
    local A = require 'lumen.introspect.analyses'
    at_caller(function() vae:encode_all(lm.zeros(5)) end, "vae:encode_all: H must be a recording [N, 3], got shape 5")
    at_caller(function() I.estimate(est, lm.randn(4)) end,
      "lm.introspect.estimate: Z must be latents [N, d] (one row a sample), got shape 4")
    at_caller(function() A.error_grid(est, {cells = 0}) end,
      "analyses.error_grid: o.cells must be a positive integer (or nil), got 0")
    at_caller(function() I.baseline_scores(model, lm.randn(4)) end,
      "lm.introspect.baseline_scores: x must be a batch [N, ...] (one row a sample), got shape 4")
    at_caller(function() I.sample_errors(lm.tensor{0.5, 0.5}, lm.tensor({1, 2}, 'int32')) end,
      "lm.introspect.sample_errors: outputs must be [N, C] with one label a row, got outputs 2 and 2 labels")
    at_caller(function() I.sample_errors(lm.randn(3, 2), lm.tensor({1, 2}, 'int32')) end,
      "lm.introspect.sample_errors: outputs must be [N, C] with one label a row, got outputs 3x2 and 2 labels")
    at_caller(function() I.log_errors(lm.randn(4, 3), lm.tensor({1, 2, 3}, 'int32')) end,
      "lm.introspect.log_errors: outputs must be [N, C] with one label a row, got outputs 4x3 and 3 labels")
    at_caller(function() I.standardize(H, lm.zeros(4), lm.ones(3)) end,
      "lm.introspect.standardize: mean and std must have one value a column of x (3), got 4 and 3")
  end)

  it("names a misspelt option instead of ignoring it", function()
    local A = require 'lumen.introspect.analyses'
    local set = {x = x, y = lm.tensor({1, 2, 1, 2, 1}, 'int32')}
    at_caller(function() I.Estimator{inputs = 5} end, "lm.introspect.Estimator: unknown option 'inputs'")
    at_caller(function() rec:record_set(x, {batchsize = 2}) end,
      "recorder:record_set: unknown option 'batchsize'; did you mean batch_size?")
    at_caller(function() I.fit_jointly(model, rec, vae, est, set, {epoch = 1}) end,
      "lm.introspect.fit_jointly: unknown option 'epoch'; did you mean epochs?")
    at_caller(function() I.knn_accuracy(lm.randn(6, 2), lm.tensor({1, 2, 1, 2, 1, 2}, 'int32'), 2, {frist = 2}) end,
      "lm.introspect.knn_accuracy: unknown option 'frist'; did you mean first?")
    at_caller(function() A.grid{lmi = 2} end, "analyses.grid: unknown option 'lmi'; did you mean lim?")
    at_caller(function() A.error_grid(est, {cell = 2}) end, "analyses.error_grid: unknown option 'cell'")
  end)

  it("checks fit_jointly's option values and data before anything changes, and ends in evaluation mode", function()
    local FJ = "lm.introspect.fit_jointly: "
    local set = {x = x, y = lm.tensor({1, 2, 1, 2, 1}, 'int32')}
    local before = model:state_dict()
    at_caller(function() I.fit_jointly(model, rec, vae, est, set, {batch_size = 0}) end,
      FJ .. "opts.batch_size must be a positive integer (or nil), got 0")
    at_caller(function() I.fit_jointly(model, rec, vae, est, set, {epochs = 1.5}) end,
      FJ .. "opts.epochs must be a positive integer (or nil), got 1.5")
    at_caller(function() I.fit_jointly(model, rec, vae, est, set, {lr = -1}) end,
      FJ .. "opts.lr must be a finite number >= 0, got -1")
    at_caller(function() I.fit_jointly(model, rec, vae, est, set, {seed = 0.5}) end,
      FJ .. "opts.seed must be an integer, got 0.5")
    at_caller(function() I.fit_jointly(model, rec, vae, est, set, {log = 3}) end,
      FJ .. "opts.log must be a function, got 3")
    local nan_x = x:clone()
    nan_x:narrow(1, 2, 1):fill_(0 / 0)
    at_caller(function() I.fit_jointly(model, rec, vae, est, {x = nan_x, y = set.y}) end,
      FJ .. "set.x holds a NaN or an infinity (every loss would be NaN)")
    for name, t in pairs(before) do same(model:state_dict()[name]:totable(), t:totable(), 0, name) end
    at_caller(function() I.fit_jointly(model, rec, vae, est, set) end, FJ .. "lm.data.loader: 5 samples make "
      .. "no whole batch of 128, and a shuffling loader drops the partial one: pass a smaller batch_size")
    for name, t in pairs(before) do same(model:state_dict()[name]:totable(), t:totable(), 0, name) end
    raises(function()
      I.fit_jointly(model, rec, vae, est, set, {epochs = 1, batch_size = 2, log = function() error("stop here", 0) end})
    end, "stop here")
    eq(model.training, false, "the classifier back in evaluation mode")
    eq(vae.training, false, "the autoencoder too")
    local broken = net()
    lm.no_grad(function() broken[1].weight:fill_(0 / 0) end)
    at_caller(function()
      I.fit_jointly(broken, I.Recorder(broken), vae, est, set, {epochs = 1, batch_size = 2})
    end, FJ .. "the classifier's loss is not finite in epoch 1 (nan)")
    eq(broken.training, false)
  end)

  it("checks the InfoVAE's loss settings and the grid's values when they are given", function()
    local A = require 'lumen.introspect.analyses'
    at_caller(function() I.InfoVAE{inputs = 3, mmd_weight = "x"} end,
      'lm.introspect.InfoVAE: opts.mmd_weight must be a finite number >= 0, got "x"')
    for _, bw in ipairs({-1, 0 / 0, {1, 0}, {}}) do
      at_caller(function() I.InfoVAE{inputs = 3, bw = bw} end,
        "lm.introspect.InfoVAE: opts.bw must be a number > 0 or a list of them (the kernel bandwidths)")
    end
    eq(I.InfoVAE{inputs = 3, bw = {0.1, 1}}.mmd_weight, 1)
    local many = {}
    for i = 1, 33 do many[i] = i end
    at_caller(function() I.InfoVAE{inputs = 3, bw = many} end,
      "lm.introspect.InfoVAE: opts.bw lists 33 bandwidths; the kernel takes at most 32")
    at_caller(function() A.grid{size = 0} end, "analyses.grid: o.size must be a positive integer (or nil), got 0")
    at_caller(function() A.grid{size = 1.5} end, "analyses.grid: o.size must be a positive integer (or nil), got 1.5")
    at_caller(function() A.grid{lim = -1} end, "analyses.grid: o.lim must be a finite number > 0, got -1")
  end)

  it("checks knn_accuracy's arguments", function()
    local Z, y = lm.randn(6, 2), lm.tensor({1, 2, 1, 2, 1, 2}, 'int32')
    at_caller(function() I.knn_accuracy(nil, y) end, "lm.introspect.knn_accuracy: Z must be a tensor, got nil")
    at_caller(function() I.knn_accuracy(Z, {1, 2}) end,
      "lm.introspect.knn_accuracy: labels must be a tensor, got a table")
    at_caller(function() I.knn_accuracy(Z, y, "ten") end,
      'lm.introspect.knn_accuracy: k must be a positive integer (or nil), got "ten"')
    at_caller(function() I.knn_accuracy(Z, y, 2, 3) end, "lm.introspect.knn_accuracy: options must be a table, got 3")
    at_caller(function() I.knn_accuracy(Z, y:narrow(1, 1, 4), 2) end,
      "lm.introspect.knn_accuracy: Z must be [N, d] with one label per row, got Z 6x2 and 4 labels")
    eq(I.knn_accuracy(Z, y, 2, {first = 2, count = 0}) ~= I.knn_accuracy(Z, y, 2, {first = 2, count = 0}), true,
      "no queries: NaN")
    at_caller(function() I.knn_accuracy(Z, y, 2, {first = 4, count = 5}) end,
      "lm.introspect.knn_accuracy: the queries 4..8 (o.first, o.count) run past the 6 points")
  end)
end)

describe("lm.explain argument checks", function()
  local model = net()
  local rec = I.Recorder(model)
  local vae = I.InfoVAE{inputs = 3, latent = 2, hidden = 4, depth = 1}
  local est = I.Estimator{latent = 2, hidden = 4, depth = 1}
  local x = lm.randn(2, 4)

  it("checks the model of the class methods", function()
    at_caller(function() E.saliency(nil, x) end,
      "lm.explain.saliency: model must be a module (an lm.nn layer or model), got nil")
    at_caller(function() E.input_x_gradient(3, x) end,
      "lm.explain.input_x_gradient: model must be a module (an lm.nn layer or model), got 3")
    at_caller(function() E.smoothgrad({}, x) end,
      "lm.explain.smoothgrad: model must be a module (an lm.nn layer or model), got a table")
    at_caller(function() E.integrated_gradients("net", x) end,
      'lm.explain.integrated_gradients: model must be a module (an lm.nn layer or model), got "net"')
    at_caller(function() E.occlusion(nil, x, {window = 2}) end,
      "lm.explain.occlusion: model must be a module (an lm.nn layer or model), got nil")
    at_caller(function() E.grad_cam(nil, "1", x) end,
      "lm.explain.grad_cam: model must be a module (an lm.nn layer or model), got nil")
    at_caller(function() E.grad_cam_pp(false, "1", x) end,
      "lm.explain.grad_cam_pp: model must be a module (an lm.nn layer or model), got false")
    at_caller(function() E.saliency(model, nil) end, "lm.explain.saliency: x (a batch) must be a tensor, got nil")
  end)

  it("checks attribute's function, input and models", function()
    at_caller(function() E.attribute(nil, x) end, "lm.explain.attribute: fn must be a function, got nil")
    at_caller(function() E.attribute(function(X) return X:sum(2) end, nil) end,
      "lm.explain.attribute: x (a batch) must be a tensor, got nil")
    at_caller(function() E.attribute(function(X) return X:sum(2) end, x, {models = {3}}) end,
      "lm.explain.attribute: opts.models[1] must be a module (an lm.nn layer or model), got 3")
  end)

  it("checks the map methods' recorder and models", function()
    at_caller(function() E.map_position(nil, vae, x) end,
      "lm.explain.map_position: recorder must be a recorder (lm.introspect.Recorder), got nil")
    at_caller(function() E.map_position(rec, model, x) end,
      "lm.explain.map_position: vae must be an autoencoder (lm.introspect.InfoVAE), got an nn.Sequential")
    at_caller(function() E.log_error(rec, vae, nil, x) end,
      "lm.explain.log_error: est must be a module (an lm.nn layer or model), got nil")
    at_caller(function() E.log_error(5, vae, est, x) end,
      "lm.explain.log_error: recorder must be a recorder (lm.introspect.Recorder), got 5")
  end)

  it("checks the figures' and the path's arguments", function()
    at_caller(function() E.colorize(nil) end, "lm.explain.colorize: attr must be a tensor, got nil")
    at_caller(function() E.colorize(lm.zeros(4, 4), print) end,
      "lm.explain.colorize: image must be a tensor (or nil), got a function")
    at_caller(function() E.colorize(lm.zeros(4, 4), nil, {vmax = "1"}) end,
      'lm.explain.colorize: o.vmax must be a number, got "1"')
    at_caller(function() E.diverging(nil) end, "lm.explain.diverging: t must be a number, got nil")
    at_caller(function() E.figure(nil, x, x) end, "lm.explain.figure: path must be a string, got nil")
    at_caller(function() E.figure("f.png", lm.randn(3), lm.randn(3)) end,
      "figure: images must be a tensor [N, ...] of samples, got one of shape [3]")
    at_caller(function() E.path(true, lm.rand(4, 4)) end,
      "lm.explain.path: model must be a module (an lm.nn layer or model), got true")
    at_caller(function() E.path(model, lm.rand(4, 4), 2) end, "lm.explain.path: options must be a table, got 2")
    at_caller(function() E.path(model, lm.rand(4, 4), {at = 2}) end, "lm.explain.path: opts.at must be a table, got 2")
  end)
end)
