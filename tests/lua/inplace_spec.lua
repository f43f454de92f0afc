-- Every in-place op against its out-of-place twin: the same values on
-- contiguous tensors and on views (transposed, narrowed), with a broadcast or
-- number operand; returns self; bumps the storage version (seen from Lua: a
-- backward that saved the tensor refuses to run); errors exactly where the
-- twin errors (same message apart from the op name) and leaves the tensor as
-- it was; refused on leaves that require gradients (and views of them); on
-- int32 tensors where allowed; never silently wrong on aliasing or expanded
-- targets.
--
-- In-place ops (bindings/l_tensor.c, docs/api.md): add_ sub_ mul_ div_
-- clamp_ zero_ fill_ copy_ normal_ uniform_, and x[i] = v.
local lm = require 'lumen'

local function vals(t) return t:contiguous():view(-1):totable() end
local function snap(t) return {shape = table.concat(t:shape(), "x"), dtype = t:dtype(), values = vals(t)} end
local function unchanged(t, before, what)
  local now = snap(t)
  eq(now.shape, before.shape, (what or "tensor") .. " shape")
  eq(now.dtype, before.dtype, (what or "tensor") .. " dtype")
  same(now.values, before.values, 0, (what or "tensor") .. " values")
end
local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  truthy(not ok, "expected an error")
  return (tostring(e):gsub("^[%w_%.%-/]+:%d+: ", "", 1))
end
-- the op's name replaced by the twin's: add_ -> add
local function untwin(msg, name) return (msg:gsub(name .. "_", name)) end

-- the version counter, seen from Lua: w * t saves t for w's gradient
local function guard(t)
  local w = lm.ones(t:shape()):requires_grad(true)
  return (w * t):sum()
end
local MODIFIED = "backward: a tensor saved by mul for the gradient was modified in place afterwards; "
  .. "compute it out of place (or clone it) instead"
local function bumped(g) eq(err_of(g.backward, g), MODIFIED, "the version was bumped") end
local function not_bumped(g)
  local ok, e = pcall(g.backward, g); truthy(ok, "the version unchanged: " .. tostring(e))
end

local function mat() return lm.tensor{{1, -2, 3}, {-4, 5, 6}} end
local LEAF = "%s: in-place change of a leaf tensor that requires gradients; "
  .. "do it inside lm.no_grad or on a detached tensor"
local VIEW_OF_LEAF = "%s: in-place change of a view of a leaf tensor that requires gradients; "
  .. "do it inside lm.no_grad or on a detached tensor"
local EXPANDED = "%s: dimension 1 is expanded (its elements share one memory location); "
  .. "clone the tensor before writing to it in place"

-- ---- binary ops ------------------------------------------------------------------------------

for _, name in ipairs{"add", "sub", "mul", "div"} do
  local op_, op = name .. "_", name
  describe(op_, function()
    local operands = {
      {"a same-shape tensor", function() return lm.tensor{{2, 3, -1}, {0.5, 4, 2}} end},
      {"a broadcast row", function() return lm.tensor{2, -3, 0.5} end},
      {"a broadcast column", function() return lm.tensor{{2}, {-0.25}} end},
      {"a 0-D tensor", function() return lm.tensor(3) end},
      {"a number", function() return 2.5 end},
      {"a non-contiguous operand", function() return lm.tensor{{2, 0.5}, {3, 4}, {-1, 2}}:t() end},
    }
    for _, o in ipairs(operands) do
      it("matches " .. op .. " with " .. o[1] .. " on a contiguous tensor", function()
        local x = mat()
        local want = mat()[op](mat(), o[2]())
        local g = guard(x)
        local r = x[op_](x, o[2]())
        truthy(rawequal(r, x), "returns self")
        same(vals(x), vals(want), 1e-6)
        eq(table.concat(x:shape(), "x"), "2x3")
        bumped(g)
      end)
      it("matches " .. op .. " with " .. o[1] .. " on a transposed view", function()
        local base = lm.tensor{{1, -4}, {-2, 5}, {3, 6}}
        local v = base:t()
        truthy(not v:is_contiguous(), "a non-contiguous view")
        local want = v[op](v, o[2]())
        local r = v[op_](v, o[2]())
        truthy(rawequal(r, v), "returns self")
        same(vals(v), vals(want), 1e-6)
        same(vals(base), vals(want:t()), 1e-6, "written through to the base")
      end)
      it("matches " .. op .. " with " .. o[1] .. " on a narrowed view, elements outside untouched", function()
        local base = lm.tensor{{9, 1, -2, 3, 9}, {9, -4, 5, 6, 9}}
        local v = base:narrow(2, 2, 3)
        local want = v[op](v, o[2]())
        v[op_](v, o[2]())
        same(vals(v), vals(want), 1e-6)
        same(vals(base:narrow(2, 1, 1)), {9, 9}); same(vals(base:narrow(2, 5, 1)), {9, 9})
      end)
    end

    it("refuses to broadcast the target, as PyTorch does, and leaves it unchanged", function()
      local x = lm.tensor{1, 2, 3}
      local before, g = snap(x), guard(x)
      eq(err_of(x[op_], x, lm.ones(2, 3)), op .. ": output has shape [3], the result has shape [2, 3]")
      unchanged(x, before); not_bumped(g)
    end)

    for _, bad in ipairs{
      {"a shape mismatch", function() return lm.ones(4) end},
      {"a string", function() return "a" end},
      {"nil", function() return nil end},
      {"a freed tensor", function() local t = lm.ones(3); t:free(); return t end},
    } do
      it("errors on " .. bad[1] .. " with the twin's message, and leaves the tensor unchanged", function()
        local x = mat()
        local before, g = snap(x), guard(x)
        local twin = err_of(x[op], x, bad[2]())
        local msg = err_of(x[op_], x, bad[2]())
        eq(untwin(msg, op), twin)
        unchanged(x, before); not_bumped(g)
      end)
    end

    it("is refused on a leaf that requires gradients, and on a view of one", function()
      local a = lm.tensor{1, 2, 3}:requires_grad(true)
      local before = snap(a)
      eq(err_of(a[op_], a, 2), LEAF:format(op_))
      eq(err_of(function() local v = a:narrow(1, 1, 2); v[op_](v, 2) end), VIEW_OF_LEAF:format(op_))
      eq(err_of(function() local v = a:view(3, 1); v[op_](v, 2) end), VIEW_OF_LEAF:format(op_))
      unchanged(a, before)
      eq(a.grad, nil)
      lm.no_grad(function() a[op_](a, 2) end)
      same(vals(a), vals(lm.tensor{1, 2, 3}[op](lm.tensor{1, 2, 3}, 2)), 1e-6, "allowed under no_grad")
      local d = a:detach()
      d[op_](d, 1)
      truthy(a:requires_grad(), "still a leaf requiring grad")
    end)

    it("is refused on a result in a graph (the tape would not see it), and works on one inside no_grad", function()
      local a = lm.tensor{1, 2, 3}:requires_grad(true)
      local b = a * 1
      raises(function() b[op_](b, 2) end, op_ .. ": in-place change of a tensor computed with gradients")
      same(vals(b), {1, 2, 3}, 0, "unchanged")
      lm.no_grad(function() eq(rawequal(b[op_](b, 2), b), true) end)
      same(vals(b), vals(lm.tensor{1, 2, 3}[op](lm.tensor{1, 2, 3}, 2)), 1e-6)
    end)

    it("reads an aliased operand before writing (self, transposed self, a row of self)", function()
      local function sq() return lm.tensor{{1, 2}, {3, 4}} end
      for _, pick in ipairs{
        function(a) return a end, function(a) return a:t() end,
        function(a) return a[1] end, function(a) return a:narrow(1, 2, 1) end,
      } do
        local a = sq()
        local want = sq()[op](sq(), pick(sq()))
        a[op_](a, pick(a))
        same(vals(a), vals(want), 1e-6)
      end
    end)

    it("is refused on an expanded tensor, whose elements share memory", function()
      local base = lm.tensor{{1, 2, 3}}
      local before = snap(base)
      local e = base:expand(2, 3)
      eq(err_of(e[op_], e, 2), EXPANDED:format(op_))
      unchanged(base, before)
    end)

    if name ~= "div" then
      it("works on int32 tensors with int32 operands and integers", function()
        local function it32() return lm.tensor({{1, -2, 3}, {4, 5, -6}}, 'int32') end
        for _, o in ipairs{function() return lm.tensor({2, 3, -1}, 'int32') end, function() return 3 end} do
          local x = it32()
          local want = it32()[op](it32(), o())
          eq(want:dtype(), "int32")
          x[op_](x, o())
          eq(x:dtype(), "int32")
          same(vals(x), vals(want))
        end
      end)
      it("refuses a float result in an int32 tensor and leaves it unchanged", function()
        local x = lm.tensor({1, 2}, 'int32')
        local before = snap(x)
        eq(err_of(x[op_], x, 1.5), op .. ": output is int32, the result is float32")
        eq(err_of(x[op_], x, lm.tensor{1, 1}), op .. ": output is int32, the result is float32")
        unchanged(x, before)
      end)
    else
      it("refuses an int32 target (true division gives float32), leaving it unchanged", function()
        local x = lm.tensor({2, 4}, 'int32')
        local before = snap(x)
        eq((x / 2):dtype(), "float32")
        eq(err_of(x.div_, x, 2), "div: output is int32, the result is float32")
        unchanged(x, before)
      end)
    end

    it("accepts an int32 operand into a float32 tensor", function()
      local x = mat()
      local want = mat()[op](mat(), lm.tensor({1, 2, 4}, 'int32'))
      x[op_](x, lm.tensor({1, 2, 4}, 'int32'))
      same(vals(x), vals(want), 1e-6)
    end)
  end)
end

-- ---- clamp_ ----------------------------------------------------------------------------------

describe("clamp_", function()
  for _, b in ipairs{{-1, 4}, {0}, {nil, 2}, {3, 3}, {}} do
    local label = "(" .. tostring(b[1]) .. ", " .. tostring(b[2]) .. ")"
    it("matches clamp" .. label .. " on contiguous, transposed and narrowed tensors", function()
      local x = mat()
      local g = guard(x)
      truthy(rawequal(x:clamp_(b[1], b[2]), x), "returns self")
      same(vals(x), vals(mat():clamp(b[1], b[2])))
      bumped(g)
      local base = mat()
      local v = base:t()
      local want = v:clamp(b[1], b[2])
      v:clamp_(b[1], b[2])
      same(vals(v), vals(want))
      local wide = lm.tensor{{9, 1, -2, 3}, {9, -4, 5, 6}}
      local n = wide:narrow(2, 2, 3)
      local nwant = n:clamp(b[1], b[2])
      n:clamp_(b[1], b[2])
      same(vals(n), vals(nwant)); same(vals(wide:select(2, 1)), {9, 9})
    end)
  end

  -- was a bug: clamp_(2, 1) returned 2 1 1 where clamp(2, 1) raised
  it("errors where clamp errors (min > max, a string) and leaves the tensor unchanged", function()
    for _, args in ipairs{{2, 1}, {"a"}, {0, "b"}} do
      local x = mat()
      local before, g = snap(x), guard(x)
      local twin = err_of(x.clamp, x, args[1], args[2])
      eq(untwin(err_of(x.clamp_, x, args[1], args[2]), "clamp"), twin)
      unchanged(x, before); not_bumped(g)
    end
    eq(err_of(mat().clamp_, mat(), 2, 1), "clamp_: min (2) is greater than max (1)")
  end)

  it("works on int32 tensors like clamp", function()
    local function i32() return lm.tensor({{1, 5}, {-3, 8}}, 'int32') end
    local x = i32()
    x:clamp_(0, 6)
    local want = i32():clamp(0, 6)
    eq(x:dtype(), want:dtype())
    same(vals(x), vals(want))
  end)

  it("is refused on a leaf that requires gradients and on an expanded tensor", function()
    local a = lm.tensor{1, 2, 3}:requires_grad(true)
    eq(err_of(a.clamp_, a, 0, 1), LEAF:format("clamp_"))
    local e = lm.tensor{{1, 2, 3}}:expand(2, 3)
    eq(err_of(e.clamp_, e, 0, 1), EXPANDED:format("clamp_"))
    same(vals(a), {1, 2, 3})
  end)
end)

-- ---- zero_ and fill_ --------------------------------------------------------------------------

describe("zero_ and fill_", function()
  local cases = {
    {"zero_", function(t) return t:zero_() end, function(t) return lm.full(t:shape(), 0) end},
    {"fill_", function(t) return t:fill_(-2.5) end, function(t) return lm.full(t:shape(), -2.5) end},
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " matches its twin on contiguous, transposed and narrowed tensors, returns self", function()
      local x = mat()
      local g = guard(x)
      truthy(rawequal(c[2](x), x), "returns self")
      same(vals(x), vals(c[3](x)))
      bumped(g)
      local base = mat()
      local v = base:t()
      c[2](v)
      same(vals(base), vals(c[3](base)))
      local wide = lm.tensor{{9, 1, -2, 3}, {9, -4, 5, 6}}
      local n = wide:narrow(2, 2, 3)
      c[2](n)
      same(vals(n), vals(c[3](n))); same(vals(wide:select(2, 1)), {9, 9})
    end)
    it(c[1] .. " is refused on a leaf that requires gradients, and allowed on an expanded tensor", function()
      local a = lm.tensor{1, 2, 3}:requires_grad(true)
      eq(err_of(c[2], a), LEAF:format(c[1]))
      same(vals(a), {1, 2, 3})
      local base = lm.tensor{{1, 2, 3}}
      c[2](base:expand(2, 3)) -- every element gets the same value: no order to depend on
      same(vals(base), vals(c[3](base)))
    end)
  end

  it("fill_ errors on a non-number and leaves the tensor unchanged", function()
    local x = mat()
    local before, g = snap(x), guard(x)
    eq(err_of(function() return x:fill_("a") end), "bad argument #1 to 'fill_' (number expected, got string)")
    unchanged(x, before); not_bumped(g)
  end)

  it("work on int32 tensors (fill_ truncates like the int32 conversion)", function()
    local x = lm.tensor({1, 2, 3}, 'int32')
    x:fill_(7)
    same(vals(x), {7, 7, 7}); eq(x:dtype(), "int32")
    x:zero_()
    same(vals(x), {0, 0, 0})
    x:fill_(2.7)
    same(vals(x), vals(lm.tensor{2.7, 2.7, 2.7}:int()))
  end)
end)

-- ---- copy_ ------------------------------------------------------------------------------------

describe("copy_", function()
  -- twin: the source broadcast to the target's shape, as a new tensor
  local function twin(x, src) return (lm.zeros(x:shape()) + src) end
  for _, s in ipairs{
    {"a same-shape tensor", function() return lm.tensor{{7, 8, 9}, {10, 11, 12}} end},
    {"a broadcast row", function() return lm.tensor{7, 8, 9} end},
    {"a non-contiguous source", function() return lm.tensor{{7, 10}, {8, 11}, {9, 12}}:t() end},
  } do
    it("matches its twin with " .. s[1] .. " on contiguous, transposed and narrowed targets", function()
      local x = mat()
      local g = guard(x)
      truthy(rawequal(x:copy_(s[2]()), x), "returns self")
      same(vals(x), vals(twin(x, s[2]())))
      bumped(g)
      local base = lm.tensor{{0, 0}, {0, 0}, {0, 0}}
      base:t():copy_(s[2]())
      same(vals(base:t()), vals(twin(mat(), s[2]())))
      local wide = lm.zeros(2, 5)
      wide:narrow(2, 2, 3):copy_(s[2]())
      same(vals(wide:narrow(2, 2, 3)), vals(twin(mat(), s[2]())))
      same(vals(wide:select(2, 1)), {0, 0}); same(vals(wide:select(2, 5)), {0, 0})
    end)
  end

  it("errors on a source that does not broadcast (and on a target that would), unchanged", function()
    for _, c in ipairs{
      {lm.ones(4), "copy_: a source of shape [4] cannot be broadcast to the destination's shape [2, 3]"},
      {lm.ones(2, 2, 3), "copy_: a source of shape [2, 2, 3] cannot be broadcast to the destination's shape [2, 3]"},
      {3, "bad argument #2: expected a tensor, got number"},
    } do
      local x = mat()
      local before, g = snap(x), guard(x)
      eq(err_of(x.copy_, x, c[1]), c[2])
      unchanged(x, before); not_bumped(g)
    end
  end)

  it("converts between dtypes (float into int32 truncates)", function()
    local x = lm.tensor({0, 0}, 'int32')
    x:copy_(lm.tensor{1.7, -2.7})
    same(vals(x), vals(lm.tensor{1.7, -2.7}:int())); eq(x:dtype(), "int32")
    local f = lm.zeros(2)
    f:copy_(lm.tensor({3, 4}, 'int32'))
    same(vals(f), {3, 4})
  end)

  it("reads an aliased source before writing (was a bug: a:copy_(a:t()) gave 1 3 3 4)", function()
    local a = lm.tensor{{1, 2}, {3, 4}}
    a:copy_(a:t())
    same(vals(a), {1, 3, 2, 4})
    local b = lm.tensor{{1, 2}, {3, 4}}
    b:copy_(b[2])
    same(vals(b), {3, 4, 3, 4})
  end)

  it("is refused on a leaf that requires gradients, a view of one, and an expanded tensor", function()
    local a = lm.tensor{1, 2, 3}:requires_grad(true)
    eq(err_of(a.copy_, a, lm.zeros(3)), LEAF:format("copy_"))
    eq(err_of(function() a:narrow(1, 1, 2):copy_(lm.zeros(2)) end), VIEW_OF_LEAF:format("copy_"))
    same(vals(a), {1, 2, 3})
    local base = lm.tensor{{1, 2, 3}}
    eq(err_of(function() base:expand(2, 3):copy_(lm.ones(2, 3)) end), EXPANDED:format("copy_"))
    same(vals(base), {1, 2, 3})
  end)
end)

-- ---- x[i] = v -----------------------------------------------------------------------------------

describe("index assignment", function()
  it("fills or copies a slice like the twin, and bumps the version", function()
    local x = mat()
    local g = guard(x)
    x[1] = 0
    x[2] = lm.tensor{7, 8, 9}
    same(vals(x), {0, 0, 0, 7, 8, 9})
    bumped(g)
  end)
  it("errors on a wrong shape and leaves the tensor unchanged", function()
    local x = mat()
    local before, g = snap(x), guard(x)
    eq(err_of(function() x[1] = lm.ones(4) end),
      "index assignment: a source of shape [4] cannot be broadcast to the destination's shape [3]")
    eq(err_of(function() x[3] = 1 end), "index 3 out of range for dimension 1 of size 2")
    unchanged(x, before); not_bumped(g)
  end)
  it("is refused on a leaf that requires gradients", function()
    local a = lm.ones(2, 2):requires_grad(true)
    eq(err_of(function() a[1] = 5 end), LEAF:format("index assignment"))
    same(vals(a), {1, 1, 1, 1})
  end)
end)

-- ---- normal_ and uniform_ ------------------------------------------------------------------------

describe("normal_ and uniform_", function()
  local cases = {
    {"normal_", function(t) return t:normal_(1, 2) end, function(shape) return lm.randn(shape) * 2 + 1 end,
      {{0, -1}, "randn: std must be >= 0, got -1"}},
    {"uniform_", function(t) return t:uniform_(-1, 3) end, function(shape) return lm.rand(shape) * 4 - 1 end,
      {{1, 0}, "rand: low (1) must not exceed high (0)"}},
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " draws what its twin draws from the same seed, returns self, bumps the version", function()
      local x = lm.zeros(3, 4)
      local g = guard(x)
      lm.manual_seed(5)
      truthy(rawequal(c[2](x), x), "returns self")
      lm.manual_seed(5)
      same(vals(x), vals(c[3]({3, 4})), 1e-5)
      bumped(g)
    end)
    it(c[1] .. " fills only the elements of a view", function()
      local wide = lm.full({2, 5}, 9)
      c[2](wide:narrow(2, 2, 3))
      same(vals(wide:select(2, 1)), {9, 9}); same(vals(wide:select(2, 5)), {9, 9})
      local base = lm.full({3, 2}, 9)
      c[2](base:t())
      for _, v in ipairs(vals(base)) do truthy(v ~= 9, "every element of the transposed view drawn") end
    end)
    it(c[1] .. " errors on bad parameters and int32 tensors; tensor and stream unchanged", function()
      local x = mat()
      local before, g = snap(x), guard(x)
      lm.manual_seed(9)
      local method = x[c[1]]
      eq(err_of(method, x, c[4][1][1], c[4][1][2]), c[4][2])
      local i = lm.tensor({1, 2}, 'int32')
      eq(err_of(i[c[1]], i), (c[1] == "normal_" and "randn" or "rand") .. ": needs a float32 tensor, got int32")
      same(vals(i), {1, 2})
      unchanged(x, before); not_bumped(g)
      local got = lm.rand(3):totable()
      lm.manual_seed(9)
      same(got, lm.rand(3):totable(), 0, "the stream as if nothing was drawn")
    end)
    it(c[1] .. " is refused on a leaf that requires gradients and on an expanded tensor", function()
      local a = lm.tensor{1, 2, 3}:requires_grad(true)
      eq(err_of(c[2], a), LEAF:format(c[1]))
      local base = lm.tensor{{1, 2, 3}}
      eq(err_of(c[2], base:expand(2, 3)), EXPANDED:format(c[1]))
      same(vals(a), {1, 2, 3}); same(vals(base), {1, 2, 3})
    end)
  end
end)

describe("the list of in-place ops", function()
  it("is what this spec covers: every *_ method of a tensor", function()
    local covered = {add_ = 1, sub_ = 1, mul_ = 1, div_ = 1, clamp_ = 1, zero_ = 1, fill_ = 1, copy_ = 1,
      normal_ = 1, uniform_ = 1}
    for name in pairs(lm.Tensor) do
      if type(name) == "string" and name:match("^%l[%w_]*_$") then
        truthy(covered[name], "a test for the in-place method " .. name)
      end
    end
  end)
end)
