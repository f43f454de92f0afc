-- Without a usable GPU every CUDA entry point is a Lua error that says why,
-- never a crash (with one, tests/gpu covers the backend).
local lm = require 'lumen'

describe("cuda when no GPU answers", function()
  if lm.cuda.available() then
    it("(a GPU answers: tests/gpu covers the backend)", function() skip("a GPU is present") end)
    return
  end
  local why = lm.cuda.status()
  it("says why it is not available", function()
    truthy(#why > 0, "a reason")
    eq(lm.cuda.available(), false)
  end)
  it("to('cuda'), creation on 'cuda' and device_name are errors naming the reason", function()
    raises(function() return lm.ones(3):to('cuda') end, "CUDA is not available: " .. why)
    raises(function() return lm.zeros(2, 2, 'cuda') end, "CUDA is not available")
    raises(function() return lm.rand(4, 'cuda') end, "CUDA is not available")
    raises(function() return lm.cuda.device_name() end, "CUDA is not available")
    raises(function() return lm.nn.Linear(2, 2):to('cuda') end, "CUDA is not available")
    raises(function() lm.cuda.synchronize() end, "CUDA is not available")
    raises(function() lm.cuda.graph(function() end) end, "cuda.graph: CUDA is not available: " .. why)
    eq(lm.cuda.capturing(), false)
  end)
  it("memory stats are empty and allow_tf32 keeps the setting", function()
    eq(lm.cuda.memory_stats().live_bytes, 0)
    eq(lm.cuda.allow_tf32(), false)
  end)
end)
