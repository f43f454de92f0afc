-- Subnormal floats flushed to zero (lm.set_flush_denormal): on by default, in
-- the calling thread and in the pool's workers, off on request, and training
-- results unchanged by it.
local lm = require 'lumen'
local F = lm.nn.functional

local TINY = 1e-39 -- a float32 subnormal (the smallest normal is 1.18e-38)

-- a float32 tensor holding subnormals, made while flushing is off
local function subnormals(n)
  local was = lm.get_flush_denormal()
  lm.set_flush_denormal(false)
  local t = lm.full({n}, TINY)
  lm.set_flush_denormal(was)
  return t
end

describe("flush to zero", function()
  it("is on by default", function()
    eq(lm.get_flush_denormal(), true)
  end)

  it("reads subnormal inputs as zero and flushes subnormal results, in this thread", function()
    local x = subnormals(4)
    eq(lm.encode(x * 2, "float32"), string.rep("\0", 16), "subnormal inputs read as zero")
    eq(lm.encode(lm.full({3}, 1e-20) * 1e-20, "float32"), string.rep("\0", 12), "a subnormal result becomes zero")
    near((lm.full({3}, 1e-18) * 1e-19):sum():item(), 3e-37, 1e-42, "normal results are untouched")
  end)

  -- new threads inherit their creator's mode, so the workers are started
  -- first and the mode switched under them: each must pick up the change
  it("follows every switch in the pool's running worker threads", function()
    local old = lm.get_num_threads()
    lm.set_num_threads(2)
    lm.set_flush_denormal(false)
    local ok, err = pcall(function()
      local x = lm.full({1000000}, TINY) -- large enough to be split over the threads
      near((x * 2):min():item(), 2e-39, 1e-44, "workers started with subnormals kept")
      lm.set_flush_denormal(true)
      -- the bits, not :item(): reading a subnormal into a Lua number here would flush it too
      eq(lm.encode(x * 2, "float32") == string.rep("\0", 4 * 1000000), true, "every chunk flushed after switching on")
      lm.set_flush_denormal(false)
      local y = x * 2
      near(y:min():item(), 2e-39, 1e-44, "subnormal products kept after switching off")
      near(y:max():item(), 2e-39, 1e-44, "in every chunk")
      near((lm.full({3}, 1e-20) * 1e-20):sum():item(), 3e-40, 1e-44, "subnormal results kept")
    end)
    lm.set_flush_denormal(true)
    lm.set_num_threads(old)
    truthy(ok, err)
  end)

  it("set_flush_denormal says whether the processor has the mode, and checks its argument", function()
    eq(lm.set_flush_denormal(true), true) -- x86-64 and AArch64 both have it
    raises(function() lm.set_flush_denormal(1) end,
      "bad argument #1 to 'set_flush_denormal' (boolean expected, got number)")
    eq(lm.get_flush_denormal(), true)
  end)

  it("leaves training results unchanged (Net1 steps with and without flushing)", function()
    local function run(flush)
      lm.set_flush_denormal(flush)
      lm.manual_seed(5)
      local net = lm.models.net1()
      local opt = lm.optim.Adam(net:parameters(), {lr = 1e-3})
      local x = lm.rand(64, 784)
      local labels = {}
      for i = 1, 64 do labels[i] = (i - 1) % 10 + 1 end
      local y = lm.data.one_hot(lm.tensor(labels, 'int32'), 10):float()
      local losses = {}
      for i = 1, 5 do
        opt:zero_grad()
        local l = F.mse(net(x), y)
        l:backward()
        opt:step()
        losses[i] = l:item()
      end
      return losses, net(x):argmax(2):totable()
    end
    local l_on, p_on = run(true)
    local l_off, p_off = run(false)
    lm.set_flush_denormal(true)
    same(l_on, l_off, 1e-6)
    same(p_on, p_off)
  end)
end)
