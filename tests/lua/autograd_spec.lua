-- The tape's behaviour: leaves, graphs, modes and errors.
local lm = require 'lumen'

describe("autograd", function()
  it("keeps a non-leaf's gradient when asked, until told not to", function()
    local x = lm.tensor{1, 2, 3}:requires_grad(true)
    local h = x * 2
    eq(h:retains_grad(), false)
    eq(h:retain_grad(), h)
    eq(h:retains_grad(), true)
    local y = h * h
    y:sum():backward(nil, true)
    same(h.grad:totable(), {4, 8, 12}) -- d(h^2)/dh = 2h
    h.grad = nil
    h:retain_grad(false)
    eq(h:retains_grad(), false)
    y:sum():backward()
    eq(h.grad, nil)
    same(x.grad:totable(), {16, 32, 48}, 0, "two backward passes through h into x")
  end)

  it("accumulates gradients over uses and backward calls", function()
    local x = lm.tensor{1, 2, 3}:requires_grad(true)
    local y = (x * x):sum() + x:sum()   -- d/dx = 2x + 1
    y:backward()
    same(x.grad:totable(), {3, 5, 7})
    ;(x * 2):sum():backward()           -- accumulates: + 2
    same(x.grad:totable(), {5, 7, 9})
    x.grad = nil
    eq(x.grad, nil)
  end)

  it("returns the same grad object on every access", function()
    local x = lm.ones(2):requires_grad(true)
    x:sum():backward()
    eq(x.grad, x.grad)
  end)

  it("differentiates with respect to inputs (as FGSM needs)", function()
    local w = lm.tensor{{1, -2}, {3, 4}}
    local x = lm.tensor{{0.5, 0.25}}:requires_grad(true)
    local loss = lm.matmul(x, w):sum()
    loss:backward()
    same(x.grad:totable(), {{-1, 7}})
  end)

  it("takes an explicit gradient for non-scalar roots", function()
    local x = lm.tensor{1, 2}:requires_grad(true)
    local y = x * 3
    raises(function() y:backward() end, "one-element output")
    y:backward(lm.tensor{1, 10})
    same(x.grad:totable(), {3, 30})
  end)

  it("frees the graph unless asked to retain it", function()
    local x = lm.tensor{1, 2}:requires_grad(true)
    local y = (x * x):sum()
    y:backward(nil, true)
    y:backward()
    same(x.grad:totable(), {4, 8})
    raises(function() y:backward() end, "already freed")
  end)

  it("stops gradients at detach and under no_grad", function()
    local x = lm.tensor{1, 2}:requires_grad(true)
    local d = x:detach()
    eq(d:requires_grad(), false)
    local y = lm.no_grad(function() return x * 2 end)
    eq(y:requires_grad(), false)
    eq(lm.is_grad_enabled(), true)
    local z = (x * d):sum() -- only the x side carries gradient
    z:backward()
    same(x.grad:totable(), {1, 2})
    raises(function() y:sum():backward() end, "does not require gradients")
    -- no_grad restores the mode after an error
    pcall(lm.no_grad, function() error("boom") end)
    eq(lm.is_grad_enabled(), true)
  end)

  it("runs no_grad's function in the caller's coroutine, which a scheduler may resume directly", function()
    local parked, result = {}, nil
    local task = coroutine.create(function()
      result = table.pack(lm.no_grad(function()
        parked[#parked + 1] = coroutine.running()
        coroutine.yield()
        return 42, lm.is_grad_enabled()
      end))
    end)
    assert(coroutine.resume(task))
    while #parked > 0 do assert(coroutine.resume(table.remove(parked, 1))) end
    same({result[1], result[2]}, {42, false})
    eq(coroutine.status(task), "dead")
    eq(lm.is_grad_enabled(), true)
    -- a callable table, as any function
    local m = lm.nn.Linear(2, 2)
    local y = coroutine.wrap(function() return lm.no_grad(m, lm.ones(1, 2)) end)()
    eq(y:requires_grad(), false)
  end)

  it("refuses a backward pass started inside another, and the outer graph still runs", function()
    local w = lm.tensor{1, 2}:requires_grad(true)
    local inner = lm.autograd.Function{name = "inner", forward = function(_, x) return x * 2 end,
      backward = function(_, g)
        (w * w):sum():backward()
        return g * 2
      end}
    local x = lm.tensor{3, 4}:requires_grad(true)
    local loss = (inner(x) * x):sum()
    raises(function() loss:backward(nil, true) end, "backward of inner: ")
    raises(function() loss:backward(nil, true) end, "backward: called while a backward pass "
      .. "runs (from a custom Function's backward or a hook); a pass cannot run inside another")
    eq(w.grad, nil, "the inner pass wrote nothing")
    eq(x.grad, nil, "the outer pass wrote nothing")
    local y = (x * 3):sum()
    y:backward()
    same(x.grad:totable(), {3, 3}, 0, "a later pass runs")
  end)

  it("names the op that computed a tensor", function()
    local x = lm.ones(2):requires_grad(true)
    eq(x:is_leaf(), true)
    eq(x:grad_fn(), nil)
    local y = x:exp()
    eq(y:is_leaf(), false)
    eq(y:grad_fn(), "exp")
  end)

  it("refuses in-place changes that would corrupt gradients", function()
    local x = lm.ones(3):requires_grad(true)
    raises(function() x:fill_(2) end, "in-place change of a leaf")
    lm.no_grad(function() x:fill_(2) end) -- fine without recording
    local a = lm.ones(3):requires_grad(true)
    local b = lm.ones(3)
    local y = (a * b):sum() -- saves b
    b:fill_(5)
    raises(function() y:backward() end, "modified in place")
    raises(function() lm.tensor({1}, 'int32'):requires_grad(true) end, "only float32")
    raises(function() lm.ones(2):requires_grad(nil) end,
      "bad argument #1 to 'requires_grad' (boolean expected, got nil)")
    eq(lm.ones(2):requires_grad(), false, "without an argument: the flag")
    raises(function() (x * 2):requires_grad(false) end, "leaf tensors")
  end)

  it("keeps of a binary or scalar op only what the gradients it owes read, as torch", function()
    -- x * 2, x + 1, x - 1, x / 2 read nothing of x: a later in-place change is fine
    for name, f in pairs{mul = function(v) return v * 2 end, add = function(v) return v + 1 end,
        sub = function(v) return v - 1 end, div = function(v) return v / 2 end,
        rsub = function(v) return 1 - v end, addt = function(v) return v + lm.ones(3) end} do
      local x = lm.tensor({1, 2, 3}):requires_grad(true)
      local y = f(x):sum()
      lm.no_grad(function() x:add_(1) end)
      y:backward()
      local want = ({mul = 2, div = 0.5, rsub = -1})[name] or 1
      same(x.grad:totable(), {want, want, want}, 1e-7, name)
    end
    -- a * w with only w needing a gradient reads a alone: w may change
    local a, w = lm.tensor({1, 2}), lm.tensor({3, 4}):requires_grad(true)
    local y = (a * w):sum()
    lm.no_grad(function() w:add_(1) end)
    y:backward()
    same(w.grad:totable(), {1, 2})
    -- but 1 / x reads x and its output: a change of x is still refused
    local x = lm.tensor({1, 2}):requires_grad(true)
    local r = (1 / x):sum()
    lm.no_grad(function() x:add_(1) end)
    raises(function() r:backward() end, "a tensor saved by div for the gradient was modified in place")
    -- x^0 keeps nothing and still gives zeros of x's shape
    local z = lm.tensor({1, 2}):requires_grad(true)
    z:pow(0):sum():backward()
    same(z.grad:totable(), {0, 0})
  end)

  it("keeps of a unary op only what its gradient reads, as torch", function()
    -- exp's gradient reads its output: changing the input afterwards is fine
    local x = lm.tensor({0, 1, 2}):requires_grad(true)
    local y = x:exp()
    lm.no_grad(function() x:add_(5) end)
    y:sum():backward()
    same(x.grad:totable(), {1, math.exp(1), math.exp(2)}, 1e-6)
    -- log's reads its input: changing the output is fine, the input is not
    local a = lm.tensor({1, 2, 4}):requires_grad(true)
    local l = a:log()
    lm.no_grad(function() l:mul_(0) end)
    l:sum():backward()
    same(a.grad:totable(), {1, 0.5, 0.25}, 1e-7)
    local b = lm.tensor({1, 2, 4}):requires_grad(true)
    local lb = b:log()
    lm.no_grad(function() b:add_(1) end)
    raises(function() lb:sum():backward() end,
      "backward: a tensor saved by log for the gradient was modified in place afterwards")
    -- relu and gelu read the input only; sigmoid and tanh the output only
    for _, case in ipairs{{"relu", "input"}, {"gelu", "input"}, {"sigmoid", "output"}, {"tanh", "output"}} do
      local v = lm.tensor({-1, 0.5, 2}):requires_grad(true)
      local out = v[case[1]](v)
      local w = lm.tensor({-1, 0.5, 2}):requires_grad(true)
      w[case[1]](w):sum():backward()
      local expected = w.grad
      -- change the one it does not read: the gradient is the same
      lm.no_grad(function() if case[2] == "input" then out:add_(3) else v:add_(3) end end)
      out:sum():backward()
      same(v.grad:totable(), expected:totable(), 1e-6, case[1])
    end
  end)

  it("gives no gradient to a leaf frozen after the forward pass, as torch", function()
    local w = lm.ones(2):requires_grad(true)
    local v = lm.ones(2):requires_grad(true)
    local y = (w * 2 + v * 3):sum()
    w:requires_grad(false)
    y:backward()
    eq(w.grad, nil)
    same(v.grad:totable(), {3, 3})
  end)

  it("runs a custom function's Lua backward and checks its results", function()
    local Bad = lm.autograd.Function{
      forward = function(_, v) return v * 1 end,
      backward = function() return lm.ones(7) end,
    }
    local x = lm.ones(3):requires_grad(true)
    raises(function() Bad(x):sum():backward() end, "gradient 1 has shape [7]")
    local Failing = lm.autograd.Function{
      forward = function(_, v) return v * 1 end,
      backward = function() error("custom failure") end,
    }
    raises(function() Failing(x):sum():backward() end, "custom failure")
    local Truncating = lm.autograd.Function{name = "truncating",
      forward = function(_, v) return v * 1 end,
      backward = function(_, g) return (g * 2.7):int() end,
    }
    raises(function() Truncating(x):sum():backward() end,
      "backward of truncating: gradient 1 is a int32 tensor on cpu, its input's must be float32 on cpu")
    -- one result per forward argument, in order: a shifted list is refused, not misassigned
    local Scaled = lm.autograd.Function{name = "scaled",
      forward = function(_, u, alpha, w) return u * alpha + w end,
      backward = function(_, g, alpha) return g * (alpha or 2), g end, -- forgot the nil for alpha
    }
    local w = lm.ones(3):requires_grad(true)
    raises(function() Scaled(x, 2, w):sum():backward() end, "backward of scaled: scaled returned a tensor as "
      .. "result 2, where forward's argument 2 is a number: return one gradient (or nil) per forward argument, in "
      .. "order (3)")
    local Silent = lm.autograd.Function{name = "silent",
      forward = function(_, u) return u * 2 end,
      backward = function(_, g) local _ = g * 2 end, -- forgot return
    }
    raises(function() Silent(x):sum():backward() end, "silent returned nothing")
    local Extra = lm.autograd.Function{name = "extra",
      forward = function(_, u) return u * 2 end,
      backward = function(_, g) return g * 2, g end,
    }
    raises(function() Extra(x):sum():backward() end, "extra returned a tensor as result 2, where forward's "
      .. "argument 2 is missing")
    local Right = lm.autograd.Function{name = "right",
      forward = function(_, u, alpha, v) return u * alpha + v end,
      backward = function(_, g) return g * 2, nil, g end,
    }
    x.grad, w.grad = nil, nil
    Right(x, 2, w):sum():backward()
    same(x.grad:totable(), {2, 2, 2}); same(w.grad:totable(), {1, 1, 1})
  end)

  it("carries a Function that hands its input back (gradient reversal) on a tensor of its own", function()
    local Reverse = lm.autograd.Function{name = "grad_reverse",
      forward = function(_, v) return v end,
      backward = function(_, g) return -g end,
    }
    local x = lm.tensor{1, 2, 3}:requires_grad(true)
    local y = Reverse(x)
    eq(y:grad_fn(), "grad_reverse", "the node is named after the Function")
    truthy(x:is_leaf(), "the input stays a leaf")
    ;(y * 2):sum():backward()
    same(x.grad:totable(), {-2, -2, -2})
    eq(y:grad_fn(), "grad_reverse", "its name outlives the graph")
  end)

  it("frees a Function's saved output with the output (no cycle through the node)", function()
    local Exp = lm.autograd.Function{
      forward = function(ctx, v) local y = v:exp(); ctx:save_for_backward(y); return y end,
      backward = function(ctx, g) return g * ctx.saved[1] end,
    }
    -- the output kept in a field of ctx instead: the same
    local ExpField = lm.autograd.Function{
      forward = function(ctx, v) ctx.y = v:exp(); return ctx.y end,
      backward = function(ctx, g) return g * ctx.y end,
    }
    local x = lm.randn(1000):requires_grad(true)
    -- live bytes gained over 100 calls whose outputs are dropped, after 20 to settle the caches
    local function growth(F)
      for _ = 1, 20 do local _ = F(x) end
      collectgarbage(); collectgarbage(); local _ = F(x); collectgarbage(); collectgarbage()
      local before = lm.memory_stats().live_bytes
      for _ = 1, 100 do local _ = F(x) end
      collectgarbage(); collectgarbage(); local _ = F(x); collectgarbage(); collectgarbage()
      return lm.memory_stats().live_bytes - before
    end
    local field_growth = growth(ExpField)
    truthy(field_growth <= 2 * 4096, "ctx.y: live bytes grew by " .. field_growth)
    -- or in plain tables inside ctx, at any depth (ctx.list = {y}); backward reads it as before
    local ExpNested = lm.autograd.Function{
      forward = function(ctx, v) local y = v:exp(); ctx.list = {y}; ctx.deep = {a = {b = y}}; return y end,
      backward = function(ctx, g) return g * ctx.deep.a.b end,
    }
    local nested_growth = growth(ExpNested)
    truthy(nested_growth <= 2 * 4096, "ctx.list = {y}: live bytes grew by " .. nested_growth)
    local z = lm.tensor({0, 1}):requires_grad(true)
    ExpNested(z):sum():backward()
    same(z.grad:totable(), {1, math.exp(1)}, 1e-6)
    -- a saved tensor changed in place before backward is refused, as the built-in ops refuse theirs
    local Square = lm.autograd.Function{name = "square",
      forward = function(ctx, v) ctx:save_for_backward(v); return v * v end,
      backward = function(ctx, g) return g * 2 * ctx.saved[1] end,
    }
    local w = lm.tensor({1, 2, 3}):requires_grad(true)
    local sq = Square(w):sum()
    lm.no_grad(function() w:add_(10) end)
    raises(function() sq:backward() end, "a tensor saved by square (ctx.saved[1]) for the gradient was modified "
      .. "in place afterwards")
    local saved_growth = growth(Exp)
    truthy(saved_growth <= 2 * 4096, "live bytes grew by " .. saved_growth)
    local y = Exp(x)
    y:sum():backward()
    same(x.grad:totable(), x:exp():totable(), 1e-6)
  end)
end)

describe("anomaly mode", function()
  it("stops at the first NaN or Inf, forward or backward, naming the op and the shape", function()
    local was = lm.autograd.detect_anomaly()
    eq(lm.autograd.detect_anomaly(true), true)
    local x = lm.tensor({1, -1, 2}):requires_grad(true)
    raises(function() return x:log() end, "anomaly: log: the output of shape [3] has 1 NaN or infinite value")
    local y = lm.tensor({0, 1, 4}):requires_grad(true)
    local z = y:sqrt()                       -- finite forward: sqrt(0) = 0
    raises(function() z:sum():backward() end,
      "anomaly: sqrt: the gradient for input 1 (backward) of shape [3] has 1 NaN or infinite value")
    local ok = lm.tensor({1, 2}):requires_grad(true)
    local w = (ok * 2):sum()                 -- finite everywhere: no error
    w:backward()
    eq(ok.grad:totable()[1], 2)
    lm.autograd.detect_anomaly(false)
    eq(lm.autograd.detect_anomaly(), false)
    truthy(x:log():totable()[2] ~= x:log():totable()[2], "off: NaN passes silently")
    lm.autograd.detect_anomaly(was)
  end)

  it("checks a custom function's output as a built-in op's", function()
    local Log = lm.autograd.Function{name = "my_log",
      forward = function(ctx, x) ctx:save_for_backward(x); return x:log() end,
      backward = function(ctx, g) return g / ctx.saved[1] end}
    local was = lm.autograd.detect_anomaly()
    lm.autograd.detect_anomaly(true)
    local ok, err = pcall(Log, lm.tensor({-1, 1}):requires_grad(true))
    lm.autograd.detect_anomaly(was)
    eq(ok, false)
    truthy(tostring(err):find("anomaly: my_log: the output of shape [2] has 1 NaN or infinite value", 1, true), err)
  end)
end)

describe("a custom function with an integer result", function()
  it("gives it no gradient, as torch marks integer outputs", function()
    local ArgMax = lm.autograd.Function{forward = function(_, x) return x:argmax(2) end,
      backward = function() return nil end}
    local y = ArgMax(lm.randn(3, 4):requires_grad(true))
    eq(y:dtype(), "int32")
    eq(y:requires_grad(), false)
    eq(y:grad_fn(), nil)
  end)
end)
