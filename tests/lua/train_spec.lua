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

  it("evaluates accuracy, per-class accuracy and the confusion matrix", function()
    local Fixed = nn.Module:extend("Fixed")
    function Fixed:forward(x) return x end
    local set = {x = lm.tensor{{0.9, 0.1}, {0.2, 0.8}, {0.7, 0.3}}, y = lm.tensor({1, 2, 2}, 'int32')}
    local r = lm.evaluate(Fixed(), set)
    near(r.accuracy, 2 / 3, 1e-12)
    same(r.per_class, {1, 0.5}, 1e-12)
    same(r.confusion, {{1, 0}, {1, 1}})
  end)
end)
