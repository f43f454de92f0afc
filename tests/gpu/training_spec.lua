-- Whole training steps on both devices: with one seed the dropout masks, the
-- weights and the batches are the same, so the losses must agree to the
-- GEMM tolerance (1e-4 relative) step after step. Skips without a GPU
-- (LUMEN_GPU_DRY_RUN=1: a smoke run with 'cpu' standing in; it checks that
-- the spec's code runs, not the GPU).
local lm = require 'lumen'
local F = lm.nn.functional

local DEV, DRY = dofile("tests/helpers/gpu_device.lua")("training_spec", skip)

local function losses(make_model, make_batch, loss, device, steps)
  lm.manual_seed(11)
  local net = make_model()
  net:to(device)
  local opt = lm.optim.Adam(net:parameters(), {lr = 1e-3})
  local out = {}
  for i = 1, steps do
    local x, y = make_batch(i)
    opt:zero_grad()
    local l = loss(net(x:to(device)), y:to(device))
    l:backward()
    opt:step()
    out[i] = l:item()
  end
  return out
end

local function agree(gpu, cpu, tol, what)
  for i = 1, #cpu do
    local e = math.abs(gpu[i] - cpu[i]) / math.max(math.abs(cpu[i]), 1e-6)
    truthy(e <= tol, string.format("%s step %d: loss %.7g on the GPU, %.7g on the CPU", what, i, gpu[i], cpu[i]))
  end
end

describe("gpu training", function()
  it("Net1 (dropout on) gives the CPU's losses for 5 steps", function()
    local batches = {}
    lm.manual_seed(1)
    for i = 1, 5 do
      batches[i] = {lm.rand(128, 784), lm.tensor((function()
        local t = {} for k = 1, 128 do t[k] = (k * 7 + i) % 10 + 1 end return t
      end)(), 'int32')}
    end
    local function batch(i) return batches[i][1], batches[i][2] end
    local mse = function(out, y) return F.mse(out, lm.data.one_hot(y, 10):float()) end
    local c = losses(function() return lm.models.net1() end, batch, mse, 'cpu', 5)
    local g = losses(function() return lm.models.net1() end, batch, mse, DEV, 5)
    agree(g, c, 1e-4, "Net1")
    truthy(c[5] < c[1], "the loss falls")
  end)
  it("a small Net2 gives the CPU's losses for 3 steps", function()
    local batches = {}
    lm.manual_seed(2)
    for i = 1, 3 do batches[i] = {lm.rand(8, 3, 32, 32), lm.tensor({1, 2, 3, 4, 5, 6, 7, 8}, 'int32')} end
    local function batch(i) return batches[i][1], batches[i][2] end
    local mse = function(out, y) return F.mse(out, lm.data.one_hot(y, 10):float()) end
    local make = function() return lm.models.net2{width = 0.25} end
    local c = losses(make, batch, mse, 'cpu', 3)
    local g = losses(make, batch, mse, DEV, 3)
    agree(g, c, 1e-4, "Net2")
  end)
  -- What a captured CUDA graph will need, and what keeps cudaMalloc (which
  -- waits for the device) out of the loop today: once warm, a step takes
  -- every block from the allocator's cache. Counted on the DRY run's CPU
  -- allocator as well, which caches the same way.
  it("a warm Net1 step (dropout, Adam) takes every device block from the cache", function()
    local stats = DRY and lm.memory_stats or lm.cuda.memory_stats
    lm.manual_seed(6)
    local net = lm.models.net1():to(DEV)
    local opt = lm.optim.Adam(net:parameters(), {lr = 1e-3})
    local x = lm.rand(128, 784):to(DEV)
    local y = lm.data.one_hot(lm.tensor((function()
      local t = {} for k = 1, 128 do t[k] = k % 10 + 1 end return t end)(), 'int32'), 10):float():to(DEV)
    local seen = {}
    local function step(i)
      opt:zero_grad()
      local l = F.mse(net(x), y)
      l:backward()
      opt:step()
      seen[i] = l:detach() -- read at the end, as lm.train does between reads
      collectgarbage()
    end
    for i = 1, 3 do step(i) end
    local before = stats()
    for i = 4, 8 do step(i) end
    local after = stats()
    truthy(after.allocations - before.allocations > 50, "the steps allocate (" ..
      (after.allocations - before.allocations) .. " blocks)")
    -- (a sanitizer build's CPU allocator caches nothing, so that ASan sees
    -- every free: its smoke run has no cache to count)
    if not (DRY and os.getenv("LUMEN_SANITIZED") == "1") then
      eq(after.allocations - after.cache_hits, before.allocations - before.cache_hits,
        "blocks not found in the cache during warm steps")
    end
    truthy(seen[8]:item() < seen[1]:item(), "the loss falls")
  end)
  it("lm.train moves batches to the model's device", function()
    lm.manual_seed(3)
    local x = lm.rand(256, 20)
    local y = (x:narrow(2, 1, 1):gt(0.5):int() + 1):view(256)
    local net = lm.nn.Sequential(lm.nn.Linear(20, 32), lm.nn.ELU(), lm.nn.Linear(32, 2), lm.nn.Sigmoid())
    net:to(DEV)
    local history = lm.train{model = net, optimizer = lm.optim.Adam(net:parameters(), {lr = 1e-2}),
      train = {x = x, y = y}, val = {x = x, y = y}, epochs = 5, batch_size = 32, quiet = true}
    eq(lm.train.device_of(net), DEV)
    truthy(history[#history].val_accuracy > 0.9, "learns the rule on " .. DEV)
  end)
end)

describe("gpu checkpoints", function()
  it("a GPU model saves, loads into a CPU model and back, and copy_ crosses devices", function()
    lm.manual_seed(4)
    local net = lm.nn.Sequential(lm.nn.Linear(5, 3), lm.nn.ELU())
    local x = lm.randn(4, 5)
    local ref = net(x)
    net:to(DEV)
    local path = os.tmpname()
    net:save(path)
    local cpu_net = lm.nn.Sequential(lm.nn.Linear(5, 3), lm.nn.ELU())
    cpu_net:load(path)
    eq((cpu_net(x) - ref):abs():max():item(), 0)
    local gpu_net = lm.nn.Sequential(lm.nn.Linear(5, 3), lm.nn.ELU()):to(DEV)
    gpu_net:load(path)
    truthy((gpu_net(x:to(DEV)):to('cpu') - ref):abs():max():item() < 1e-5)
    os.remove(path)
    local d = lm.zeros(3, DEV)
    d:copy_(lm.tensor({1, 2, 3}))
    eq(d:to('cpu'):totable()[3], 3)
  end)

  it("x:to(device) passes the gradient back to x's device, as torch's .to", function()
    local x = lm.tensor({1, 2, 3}):requires_grad(true)
    local y = x:to(DEV)
    eq(y:requires_grad(), true)
    ;(y * y):sum():backward()
    same(x.grad:totable(), {2, 4, 6}, 0)
    eq(x.grad:device(), "cpu")
    lm.no_grad(function() eq(x:to(DEV):requires_grad(), DEV == "cpu", "no record under no_grad") end)
    if DEV ~= "cpu" then
      raises(function() lm.cat({x:detach(), x:to(DEV)}, 1) end, "cat: tensor 2 is on cuda, tensor 1 on cpu")
    end
  end)

  it("net:to keeps each parameter the same tensor: an optimiser made before the move trains it", function()
    -- one step on the CPU, the move, then steps on the device: as a model
    -- moved before the optimiser was made (torch's module.to keeps them too)
    local function run(move_first)
      lm.manual_seed(5)
      local net = lm.nn.Sequential(lm.nn.Linear(4, 8), lm.nn.ELU(), lm.nn.Linear(8, 2))
      local x, y = lm.randn(16, 4), lm.randn(16, 2)
      if move_first then net:to(DEV) end
      local p1 = net:parameters()[1]
      local opt = lm.optim.Adam(net:parameters(), {lr = 0.05})
      for i = 1, 4 do
        if i == 2 and not move_first then
          F.mse(net(x), y):backward() -- a gradient to carry over
          net:to(DEV)
          eq(net:parameters()[1], p1, "the same Lua tensor")
          eq(p1:device(), DEV)
          eq(p1.grad:device(), DEV, "its gradient moved along")
          opt:zero_grad()
        end
        local dev = p1:device()
        opt:zero_grad()
        F.mse(net(x:to(dev)), y:to(dev)):backward()
        opt:step()
      end
      return net:parameters()[3]:to('cpu'):totable()
    end
    local moved, first = run(false), run(true)
    same(moved, first, 1e-5, "Adam's state followed its parameters")
    -- a refused move (a uint8 buffer cannot live on a GPU) changes nothing
    local M = lm.nn.Module:extend("WithMask")
    function M:init() self:buffer("mask", lm.zeros({4}, "uint8")) end
    function M:forward(x) return x end
    local net = lm.nn.Sequential(lm.nn.Linear(3, 4), M())
    if DEV ~= "cpu" then
      raises(function() net:to(DEV) end, "to: ")
      eq(net:parameters()[1]:device(), "cpu", "nothing moved")
    end
  end)
end)
