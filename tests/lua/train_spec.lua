-- lm.train: determinism, resuming, checkpoints, metrics files and NaN guard,
-- on a small synthetic problem (two Gaussian blobs).
local lm = require 'lumen'
local nn = lm.nn

local function blobs(n, seed)
  lm.manual_seed(seed)
  local y = lm.bernoulli(0.5, n):int() + 1
  local centers = (y:float() * 2 - 3):view(n, 1) -- -1 or +1
  local x = lm.randn(n, 4) * 0.8 + centers
  return {x = x, y = y}
end

local function fresh_dir()
  local d = os.tmpname()
  os.remove(d)
  return d
end

local function setup(seed)
  lm.manual_seed(seed)
  local net = nn.Sequential(nn.Linear(4, 16), nn.ELU(), nn.Dropout(0.1), nn.Linear(16, 2), nn.Sigmoid())
  local opt = lm.optim.Adam(net:parameters(), {lr = 0.01})
  return net, opt
end

local train_set, val_set = blobs(512, 1), blobs(128, 2)

local function losses(history)
  local out = {}
  for i, h in ipairs(history) do out[i] = h.train_loss end
  return out
end

describe("lm.train", function()
  it("gives the same loss curve bit for bit for the same seed and threads", function()
    local net, opt = setup(7)
    local h1 = lm.train{model = net, optimizer = opt, train = train_set, val = val_set, epochs = 3,
      batch_size = 32, seed = 7, quiet = true}
    local net2, opt2 = setup(7)
    local h2 = lm.train{model = net2, optimizer = opt2, train = train_set, val = val_set, epochs = 3,
      batch_size = 32, seed = 7, quiet = true}
    same(losses(h2), losses(h1)) -- exact equality
    same(net2[1].weight:totable(), net[1].weight:totable())
    truthy(h1[3].val_accuracy > 0.9, "learns the blobs: " .. h1[3].val_accuracy)
    eq(#h1[3].val_per_class, 2)
    eq(h1[3].val_confusion[1][1] + h1[3].val_confusion[1][2] + h1[3].val_confusion[2][1]
      + h1[3].val_confusion[2][2], 128)
  end)

  it("resumes from its checkpoint to the same result as an uninterrupted run", function()
    local dir_a, dir_b = fresh_dir(), fresh_dir()
    local net_a, opt_a = setup(3)
    local clr_a = lm.optim.CyclicLR(opt_a, {min = 1e-3, max = 1e-2, period = 16})
    local ha = lm.train{model = net_a, optimizer = opt_a, schedule = clr_a, cycles = 4, train = train_set,
      val = val_set, batch_size = 32, seed = 3, out = dir_a, quiet = true}
    -- the same run stopped after 2 cycles, then continued by a new process-like setup
    local net_b, opt_b = setup(3)
    local clr_b = lm.optim.CyclicLR(opt_b, {min = 1e-3, max = 1e-2, period = 16})
    lm.train{model = net_b, optimizer = opt_b, schedule = clr_b, cycles = 2, train = train_set,
      val = val_set, batch_size = 32, seed = 3, out = dir_b, quiet = true}
    local net_c, opt_c = setup(99) -- different initial weights: all must come from the checkpoint
    local clr_c = lm.optim.CyclicLR(opt_c, {min = 1e-3, max = 1e-2, period = 16})
    local hc = lm.train{model = net_c, optimizer = opt_c, schedule = clr_c, cycles = 4, train = train_set,
      val = val_set, batch_size = 32, seed = 3, out = dir_b, resume = true, quiet = true}
    same(losses(hc), losses(ha))
    same(net_c[4].weight:totable(), net_a[4].weight:totable())
    -- another global batch counts its steps otherwise: refused, naming both
    local net_d, opt_d = setup(99)
    local clr_d = lm.optim.CyclicLR(opt_d, {min = 1e-3, max = 1e-2, period = 16})
    raises(function()
      lm.train{model = net_d, optimizer = opt_d, schedule = clr_d, cycles = 6, train = train_set,
        val = val_set, batch_size = 16, seed = 3, out = dir_b, resume = true, quiet = true}
    end, "was written with global batches of 32 samples (batch_size x processes), this run's are 16")
    -- files of a run
    for _, f in ipairs{"checkpoint.safetensors", "metrics.json", "learning_curve.png"} do
      local fh = io.open(dir_a .. "/" .. f, "rb")
      truthy(fh, f .. " written")
      if fh then fh:close() end
    end
    local metrics = lm.json.decode(io.open(dir_a .. "/metrics.json"):read("a"))
    eq(#metrics.history, 4)
    os.execute("rm -rf " .. dir_a .. " " .. dir_b)
  end)

  it("resumes a StepLR schedule at the rate of every iteration of an uninterrupted run", function()
    local dir_a, dir_b = fresh_dir(), fresh_dir()
    -- the rate of every training step (the loss is computed before the step that uses the rate)
    local function run(seed, epochs, dir, resume)
      local net, opt = setup(seed)
      -- 16 iterations an epoch: the rate halves every 5 iterations, across epochs and the resume
      local sched = lm.optim.StepLR(opt, {step_size = 5, gamma = 0.5})
      local lrs = {}
      local function loss(out, y)
        lrs[#lrs + 1] = opt:lr()
        return lm.nn.functional.mse(out, lm.data.one_hot(y, 2):float())
      end
      local h = lm.train{model = net, optimizer = opt, schedule = sched, epochs = epochs, train = train_set,
        batch_size = 32, seed = 3, loss = loss, out = dir, resume = resume, quiet = true}
      return lrs, h, net, sched
    end
    local lrs_a, ha, net_a, sched_a = run(3, 4, dir_a)
    eq(#lrs_a, 64)
    for i, lr in ipairs(lrs_a) do eq(lr, 0.01 * 0.5 ^ ((i - 1) // 5), "iteration " .. (i - 1)) end
    local lrs_b = run(3, 2, dir_b)
    local lrs_c, hc, net_c, sched_c = run(99, 4, dir_b, true) -- other weights: all from the checkpoint
    eq(#lrs_b, 32)
    eq(#lrs_c, 32)
    table.move(lrs_c, 1, #lrs_c, #lrs_b + 1, lrs_b)
    same(lrs_b, lrs_a)
    eq(sched_c.iteration, sched_a.iteration)
    same(losses(hc), losses(ha))
    same(net_c[4].weight:totable(), net_a[4].weight:totable())
    os.execute("rm -rf " .. dir_a .. " " .. dir_b)
  end)

  it("stops on a NaN loss with a clear error and keeps the last checkpoint", function()
    local dir = fresh_dir()
    local net, opt = setup(1)
    local calls = 0
    local function loss(out, y)
      calls = calls + 1
      local l = lm.nn.functional.mse(out, lm.data.one_hot(y, 2):float())
      if calls > 20 then return l * (0 / 0) end
      return l
    end
    lm.train{model = net, optimizer = opt, train = train_set, epochs = 1, batch_size = 32, loss = loss,
      out = dir, quiet = true}
    local ckpt = io.open(dir .. "/checkpoint.safetensors", "rb"):read("a")
    local net2, opt2 = setup(1)
    raises(function()
      lm.train{model = net2, optimizer = opt2, train = train_set, epochs = 3, batch_size = 32, loss = loss,
        out = dir, resume = true, quiet = true}
    end, "the loss became nan")
    eq(io.open(dir .. "/checkpoint.safetensors", "rb"):read("a"), ckpt, "checkpoint untouched")
    os.execute("rm -rf " .. dir)
  end)

  it("stops when a NaN gradient under a finite loss leaves the validation loss NaN, before the checkpoint", function()
    local dir = fresh_dir()
    local net, opt = setup(1)
    lm.train{model = net, optimizer = opt, train = train_set, val = val_set, epochs = 1, batch_size = 32,
      out = dir, quiet = true}
    local ckpt = io.open(dir .. "/checkpoint.safetensors", "rb"):read("a")
    -- the last step of epoch 2 adds sqrt(0) (finite) whose gradient is NaN: the weights become NaN
    local calls = 0
    local function loss(out, y)
      calls = calls + 1
      local l = lm.nn.functional.mse(out, lm.data.one_hot(y, 2):float())
      if calls == 16 then l = l + (out * 0):pow(2):sum():sqrt() end
      return l
    end
    local err = raises(function()
      lm.train{model = net, optimizer = opt, train = train_set, val = val_set, epochs = 3, batch_size = 32,
        loss = loss, out = dir, resume = true, quiet = true}
    end, "the validation loss became nan at iteration 32; stopping (the last checkpoint is kept; 4 parameter tensors")
    truthy(err:find("a gradient was not finite", 1, true), err)
    eq(io.open(dir .. "/checkpoint.safetensors", "rb"):read("a"), ckpt, "checkpoint untouched")
    os.execute("rm -rf " .. dir)
  end)

  it("refuses options it does not know, early stopping without val and an empty val, before training", function()
    local net, opt = setup(1)
    raises(function() lm.train{model = net, optimizer = opt, train = train_set, epoch = 2, quiet = true} end,
      "lm.train: unknown option 'epoch'; did you mean epochs? (known: ")
    raises(function() lm.train{model = net, optimizer = opt, train = train_set, shuffle = false, quiet = true} end,
      "lm.train: unknown option 'shuffle' (known: autocast, batch_size, classes, clip, cycles")
    raises(function() lm.train{model = net, optimizer = opt, train = train_set, early_stopping = true} end,
      "lm.train: early_stopping watches the validation loss: it needs val (a data set)")
    raises(function()
      lm.train{model = net, optimizer = opt, train = train_set, val = lm.data.head(val_set, 0), quiet = true}
    end, "lm.train: val has no samples")
    eq(opt.settings.step, 0, "nothing trained")
  end)

  it("ends each epoch with the partial batch when drop_last = false", function()
    local net, opt = setup(1)
    local set = lm.data.head(train_set, 100)
    local h = lm.train{model = net, optimizer = opt, train = set, epochs = 2, batch_size = 32, quiet = true}
    eq(h[2].iteration, 6)
    net, opt = setup(1)
    h = lm.train{model = net, optimizer = opt, train = set, epochs = 2, batch_size = 32, drop_last = false,
      quiet = true}
    eq(h[2].iteration, 8)
    eq(opt.settings.step, 8)
  end)

  it("reads the loss back every read_every steps, and still names the iteration of a NaN", function()
    local dir = fresh_dir()
    -- the same run read every step and every 5 steps: the same history
    local net_a, opt_a = setup(1)
    local ha = lm.train{model = net_a, optimizer = opt_a, train = train_set, val = val_set, epochs = 2,
      batch_size = 32, quiet = true}
    local net_b, opt_b = setup(1)
    local hb = lm.train{model = net_b, optimizer = opt_b, train = train_set, val = val_set, epochs = 2,
      batch_size = 32, quiet = true, read_every = 5}
    same(losses(hb), losses(ha))
    eq(hb[2].train_accuracy, ha[2].train_accuracy)
    -- a loss of shape [1] read in a batch of them
    local net_s, opt_s = setup(1)
    local function loss1(out, y) return lm.nn.functional.mse(out, lm.data.one_hot(y, 2):float()):view(1) end
    local hs = lm.train{model = net_s, optimizer = opt_s, train = train_set, epochs = 1, batch_size = 32, quiet = true,
      read_every = 5, loss = loss1}
    same(losses(hs), {ha[1].train_loss}, 1e-6 * ha[1].train_loss)
    -- a NaN at call 11, read with steps 9-13 at step 13: the error names 11
    -- and the two steps applied after it; the first epoch's checkpoint (8
    -- steps) stays finite
    local calls = 0
    local function loss(out, y)
      calls = calls + 1
      local l = lm.nn.functional.mse(out, lm.data.one_hot(y, 2):float())
      if calls == 11 then return l * (0 / 0) end
      return l
    end
    local net_c, opt_c = setup(1)
    local per_epoch = #lm.data.loader(train_set, {batch_size = 64})
    eq(per_epoch, 8, "the NaN falls in the second epoch")
    raises(function()
      lm.train{model = net_c, optimizer = opt_c, train = train_set, epochs = 3, batch_size = 64, loss = loss,
        out = dir, quiet = true, read_every = 5}
    end, "train: the loss became nan at iteration 11; stopping (the last checkpoint is kept; the model in memory "
      .. "took 2 more steps)")
    local saved = lm.load(dir .. "/checkpoint.safetensors")
    local weights = 0
    for name, t in pairs(saved) do
      if t:dtype() == "float32" and t:numel() > 0 then
        weights = weights + 1
        local m = t:abs():max():item()
        truthy(m == m and m < math.huge, name .. " is finite in the checkpoint")
      end
    end
    truthy(weights > 0, "the checkpoint holds weights")
    raises(function() lm.train{model = net_c, optimizer = opt_c, train = train_set, read_every = 0} end,
      "train: read_every must be a positive integer (steps between reads of the loss), got 0")
    raises(function() lm.train{model = net_c, optimizer = opt_c, train = train_set, graph = true} end,
      "train: graph = true captures CUDA graphs: it needs the model on a GPU, not on cpu")
    raises(function() lm.train{model = net_c, optimizer = opt_c, train = train_set, graph = 1} end,
      "train: graph must be true or false, got 1")
    os.execute("rm -rf " .. dir)
  end)

  it("stops at a loss of -inf before the step that would apply it", function()
    local net, opt = setup(1)
    local calls, before = 0, nil
    local function loss(out, y)
      calls = calls + 1
      local l = lm.nn.functional.mse(out, lm.data.one_hot(y, 2):float())
      if calls == 3 then
        before = {}
        for i, p in ipairs(net:parameters()) do before[i] = p:clone() end
        return l * (-1 / 0)
      end
      return l
    end
    raises(function()
      lm.train{model = net, optimizer = opt, train = train_set, epochs = 1, batch_size = 32, loss = loss, quiet = true}
    end, "train: the loss became -inf at iteration 3; stopping (the last checkpoint is kept)")
    for i, p in ipairs(net:parameters()) do same(p:totable(), before[i]:totable(), 0, "parameter " .. i) end
  end)

  it("evaluates in evaluation mode and gives each module its own mode back, also after an error", function()
    local net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ELU(), nn.Linear(8, 2), nn.Sigmoid())
    net:train()
    net[2]:evaluate() -- a frozen batch norm while fine-tuning
    local modes = {}
    local probe = net[4]:register_forward_hook(function(m) modes[#modes + 1] = m.training end)
    lm.evaluate(net, val_set)
    probe.remove()
    truthy(#modes > 0 and not modes[1], "the model ran in evaluation mode")
    eq(net.training, true)
    eq(net[2].training, false, "the frozen batch norm stays in evaluation mode")
    eq(net[4].training, true)
    raises(function() lm.evaluate(net, {x = lm.randn(6, 3), y = lm.ones(6, "int32")}) end, "input has 3 features")
    eq(net[4].training, true, "modes put back after a failure")
    eq(net[2].training, false)
  end)

  it("evaluates accuracy, per-class accuracy and the confusion matrix", function()
    local Fixed = nn.Module:extend("Fixed")
    function Fixed:forward(x) return x end
    local set = {x = lm.tensor{{0.9, 0.1}, {0.2, 0.8}, {0.7, 0.3}}, y = lm.tensor({1, 2, 2}, 'int32')}
    local r = lm.evaluate(Fixed(), set)
    near(r.accuracy, 2 / 3, 1e-12)
    same(r.per_class, {1, 0.5}, 1e-12)
    same(r.confusion, {{1, 0}, {1, 1}})
    local model = Fixed()
    raises(function() lm.evaluate(model, {x = lm.zeros(0, 2), y = lm.zeros(0):int()}) end, "evaluate: the set is empty")
    -- a label the model has no output for, with a loss that does not check it
    local sum_loss = {loss = function(o) return o:sum() end}
    raises(function() lm.evaluate(model, {x = set.x, y = lm.tensor({1, 3, 2}, 'int32')}, sum_loss) end,
      "lm.evaluate: label 3 (sample 2) out of range for the model's 2 classes")
    raises(function() lm.evaluate(model, {x = set.x, y = lm.tensor({0, 1, 2}, 'int32')}, sum_loss) end,
      "lm.evaluate: label 0 (sample 1) out of range")
    eq(model.training, true, "left in training mode")
  end)

  it("runs the model under autocast, and the batches through the transform", function()
    local net, opt = setup(7)
    local modes, shifted = {}, 0
    local Probe = nn.Module:extend("Probe")
    function Probe:forward(x)
      modes[lm.get_autocast() or "float32"] = (modes[lm.get_autocast() or "float32"] or 0) + 1
      return net(x)
    end
    local probe = Probe()
    probe.net = net -- its parameters are the probe's
    local function shift(x) shifted = shifted + x:size(1); return x + 100 end
    local h = lm.train{model = probe, optimizer = opt, train = train_set, val = val_set, epochs = 1,
      batch_size = 32, seed = 7, quiet = true, autocast = "bfloat16", transform = shift}
    eq(modes.float32, nil, "no forward pass outside autocast")
    eq(modes.bfloat16, 16 + 1, "16 training batches and one validation pass")
    eq(shifted, 512, "every training image went through the transform")
    eq(lm.get_autocast(), nil, "restored")
    truthy(h[1].train_loss > 0.3, "trained on the shifted inputs (far from the blobs): " .. h[1].train_loss)
    raises(function()
      lm.train{model = net, optimizer = opt, train = train_set, epochs = 1, quiet = true, autocast = "half"}
    end, "autocast: no products in 'half'")
    modes = {}
    eq(lm.evaluate(probe, val_set, {autocast = "bfloat16"}).n, 128)
    same(modes, {bfloat16 = 1})
    probe:train()
    raises(function() lm.evaluate(probe, val_set, {autocast = "fp16"}) end, "evaluate: autocast: no products in 'fp16'")
    eq(probe.training, true, "a refused precision leaves the model's mode alone")
    -- the state's mode: taken when absent, overridden by 'float32'
    modes = {}
    local ok, failure = pcall(function()
      lm.autocast("bfloat16")
      lm.evaluate(probe, val_set)
      lm.evaluate(probe, val_set, {autocast = "float32"})
    end)
    lm.autocast(false)
    truthy(ok, failure)
    same(modes, {bfloat16 = 1, float32 = 1})
  end)

  it("resumes only in the precision its checkpoint was trained in", function()
    local dir = fresh_dir()
    local function run(cast, epochs)
      local net, opt = setup(3)
      return lm.train{model = net, optimizer = opt, train = train_set, epochs = epochs, batch_size = 64, seed = 3,
        quiet = true, out = dir, resume = true, autocast = cast}
    end
    eq(#run("bfloat16", 1), 1)
    local err = raises(function() run(nil, 2) end, "was trained with bfloat16 products, this run asks for float32")
    truthy(err:find(dir .. "/checkpoint.safetensors", 1, true), err)
    eq(#run("bf16", 2), 2, "the same precision by its other name resumes")
    -- a state-wide mode is the run's precision, and recorded as such
    local ok, failure = pcall(function()
      lm.autocast("bfloat16")
      eq(#run(nil, 3), 3, "absent: the state's bfloat16, which the checkpoint holds")
    end)
    lm.autocast(false)
    truthy(ok, failure)
    raises(function() run("float32", 4) end, "was trained with bfloat16 products, this run asks for float32")
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("refuses a checkpoint whose optimiser state does not fit before changing the model or the optimiser", function()
    -- the model's weights were loaded first, then the optimiser's state refused
    local dir = fresh_dir()
    local at -- where run calls lm.train: its errors are reported there
    local function run(net, opt)
      at = "train_spec.lua:" .. debug.getinfo(1, "l").currentline + 1 .. ": "
      local history = lm.train{model = net, optimizer = opt, train = train_set, epochs = 2, batch_size = 64,
        seed = 3, quiet = true, out = dir, resume = true}
      return history
    end
    local net0, opt0 = setup(3)
    eq(#lm.train{model = net0, optimizer = opt0, train = train_set, epochs = 1, batch_size = 64, seed = 3,
      quiet = true, out = dir}, 1)
    local path = dir .. "/checkpoint.safetensors"
    local net = setup(4)
    local before = net[1].weight:clone()
    local sgd = lm.optim.SGD(net:parameters(), {lr = 0.1, momentum = 0.9})
    local err = raises(function() run(net, sgd) end, "resume: the optimiser's state in '" .. path .. "' does not "
      .. "fit this optimiser: the state is of an adam optimiser, this one is sgd")
    truthy(err:find(at, 1, true), err)
    same(net[1].weight:totable(), before:totable(), 0, "the model keeps its weights")
    eq(sgd.state[1][1]:abs():sum():item(), 0, "the optimiser keeps its state")
    -- a checkpoint missing one of Adam's tensors
    local t, meta = lm.load(path)
    t["optim.state.1.2"] = nil
    lm.save(path, t, {metadata = meta})
    local adam = lm.optim.Adam(net:parameters(), {lr = 0.01})
    err = raises(function() run(net, adam) end, "resume: the optimiser's state in '" .. path .. "' does not fit "
      .. "this optimiser: state 'state.1.2' (parameter 1) is missing")
    truthy(err:find(at, 1, true), err)
    same(net[1].weight:totable(), before:totable(), 0, "the model keeps its weights")
    eq(adam.state[1][1]:abs():sum():item(), 0, "the optimiser keeps its state")
    -- a model state that does not fit: reported at the caller's line too, the optimiser untouched
    t["optim.state.1.2"] = lm.zeros(16, 4)
    local name = next(t)
    while not name:match("^model%.") do name = next(t, name) end
    t[name] = nil
    lm.save(path, t, {metadata = meta})
    err = raises(function() run(net, adam) end, "resume: '" .. path .. "' does not fit this nn.Sequential:")
    truthy(err:find(at, 1, true), err)
    eq(adam.state[1][1]:abs():sum():item(), 0, "the optimiser keeps its state")
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("resumes only the run its checkpoint holds: the same loader seed, set size and last-batch rule", function()
    local dir = fresh_dir()
    local function run(epochs, opts)
      local net, opt = setup(3)
      local o = {model = net, optimizer = opt, train = train_set, epochs = epochs, batch_size = 64, seed = 3,
        quiet = true, out = dir, resume = true}
      for k, v in pairs(opts or {}) do o[k] = v end
      return lm.train(o)
    end
    eq(#run(1), 1)
    local before = io.open(dir .. "/checkpoint.safetensors", "rb"):read("a")
    raises(function() run(2, {seed = 4}) end, "was trained with the loader's seed 3, this run has 4")
    raises(function() run(2, {train = lm.data.head(train_set, 500)}) end,
      "was trained with the training set's samples 512, this run has 500")
    raises(function() run(2, {drop_last = false}) end, "was trained with drop_last true, this run has false")
    eq(io.open(dir .. "/checkpoint.safetensors", "rb"):read("a"), before, "the checkpoint untouched")
    eq(#run(2), 2, "the same run resumes")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

-- Early stopping as the experiments use it (cycles of a CyclicLR, patience,
-- out, resume). The validation set is the blobs' validation set plus 48 of
-- its points with flipped labels: the validation loss falls for 3 cycles,
-- then rises as the model grows confident (0.2273 0.2154 0.2120 0.2134 0.2175
-- 0.2224 ...), so with patience 3 the run stops after cycle 6 and keeps the
-- weights of cycle 3.
describe("lm.train early stopping", function()
  local base = blobs(128, 2)
  local mixed = {x = lm.cat({base.x, base.x:narrow(1, 1, 48)}, 1),
    y = lm.cat({base.y, 3 - base.y:narrow(1, 1, 48)}, 1)}
  local PERIOD, BEST, STOP = 16, 3, 6

  local function es_run(o)
    local net, opt = setup(o.init or 5)
    local clr = lm.optim.CyclicLR(opt, {min = 1e-4, max = 3e-3, period = PERIOD})
    local snapshots = {}
    local h, run = lm.train{model = net, optimizer = opt, schedule = clr, cycles = o.cycles or 16,
      train = train_set, val = mixed, batch_size = 32, seed = 5, loss = "mse",
      early_stopping = {patience = 3}, out = o.out, resume = o.resume, quiet = true,
      on_validate = function(_, r)
        local sd = {}
        for name, t in pairs(r.model:state_dict()) do sd[name] = t:totable() end
        snapshots[#snapshots + 1] = sd
      end}
    return h, run, net, snapshots
  end

  local function state_of(net)
    local sd = {}
    for name, t in pairs(net:state_dict()) do sd[name] = t:totable() end
    return sd
  end

  local function val_losses(history)
    local out = {}
    for i, r in ipairs(history) do out[i] = r.val_loss end
    return out
  end

  local function checkpoint_state(dir)
    local _, meta = lm.load(dir .. "/checkpoint.safetensors")
    return lm.json.decode(meta.state)
  end

  it("stops after `patience` validations without improvement, at the cycle known in advance", function()
    local h, run = es_run{}
    local v = val_losses(h)
    eq(#h, STOP, "validations before stopping (of 16 cycles)")
    eq(h[#h].iteration, STOP * PERIOD, "stopped at the end of cycle 6")
    -- the curve the problem is built for: down to cycle 3, then up
    for i = 2, BEST do truthy(v[i] < v[i - 1], "validation loss falls until cycle 3: " .. table.concat(v, " ")) end
    for i = BEST + 1, STOP do truthy(v[i] > v[i - 1], "and rises after it: " .. table.concat(v, " ")) end
    eq(run.stopper.best, v[BEST])
    eq(run.stopper.bad, 3)
  end)

  it("stops by epochs too: a validation set with every label flipped gets worse from the start", function()
    local net, opt = setup(5)
    local flipped = {x = base.x, y = 3 - base.y}
    local h = lm.train{model = net, optimizer = opt, train = train_set, val = flipped, epochs = 10,
      batch_size = 32, seed = 5, early_stopping = {patience = 2}, quiet = true}
    eq(#h, 3, "epochs run: the first is the best, then 2 worse ones")
    eq(h[3].epoch, 3)
    truthy(h[2].val_loss > h[1].val_loss and h[3].val_loss > h[2].val_loss, "rising validation loss")
  end)

  it("restores the weights of the best cycle, and best.safetensors holds them", function()
    local dir = fresh_dir()
    local h, _, net, snapshots = es_run{out = dir}
    eq(#snapshots, STOP)
    same(state_of(net), snapshots[BEST], 0, "restored weights")
    local differs = false
    for name, t in pairs(snapshots[STOP]) do
      if not pcall(same, t, snapshots[BEST][name]) then differs = true end
    end
    truthy(differs, "the last cycle's weights differ from the best ones")
    near(lm.evaluate(net, mixed).loss, h[BEST].val_loss, 1e-12, "validation loss of the restored model")
    local best = lm.load(dir .. "/best.safetensors")
    for name, t in pairs(best) do same(t:totable(), snapshots[BEST][name], 0, "best.safetensors " .. name) end
    os.execute("rm -rf " .. dir)
  end)

  it("keeps the stopper in the checkpoint; a resumed run continues the count and stops at the same cycle", function()
    local dir_a, dir_b = fresh_dir(), fresh_dir()
    local ha, _, net_a = es_run{out = dir_a}
    local sa = checkpoint_state(dir_a)
    truthy(sa.early_stopping, "checkpoint holds the stopper")
    eq(sa.early_stopping.best, ha[BEST].val_loss)
    eq(sa.early_stopping.bad, 3)
    -- the same run cut after cycle 5 (two validations without improvement)...
    es_run{out = dir_b, cycles = 5}
    local sb = checkpoint_state(dir_b)
    eq(sb.early_stopping.best, ha[BEST].val_loss)
    eq(sb.early_stopping.bad, 2)
    -- ...continued with other initial weights: everything must come from the files
    local hc, run_c, net_c = es_run{out = dir_b, resume = true, init = 99}
    eq(#hc, STOP, "stops after cycle 6, as the uninterrupted run")
    same(val_losses(hc), val_losses(ha))
    eq(run_c.stopper.bad, 3)
    same(state_of(net_c), state_of(net_a), 0, "the best weights, from best.safetensors")
    -- resuming a run that has stopped early trains no further
    local hd, _, net_d = es_run{out = dir_a, resume = true, init = 99}
    eq(#hd, STOP, "no validation added to a finished run")
    same(state_of(net_d), state_of(net_a), 0, "the best weights")
    eq(checkpoint_state(dir_a).iteration, STOP * PERIOD)
    os.execute("rm -rf " .. dir_a .. " " .. dir_b)
  end)

  it("an interruption mid-cycle does not count as a validation without improvement", function()
    local dir_a, dir_b = fresh_dir(), fresh_dir()
    local ha, _, net_a = es_run{out = dir_a}
    -- Ctrl-C in cycle 5 (lm.train polls lm._interrupted() after each step)
    local polls, interrupted = 0, lm._interrupted
    lm._interrupted = function() polls = polls + 1 return polls == 4 * PERIOD + 5 end
    local ok, err = pcall(es_run, {out = dir_b})
    lm._interrupted = interrupted
    assert(ok, err)
    eq(checkpoint_state(dir_b).iteration, 4 * PERIOD + 5, "interrupted mid-cycle")
    local hc, _, net_c = es_run{out = dir_b, resume = true, init = 99}
    eq(hc[#hc].iteration, STOP * PERIOD, "stops after cycle 6, as the uninterrupted run")
    eq(hc[#hc].val_loss, ha[STOP].val_loss)
    same(state_of(net_c), state_of(net_a), 0, "the best weights")
    -- the history is the uninterrupted run's: no record for the cut stretch,
    -- and the resumed stretch's training loss over all of its steps
    eq(#hc, #ha)
    same(losses(hc), losses(ha), 1e-12)
    for k = 1, #ha do eq(hc[k].steps, ha[k].steps, "record " .. k .. "'s steps") end
    os.execute("rm -rf " .. dir_a .. " " .. dir_b)
  end)
end)

describe("lm.train's progress bar", function()
  -- the bar goes to stderr; a child process shows what a user sees
  local build = os.getenv("LUMEN_BUILD_DIR") or "build"
  local function bar_lines(settings)
    local script = [[
      local nn = lm.nn
      lm.manual_seed(1)
      local d = {x = lm.randn(64, 4), y = lm.bernoulli(0.5, 64):int() + 1}
      local net = nn.Sequential(nn.Linear(4, 2), nn.Sigmoid())
      local opt = lm.optim.Adam(net:parameters(), {lr = 0.01})
      local s = ]] .. settings .. [[

      s.model, s.optimizer, s.train, s.val, s.batch_size, s.tty = net, opt, d, d, 16, true
      if s.cycles then s.schedule = lm.optim.CyclicLR(opt, {min = 1e-3, max = 1e-2, period = 8}) end
      lm.train(s)]]
    local p = io.popen(string.format("'%s/lumen' -e '%s' 2>&1 >/dev/null", build, script:gsub("'", "'\\''")))
    local out = p:read("a")
    assert(p:close(), out)
    local titles = {}
    for title in out:gmatch("\27%[K(%a+ %d+/%d+) %[") do
      if titles[#titles] ~= title then titles[#titles + 1] = title end
    end
    return titles
  end

  it("names the epoch or the cycle and how many there are", function()
    same(bar_lines("{epochs = 3}"), {"epoch 1/3", "epoch 2/3", "epoch 3/3"})
    same(bar_lines("{cycles = 2}"), {"cycle 1/2", "cycle 2/2"})
  end)
end)
