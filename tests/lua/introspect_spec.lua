-- The introspection library on small problems.
local lm = require 'lumen'
local I = lm.introspect
local nn = lm.nn

-- n random inputs of 16 values labelled 1, 2, 3, 1, ...
local function three_classes(n)
  local labels = {}
  for i = 1, n do labels[i] = (i - 1) % 3 + 1 end
  return {x = lm.rand(n, 16), y = lm.tensor(labels, 'int32')}
end

describe("introspection", function()
  it("records every hidden non-linearity in order, in evaluation mode", function()
    lm.manual_seed(1)
    local net = lm.models.net1{inputs = 6, hidden = 5, layers = 3, classes = 4}
    local rec = I.Recorder(net)
    eq(#rec.layers, 3)
    local x = lm.randn(7, 6)
    local H, out = rec:record(x)
    same(H:shape(), {7, 15})
    same(out:shape(), {7, 4})
    -- the first 5 values are the first ELU's output, computed by hand
    local first = lm.no_grad(function() return net[1](x):elu() end)
    same(H:narrow(2, 1, 5):totable(), first:totable(), 1e-6)
    eq(net.training, true, "the model's mode is restored")
    local Hs = rec:record_set(x, {batch_size = 3})
    same(Hs:totable(), H:totable(), 1e-6)
    same(rec.layer_sizes, {5, 5, 5})
  end)

  it("selects the ELUs that follow one kind of layer", function()
    local net = nn.Sequential(nn.Linear(4, 3), nn.ELU(), nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2), nn.ELU(),
      nn.ELU())
    local rec = I.Recorder(net, {select = I.elus_after(net, "nn.Linear")})
    rec:record(lm.randn(2, 4))
    same(rec.layer_sizes, {3, 2}, 0, "the ELUs after the first and last Linear, not the ReLU or the ELU after an ELU")
    same(rec.layer_names, {"1", "5"})
    raises(function() I.Recorder(net, {select = I.elus_after(net, "nn.Conv2d")}) end,
      "Recorder: the model has no layer to record")
  end)

  it("streams a recording to a safetensors file and maps it back", function()
    lm.manual_seed(4)
    local net = lm.models.net1{inputs = 6, hidden = 5, layers = 3, classes = 4}
    local rec = I.Recorder(net)
    local x = lm.randn(11, 6)
    local H, Y = rec:record_set(x)
    local path = os.tmpname()
    local Hf, Yf = rec:record_set(x, {batch_size = 4, path = path})      -- three batches, the last short
    same(Hf:totable(), H:totable(), 0, "activations")
    same(Yf:totable(), Y:totable(), 0, "outputs")
    local t = lm.load(path)
    same(t.activations:shape(), {11, 15})
    same(t.outputs:shape(), {11, 4})
    -- a failing recording leaves no file
    os.remove(path)
    raises(function() rec:record_set(lm.randn(5, 7), {path = path}) end, "linear: input has 7 features")
    eq(io.open(path), nil, "no partial file")
  end)

  it("appends earlier recordings after a set's rows, in memory and in a file", function()
    lm.manual_seed(5)
    local net = lm.models.net1{inputs = 6, hidden = 5, layers = 3, classes = 4}
    local rec = I.Recorder(net)
    local x = lm.randn(9, 6)
    local H, Y = rec:record_set(x)
    local s1, s2 = lm.randn(3, 15), lm.randn(2, 15)
    local want = lm.cat({H, s1, s2}, 1):totable()
    local Ha, Ya = rec:record_set(x, {batch_size = 4, append_rows = {s1, lm.zeros(0, 15), s2}})
    same(Ha:totable(), want, 0, "memory")
    same(Ya:shape(), {9, 4}) -- the outputs keep the set's rows
    local path = os.tmpname()
    local Hf, Yf = rec:record_set(x, {batch_size = 4, path = path, append_rows = {s1, s2}})
    same(Hf:totable(), want, 0, "file")
    same(Yf:totable(), Y:totable(), 0)
    os.remove(path)
    raises(function() rec:record_set(x, {append_rows = {lm.randn(2, 14)}}) end,
      "record_set: append_rows[1] has 14 columns, the recording 15")
    raises(function() rec:record_set(x, {append_rows = {s1, lm.randn(2)}}) end,
      "record_set: append_rows[2] must be a 2-D tensor")
  end)

  it("says how much memory is available and the process's peak", function()
    local free = I.available_memory()
    truthy(free == nil or free > 1e6, tostring(free))
    truthy(I.peak_memory() > 1e6, tostring(I.peak_memory()))
    -- in a fresh process (this one's freed heap could serve the block from
    -- pages already resident): 256 MB touched raise the peak by about that
    local lumen = (os.getenv("LUMEN_BUILD_DIR") or "build") .. "/lumen"
    local p = io.popen("'" .. lumen .. "' -e \"local I = lm.introspect; local a = I.peak_memory(); "
      .. "local big = lm.ones(64, 1024, 1024); print(a, I.peak_memory(), big:numel())\"")
    local before, after, n = p:read("n", "n", "n")
    p:close()
    eq(n, 64 * 1024 * 1024)
    truthy(after - before >= 250e6, string.format("peak %d before, %d after", before, after))
  end)

  it("computes the paper's per-sample error and its log", function()
    local out = lm.tensor{{0.9, 0.1}, {0.5, 0.5}}
    local y = lm.tensor({1, 2}, 'int32')
    same(I.sample_errors(out, y):totable(), {0.01, 0.25}, 1e-7)
    same(I.log_errors(lm.tensor{{1, 0}}, lm.tensor({1}, 'int32')):totable(), {-8}, 1e-6) -- floored at 1e-8
  end)

  it("trains an InfoVAE whose loss falls and whose latent is 2-D", function()
    lm.manual_seed(2)
    local H = lm.randn(512, 20) + lm.randn(512, 1) * 3 -- one strong common direction
    local vae = I.InfoVAE{inputs = 20, hidden = 32, depth = 2, mmd_weight = 10}
    local history = I.fit_autoencoder(vae, H, {epochs = 6, batch_size = 64, tty = false})
    truthy(history[6].loss < history[1].loss, history[1].loss .. " -> " .. history[6].loss)
    local Z = vae:encode_all(H)
    same(Z:shape(), {512, 2})
    local back = lm.no_grad(function() return vae:decode(Z) end)
    same(back:shape(), {512, 20})
  end)

  it("fits an estimator to a target on the map", function()
    lm.manual_seed(3)
    local Z = lm.randn(1024, 2)
    local T = Z:select(2, 1) * 2 - 1
    local est = I.Estimator{hidden = 32, depth = 2}
    local est2 = I.Estimator{hidden = 32, depth = 2}
    est2:load_state_dict(est:state_dict())
    local h = I.fit_estimator(est, Z, T, {epochs = 30, batch_size = 64, lr = 3e-3, tty = false})
    truthy(h[30].loss < 0.05, "final loss " .. h[30].loss)
    -- the losses summed where they are (a GPU's way) and read every 5 steps:
    -- the same epochs' losses, to float32's sums
    local h2 = I.fit_estimator(est2, Z, T, {epochs = 30, batch_size = 64, lr = 3e-3, tty = false, read_every = 5})
    for e = 1, 30 do same(h2[e].loss, h[e].loss, 1e-6 * h[e].loss, "epoch " .. e) end
    raises(function() I.fit_estimator(est, Z, T, {epochs = 1, graph = true}) end,
      "lm.introspect.fit_estimator: graph = true captures CUDA graphs: it needs the model on a GPU and one process")
  end)

  it("trains in the paper's regime: a cyclic rate, a validation per cycle, early stopping", function()
    lm.manual_seed(3)
    local Z = lm.randn(256, 2)
    local T = Z:select(2, 1) * 2 - 1
    local function params(m)
      local t = {}
      for k, p in ipairs(m:parameters()) do t[k] = p:clone() end
      return t
    end
    -- a peak of 0 keeps the rate at 0 all along: Adam moves nothing
    local est = I.Estimator{hidden = 8, depth = 1}
    local before = params(est)
    local h = I.fit_estimator(est, Z, T, {batch_size = 64, tty = false,
      cyclic = {max = 0, period = 6, cycles = 3, validate = function() return 1 end}})
    eq(#h.cycles, 3)
    same({h.cycles[1].steps, h.cycles[2].steps, h.cycles[3].steps}, {6, 12, 18})
    for k, p in ipairs(est:parameters()) do eq((p - before[k]):abs():max():item(), 0, "parameter " .. k) end
    -- validation losses 5, 1, 2, 3, 4: patience 3 stops after the fifth
    -- cycle and puts the second cycle's weights back
    local losses, seen = {5, 1, 2, 3, 4, 0, 0}, {}
    est = I.Estimator{hidden = 8, depth = 1}
    h = I.fit_estimator(est, Z, T, {batch_size = 64, tty = false,
      cyclic = {max = 1e-2, period = 6, cycles = 7, patience = 3, validate = function()
        seen[#seen + 1] = params(est)
        return losses[#seen]
      end}})
    eq(#h.cycles, 5)
    same({h.cycles[1].best, h.cycles[2].best, h.cycles[3].best}, {true, true, false})
    local moved = 0
    for k, p in ipairs(est:parameters()) do
      eq((p - seen[2][k]):abs():max():item(), 0, "parameter " .. k .. " is the second cycle's")
      moved = math.max(moved, (seen[5][k] - seen[2][k]):abs():max():item())
    end
    truthy(moved > 1e-4, "training went on after the best cycle")
    raises(function() I.fit_estimator(est, Z, T, {cyclic = {max = 1e-3, period = 6}}) end,
      "lm.introspect.fit_estimator: opts.cyclic needs {max = number, period = iterations, cycles = number, validate = "
        .. "function}")
  end)

  it("leaves the model as it was when a fit is refused, and in evaluation mode when one fails", function()
    local vae = I.InfoVAE{inputs = 3, hidden = 4, depth = 1}
    local H = lm.randn(40, 3) * 5 + 10
    vae:fit_standardization(H)
    local mean = vae.mean:clone()
    raises(function() I.fit_autoencoder(vae, lm.randn(40, 3), {epochs = 1, lr = -1}) end, "opts.lr")
    eq((vae.mean - mean):abs():max():item(), 0, "a refused fit keeps the standardisation")
    vae:train()
    raises(function() I.fit_autoencoder(vae, H, {epochs = 2, progress = false, log = function() error("stop") end}) end,
      "stop")
    eq(vae.training, false, "a failed fit ends in evaluation mode, as a finished one")
    -- a loss that becomes NaN stops the fit at its epoch, as lm.train does
    raises(function() I.fit_autoencoder(vae, H, {epochs = 3, lr = 1e30, progress = false}) end,
      "lm.introspect.fit_autoencoder: the loss became")
    eq(vae.training, false)
    -- so does a NaN validation loss in the cyclic regime (it would keep the last weights)
    local est = I.Estimator{hidden = 4, depth = 1}
    raises(function()
      I.fit_estimator(est, lm.randn(20, 2), lm.randn(20), {batch_size = 4, progress = false,
        cyclic = {max = 1e-3, period = 2, cycles = 3, validate = function() return 0 / 0 end}})
    end, "lm.introspect.fit_estimator: opts.cyclic.validate must return a finite number (the validation loss), "
      .. "got nan after cycle 1")
    eq(est.training, false)
    -- once a cycle was best, a NaN is a cycle no better: patience ends the run, the best weights come back
    local vals, k, best, logged = {1, 0.5, 0 / 0, 0 / 0}, 0, nil, 0
    I.fit_estimator(est, lm.randn(20, 2), lm.randn(20), {batch_size = 4, progress = false,
      log_cycle = function() logged = logged + 1 end,
      cyclic = {max = 1e-3, period = 2, cycles = 10, patience = 2, validate = function()
        k = k + 1
        if k == 2 then best = est:state_dict()["0.weight"]:clone() end
        return vals[k]
      end}})
    eq(logged, 4, "two cycles past the best")
    same(est:state_dict()["0.weight"]:totable(), best:totable(), 0, "cycle 2's weights")
  end)

  it("trains 10 epochs by default, as documented", function()
    local v = I.InfoVAE{inputs = 3, hidden = 4, depth = 1}
    eq(#I.fit_autoencoder(v, lm.randn(20, 3), {progress = false}), 10)
    eq(#I.fit_estimator(I.Estimator{hidden = 4, depth = 1}, lm.randn(20, 2), lm.randn(20), {progress = false}), 10)
  end)

  it("standardises one row with standard deviations 1, and refuses no rows", function()
    local mean, std = I.standardization(lm.tensor{{1, 2, 3, 4, 5}})
    same(mean:totable(), {1, 2, 3, 4, 5})
    same(std:totable(), {1, 1, 1, 1, 1}, 0, "not NaN (the unbiased std of one row is 0 / 0)")
    local _, two = I.standardization(lm.tensor{{1, 2}, {1, 4}})
    near(two:totable()[1], 1e-3, 1e-9, "a constant column: clamped at 1e-3")
    raises(function() I.standardization(lm.zeros(0, 5)) end,
      "lm.introspect.standardization: H has no rows (no mean or standard deviation to take)")
    raises(function() I.standardization(lm.zeros(5)) end,
      "lm.introspect.standardization: H must be a recording [N, k], got shape 5")
  end)

  it("gives an InfoVAE's validation loss on the same prior draw at every call", function()
    lm.manual_seed(4)
    local H = lm.randn(300, 12)
    local vae = I.InfoVAE{inputs = 12, hidden = 16, depth = 1, mmd_weight = 3}
    vae:fit_standardization(H)
    local a = vae:validation_loss(H)
    lm.randn(7) -- the caller's stream moves on; the loss does not
    eq(vae:validation_loss(H), a)
    -- two full batches of 128 (the last 44 rows are not a batch): their mean loss
    lm.manual_seed(0x5EED)
    local expect = lm.no_grad(function()
      return (vae:loss(H:narrow(1, 1, 128)):item() + vae:loss(H:narrow(1, 129, 128)):item()) / 2
    end)
    near(a, expect, 1e-6)
    -- fewer rows than a batch: one batch of them all
    lm.manual_seed(0x5EED)
    local small = lm.no_grad(function() return vae:loss(H:narrow(1, 1, 50)):item() end)
    near(vae:validation_loss(H:narrow(1, 1, 50)), small, 1e-6)
  end)

  it("measures kNN accuracy, AUROC and AUPR", function()
    local Z = lm.tensor{{0, 0}, {0, 0.1}, {0.1, 0}, {5, 5}, {5, 5.1}, {5.1, 5}}
    local y = lm.tensor({1, 1, 1, 2, 2, 2}, 'int32')
    eq(I.knn_accuracy(Z, y, 2), 1)
    eq(I.knn_accuracy(Z, lm.tensor({1, 2, 1, 2, 1, 2}, 'int32'), 2) < 1, true)
    -- the ranking measures refuse what would give an order-dependent or wrong number
    local A = require 'lumen.introspect.analyses'
    raises(function() I.auroc({0.1, 0 / 0, 0.3}, {true, false, false}) end, "auroc: 1 of the 3 scores are NaN")
    raises(function() I.aupr({0.1, 0.2}, {true, false, true}) end, "aupr: 2 scores but 3 labels")
    raises(function() A.fpr_at_tpr({0.1, 0.2}, {1, 0}) end, "fpr_at_tpr: label 1 is a number, not a boolean")
    -- fewer points than k + 1: every other point votes (k = 5 here)
    eq(I.knn_accuracy(Z, y, 10), I.knn_accuracy(Z, y, 5))
    eq(I.knn_accuracy(Z, y, 10), 0, "5 neighbours: 2 of the own class against 3")
    local one = I.knn_accuracy(Z:narrow(1, 1, 1), y:narrow(1, 1, 1), 10)
    truthy(one ~= one, "a single point has no neighbour: NaN")
    -- in blocks of queries: the same votes as one block, for every part
    lm.manual_seed(5)
    local labels = {}
    for i = 1, 300 do labels[i] = i % 3 + 1 end
    local Zb, yb = lm.randn(300, 2), lm.tensor(labels, "int32")
    local whole = I.knn_accuracy(Zb, yb, 10, {chunk = 300})
    truthy(whole > 0.2 and whole < 0.5, "random labels vote near chance: " .. whole)
    eq(I.knn_accuracy(Zb, yb, 10, {chunk = 7}), whole)
    eq(I.knn_accuracy(Zb, yb, 10), whole)
    eq(I.knn_accuracy(Zb, yb, 10, {first = 101, count = 150, chunk = 13}),
      I.knn_accuracy(Zb, yb, 10, {first = 101, count = 150, chunk = 150}))
    near(I.auroc({0.1, 0.4, 0.35, 0.8}, {false, true, false, true}), 1, 1e-12)
    near(I.auroc({0.1, 0.4, 0.35, 0.8}, {true, false, false, true}), 0.5, 1e-12)
    near(I.aupr({0.9, 0.8, 0.1}, {true, false, true}), (1 + 2 / 3) / 2, 1e-12)
    -- ties: one threshold, counted at the group's precision, in any order
    near(I.auroc({0.5, 0.5, 0.2}, {true, false, false}), 0.75, 1e-12)
    near(I.aupr({0.5, 0.5, 0.2}, {true, false, true}), (1 / 2 + 2 / 3) / 2, 1e-12)
    near(I.aupr({0.5, 0.5, 0.2}, {false, true, true}), (1 / 2 + 2 / 3) / 2, 1e-12)
    -- the groups those measures walk: ranks and flagged counts, both orders
    local function groups(scores, flags, descending)
      local out = {}
      for first, last, hits in I.tie_groups(scores, flags, descending) do
        out[#out + 1] = string.format("%d-%d:%d", first, last, hits)
      end
      return table.concat(out, " ")
    end
    local s, f = {0.3, 0.7, 0.3, 0.1, 0.7, 0.3}, {true, false, false, true, true, true}
    eq(groups(s, f), "1-1:1 2-4:2 5-6:1")
    eq(groups(s, f, true), "1-2:1 3-5:2 6-6:1")
    eq(groups({}, {}), "")
  end)

  it("trains classifier, autoencoder and estimator jointly with the three stop-gradients", function()
    lm.manual_seed(4)
    local n = 512
    local y = (lm.rand(n) * 3):int() + 1
    local x = lm.randn(n, 10) * 0.3 + lm.data.one_hot(y, 3):float():matmul(lm.randn(3, 10))
    local net = lm.models.net1{inputs = 10, hidden = 16, layers = 3, classes = 3, dropout = 0}
    local rec = I.Recorder(net)
    local vae = I.InfoVAE{inputs = 48, hidden = 32, depth = 2, mmd_weight = 10, bw = {0.1, 1, 10}}
    local est = I.Estimator{hidden = 16, depth = 2}
    local h = I.fit_jointly(net, rec, vae, est, {x = x, y = y}, {epochs = 8, batch_size = 32, lr = 3e-3})
    truthy(h[8].classifier < h[1].classifier, "classifier loss falls")
    truthy(h[8].autoencoder < h[1].autoencoder, "autoencoder loss falls")
    truthy(h[8].estimator < h[1].estimator, "estimator loss falls")
    -- the stop-gradients: the autoencoder's loss sends nothing into the classifier
    local _, hh = rec:capture(function() return net(x:narrow(1, 1, 8)) end)
    net:zero_grad()
    vae:loss(hh:detach()):backward()
    for _, p in ipairs(net:parameters()) do eq(p.grad, nil) end
    -- one call maps new inputs
    local z, e_hat, o = I.interrogate(rec, vae, est, x:narrow(1, 1, 5))
    same(z:shape(), {5, 2}); same(e_hat:shape(), {5}); same(o:shape(), {5, 3})
  end)
end)


describe("study.run", function()
  it("gives the same results with its recordings in memory or streamed to files", function()
    local study = require 'lumen.introspect.study'
    local function run(mode)
      lm.manual_seed(5)
      local x = lm.rand(120, 16)
      local labels = {}
      for i = 1, 120 do labels[i] = (i - 1) % 3 + 1 end
      local set = {x = x, y = lm.tensor(labels, 'int32')}
      local net = lm.models.net1{inputs = 16, hidden = 8, layers = 2, classes = 3}
      local out = os.tmpname()
      os.remove(out)
      local saved = _G.print
      _G.print = function() end -- the stages' progress lines
      local ok, metrics = pcall(study.run, {name = "tiny", data = {name = "random", classes = {"a", "b", "c"}},
        train = set, test = lm.data.head(set, 40), net = net, recorder = I.Recorder(net), out = out,
        ae_epochs = 1, est_epochs = 1, seed = 1, record_to = mode})
      _G.print = saved
      assert(ok, metrics)
      local f = io.open(out .. "/recording_train.safetensors")
      if f then f:close() end
      os.execute("rm -rf '" .. out .. "'")
      return metrics, f ~= nil
    end
    local in_memory, wrote_memory = run("memory")
    local streamed, wrote_file = run("file")
    eq(wrote_memory, false)
    eq(wrote_file, true, "recording_train.safetensors written")
    for _, k in ipairs{"latent_knn10_accuracy", "auroc_correct", "estimator_mse_log10"} do
      eq(streamed[k], in_memory[k], k)
    end
    local saved = _G.print
    _G.print = function() end
    raises(function() study.run{name = "x", data = {name = "y", classes = {"a"}}, train = {x = lm.rand(2, 16)},
      test = {x = lm.rand(2, 16)}, net = lm.nn.ELU(), recorder = {}, out = os.tmpname() .. "_d",
      record_to = "memory", paper = {lr_max = 1e-3, period = 5, cycles = 1}} end,
      "study.run: the paper's regime (c.paper) checks its losses on a validation set: give c.val")
    raises(function() study.run{name = "x", data = {name = "y", classes = {"a"}}, train = {x = lm.rand(2, 16)},
      test = {x = lm.rand(2, 16)}, net = lm.nn.ELU(), recorder = {}, out = os.tmpname() .. "_d",
      record_to = "disk"} end,
      "record_to must be 'memory', 'file' or 'auto', got 'disk'")
    _G.print = saved
  end)

  it("trains the paper's two autoencoders in its regime with --paper", function()
    local study = require 'lumen.introspect.study'
    lm.manual_seed(6)
    local train, val, test = three_classes(120), three_classes(30), three_classes(40)
    local net = lm.models.net1{inputs = 16, hidden = 8, layers = 2, classes = 3}
    local recorder = I.Recorder(net)
    local pick = lm.tensor({1, 5, 9, 13, 17, 21, 25, 29, 33, 37}, 'int32')
    local picked = train.x:index_select(pick)
    local snapshots = {(recorder:record(picked)), (recorder:record(picked * 0.5))}
    local out = os.tmpname()
    os.remove(out)
    local saved = _G.print
    _G.print = function() end
    local ok, metrics = pcall(study.run, {name = "tiny", data = {name = "random", classes = {"a", "b", "c"}},
      train = train, val = val, test = test, net = net, recorder = recorder, out = out, snapshots = snapshots,
      trajectory_index = pick, est_epochs = 1, seed = 1, record_to = "memory",
      paper = {lr_max = 1e-3, period = 4, cycles = 2, patience = 5}})
    _G.print = saved
    local record_ae = io.open(out .. "/autoencoder_record.safetensors")
    if record_ae then record_ae:close() end
    os.execute("rm -rf '" .. out .. "'")
    assert(ok, metrics)
    truthy(record_ae ~= nil, "the learning record's autoencoder is saved")
    eq(metrics.paper_preset, true)
    for _, name in ipairs{"autoencoder", "record autoencoder", "estimator"} do
      eq(metrics.cycles[name].cycles, 2, name)
      truthy(metrics.cycles[name].best >= 1, name)
    end
    eq(metrics.estimator_epoch, nil) -- the paper's regime chose by the validation loss, not by epochs
    truthy(metrics.recording_estimator_epoch >= 1)
    -- the validation split's measures: 30 samples, the classifier's accuracy on them known
    local v = metrics.validation
    net:evaluate()
    local correct = {}
    for i, hit in ipairs(lm.no_grad(function() return net(val.x) end):argmax(2):eq(val.y):totable()) do
      correct[i] = hit == 1
    end
    local right = 0
    for _, hit in ipairs(correct) do if hit then right = right + 1 end end
    near(v.classifier_accuracy, right / 30, 1e-12)
    near(v.auroc_correct_baseline, I.auroc(I.baseline_scores(net, val.x), correct), 1e-12)
    for _, k in ipairs{"auroc_correct_estimator", "aupr_error_estimator", "aupr_error_baseline",
        "auroc_correct_recording_estimator", "aupr_error_recording_estimator", "latent_knn10_accuracy"} do
      eq(type(v[k]), "number", k)
    end
  end)
end)

describe("study.run's combined score", function()
  it("is a logistic regression on the recording's estimate and the largest logit, fitted on validation", function()
    local study = require 'lumen.introspect.study'
    local S = require 'lumen.introspect.scores'
    lm.manual_seed(7)
    local train, val, test = three_classes(150), three_classes(90), three_classes(60)
    local net = lm.models.net1{inputs = 16, hidden = 8, layers = 2, classes = 3}
    local recorder = I.Recorder(net)
    local out = os.tmpname()
    os.remove(out)
    local saved = _G.print
    _G.print = function() end
    local ok, metrics = pcall(study.run, {name = "tiny", data = {name = "random", classes = {"a", "b", "c"}},
      train = train, val = val, test = test, net = net, recorder = recorder, out = out, ae_epochs = 1,
      est_epochs = 1, seed = 1, record_to = "memory", est_regime = {lr_max = 1e-3, period = 4, cycles = 1}})
    _G.print = saved
    -- the same score computed here from the saved recording estimator
    local est_rec = S.StandardizedEstimator{inputs = recorder:width(val.x:narrow(1, 1, 1))}
    if ok then est_rec:load(out .. "/estimator_recording.safetensors") end
    os.execute("rm -rf '" .. out .. "'")
    assert(ok, metrics)
    est_rec:evaluate()
    net:evaluate()
    local function scores(s)
      local H, Y = recorder:record_set(s.x)
      local wrong = {}
      for i, hit in ipairs(Y:argmax(2):eq(s.y):totable()) do wrong[i] = hit ~= 1 end
      return {I.estimate(est_rec, H):totable(), S.negated(I.baseline_scores(net, s.x))}, wrong
    end
    local f_val, wrong_val = scores(val)
    local f_test, wrong_test = scores(test)
    local errors = 0
    for _, w in ipairs(wrong_val) do if w then errors = errors + 1 end end
    truthy(errors >= 10 and errors <= 80, "both outcomes on validation: " .. errors .. " errors")
    local model = S.fit_logistic(f_val, wrong_val)
    local r = S.evaluate(S.apply(model, f_test), wrong_test)
    near(metrics.auroc_correct_combined, r.auroc_correct, 1e-9, "test AUROC")
    near(metrics.aupr_error_combined, r.aupr_error, 1e-9, "test AUPR")
    same(metrics.combined_weights, model.weights, 1e-9)
    -- on validation, measured out of fold: not the in-sample fit
    local v = metrics.validation
    eq(type(v.auroc_correct_combined), "number")
    truthy(v.auroc_correct_combined ~= S.evaluate(S.apply(model, f_val), wrong_val).auroc_correct,
      "out of fold, not in sample")
  end)
end)

describe("baseline scores", function()
  -- a linear layer whose logits are the input itself
  local function identity_linear(n)
    local l = nn.Linear(n, n)
    lm.no_grad(function()
      l.weight:copy_(lm.zeros(n, n) + lm.tensor{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}); l.bias:zero_()
    end)
    return l
  end
  local x = lm.tensor{{20, 30, 5}, {25, 10, 0}, {-3, 1, 0.5}}

  it("rank saturated sigmoid outputs by their logits, without ties", function()
    local net = nn.Sequential(identity_linear(3), nn.Sigmoid())
    local top = lm.no_grad(function() return net(x) end):max(2):totable()
    eq(top[1], 1.0, "sigmoid(30) is 1.0 in float32")
    eq(top[1], top[2], "so max-sigmoid ties the first two rows")
    net:train()
    local scores, kind = I.baseline_scores(net, x, {batch = 2})
    eq(kind, "max_logit")
    same(scores, {30, 25, 1}, 1e-6)
    eq(net.training, true, "the training mode is restored")
  end)

  it("take max-softmax in double from the logits, and the largest output otherwise", function()
    local net = nn.Sequential(identity_linear(3), nn.Softmax(2))
    local scores, kind = I.baseline_scores(net, x)
    eq(kind, "max_softmax")
    local function p(row, top)
      local z = 0
      for _, v in ipairs(row) do z = z + math.exp(v - top) end
      return 1 / z
    end
    -- the log of the top probability (p rounds to 1 when the others are far below)
    near(scores[1], math.log(p({20, 30, 5}, 30)), 1e-12)
    near(scores[2], math.log(p({25, 10, 0}, 25)), 1e-12)
    truthy(scores[1] < scores[2] and scores[2] < 0, "no ties at log 1 (a margin of 15 beats one of 10)")
    -- margins of 40 and 50: both probabilities are 1.0 in double, their logs differ
    local far = I.baseline_scores(net, lm.tensor{{40, 0, 0}, {50, 0, 0}})
    truthy(far[1] < far[2], "margins of 40 and 50 do not tie: " .. far[1] .. ", " .. far[2])
    local plain, k2 = I.baseline_scores(identity_linear(3), x)
    eq(k2, "max_output")
    same(plain, {30, 25, 1}, 1e-6)
  end)

  it("give an empty list for an empty set", function()
    for _, last in ipairs({nn.Sigmoid(), nn.Softmax(2)}) do
      local scores, kind = I.baseline_scores(nn.Sequential(nn.Linear(3, 4), last), lm.zeros(0, 3))
      same(scores, {}, 0, kind)
    end
    same((I.baseline_scores(nn.Linear(3, 4), lm.zeros(0, 3))), {}, 0, "max_output")
    local S = require 'lumen.introspect.scores'
    eq(S.logits(nn.Sequential(nn.Linear(3, 4), nn.Sigmoid()), lm.zeros(0, 3)):shape_string(), "0x4")
  end)
end)
