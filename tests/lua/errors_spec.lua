-- Wrong calls give Lua errors that say what was wrong, never a crash.
local lm = require 'lumen'

describe("argument errors", function()
  local x = lm.ones(2, 3)
  it("names the expected type", function()
    raises(function() x:add("a") end, "expected tensors or numbers")
    raises(function() lm.matmul(x, 3) end, "expected a tensor, got number")
    raises(function() x:view("a") end, nil)
    raises(function() lm.tensor(nil) end, "table expected")
    raises(function() lm.zeros(2, 'float64') end, "zeros: unknown dtype or device 'float64'")
    -- a device Lumen does not know is no "unknown dtype"
    raises(function() lm.zeros(3, 'float32', 'gpu') end,
      "zeros: unknown dtype or device 'gpu' (dtypes 'float32', 'int32', 'uint8'; devices 'cpu', 'cuda')")
    raises(function() lm.rand(3, 'gpu') end, "rand: unknown dtype or device 'gpu'")
  end)

  it("names the method of an elementwise op and its parameters", function()
    local F, nn = lm.nn.functional, lm.nn
    raises(function() x:leaky_relu("a") end, "leaky_relu: negative_slope must be a number, got string")
    raises(function() F.leaky_relu(x, {}) end, "leaky_relu: negative_slope must be a number, got a table")
    raises(function() F.leaky_relu(3) end, "leaky_relu: input must be a tensor, got 3")
    raises(function() nn.LeakyReLU("a") end, 'nn.LeakyReLU: negative_slope must be a number, got "a"')
    raises(function() F.softplus(x, "a") end, 'softplus: beta must be a number, got "a"')
    raises(function() F.softplus(x, 1, {}) end, "softplus: threshold must be a number, got a table")
    for _, op in ipairs({"floor", "ceil", "round", "trunc", "log1p", "expm1", "log2", "log10", "reciprocal",
        "rsqrt", "square", "erf", "isnan", "isinf", "isfinite"}) do
      raises(function() lm.Tensor[op](3) end, op .. ": bad argument #1: expected a tensor, got number")
    end
  end)

  it("reports shapes", function()
    raises(function() return x + lm.ones(4) end, "shapes [2, 3] and [4] cannot be broadcast")
    raises(function() x:view(4) end, "shape of 4 elements asked for a tensor of 6")
    raises(function() x:transpose(1, 3) end, "dimension 3 out of range")
    raises(function() x:narrow(2, 3, 2) end, "out of range")
    raises(function() x:item() end, "has 6 elements")
  end)

  it("checks class labels and row indices before using them", function()
    raises(function() lm.nn.functional.cross_entropy(lm.zeros(2, 3), lm.tensor({1, 4}, 'int32')) end,
      "cross_entropy: label 4 out of range for 3 classes")
    raises(function() lm.nn.functional.cross_entropy(lm.zeros(2, 3), lm.tensor({0, 1}, 'int32')) end,
      "cross_entropy: label 0 out of range for 3 classes (Lumen's indices are 1-based: add 1 to 0-based ones)")
    raises(function() lm.ones(3, 2):index_select(lm.tensor({0}, 'int32')) end,
      "index_select: index 0 out of range for 3 rows (Lumen's indices are 1-based: add 1 to 0-based ones)")
    raises(function() lm.ones(3, 2):index_select(lm.tensor({2, 4}, 'int32')) end,
      "index_select: index 4 out of range for 3 rows")
    same(lm.tensor{{1}, {2}, {3}}:index_select(lm.tensor({3, 1}, 'int32')):totable(), {{3}, {1}})
  end)

  it("checks gather, scatter_add and cumsum arguments, naming the value and the dimension's size", function()
    local m = lm.tensor{{1, 2, 3}, {4, 5, 6}}
    local function idx(t) return lm.tensor(t, 'int32') end
    raises(function() m:gather(2, idx{{1, 4}}) end, "gather: index 4 out of range for 3 elements along dimension 2")
    raises(function() m:gather(-2, idx{{0, 1}}) end, "gather: index 0 out of range for 2 elements along dimension 1")
    raises(function() m:gather(2, lm.tensor{{1}}) end, "gather: index must be int32, got float32")
    raises(function() m:gather(3, idx{{1}}) end, "gather: dimension 3 out of range for a 2-D tensor")
    raises(function() m:gather(1, idx{1, 2}) end, "gather: index [2] has 1 dimensions, input [2, 3] has 2")
    raises(function() m:gather(2, idx{{1}, {1}, {1}}) end,
      "gather: index [3, 1] is larger than input [2, 3] in dimension 1")
    raises(function() m:gather(1, idx{{1, 2, 1, 2}}) end,
      "gather: index [1, 4] is larger than input [2, 3] in dimension 2")
    raises(function() m:scatter_add(2, idx{{1, 9}}, lm.ones(1, 2)) end,
      "scatter_add: index 9 out of range for 3 elements along dimension 2")
    raises(function() m:scatter_add(2, idx{{1, 2}}, lm.ones(1, 1)) end,
      "scatter_add: src [1, 1] is smaller than the index [1, 2] "
        .. "(src needs the index's dimensions, each at least as long)")
    raises(function() m:int():scatter_add(2, idx{{1}}, lm.ones(1, 1)) end,
      "scatter_add: needs float32 input and src, got int32 and float32")
    raises(function() m:cumsum(3) end, "cumsum: dimension 3 out of range for a 2-D tensor")
    raises(function() m:cumsum() end, "bad argument #1 to 'cumsum' (number expected, got no value)")
  end)

  it("refuses freed tensors", function()
    local y = lm.ones(2)
    y:free()
    y:free() -- idempotent
    raises(function() return y + 1 end, "freed")
    raises(function() y:sum() end, "freed")
  end)

  it("closes tensors with <close>", function()
    collectgarbage() -- earlier garbage, which the allocation below could collect, would hide its bytes
    collectgarbage()
    local before = lm.memory_stats().live_bytes
    do
      local big <close> = lm.zeros(1000, 1000) -- luacheck: ignore 211 (closed at scope end)
      truthy(lm.memory_stats().live_bytes >= before + 4e6, "allocated")
    end
    truthy(lm.memory_stats().live_bytes < before + 4e6, "released at scope exit")
  end)
end)

describe("threads", function()
  it("sets and reads the thread count", function()
    local n = lm.get_num_threads()
    lm.set_num_threads(1)
    eq(lm.get_num_threads(), 1)
    local a = lm.randn(500, 500)
    local s1 = a:sum(1):totable()
    lm.set_num_threads(2)
    same(a:sum(1):totable(), s1) -- the same bits with another thread count
    lm.set_num_threads(n)
    raises(function() lm.set_num_threads(-1) end, "1..64")
  end)

  it("goes back to every core the process may run on with 0", function()
    local n = lm.get_num_threads()
    -- nproc counts the affinity mask (and would follow OMP_NUM_THREADS, which Lumen does not)
    local cores = tonumber(io.popen("env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc"):read("l"))
    lm.set_num_threads(1)
    lm.set_num_threads(0)
    eq(lm.get_num_threads(), math.min(cores, 64))
    lm.set_num_threads(n)
  end)
end)
