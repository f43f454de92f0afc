-- Values where the naive formula fails, against values computed by hand
-- (in double precision): large logits, masked classes, constant inputs,
-- powers at 0, NaN through ReLU, distances of far-away points.
local lm = require 'lumen'
local F = lm.nn.functional

local function grad_of(values, fn)
  local x = lm.tensor(values)
  x:requires_grad(true)
  fn(x):sum():backward()
  return x.grad:totable()
end

describe("numerics at the edges", function()
  it("log_softmax keeps log(sum) next to a large maximum", function()
    local want = -math.log(1 + math.exp(-1) + math.exp(-2))
    for _, m in ipairs{0, 1e4, 1e6} do
      local got = F.log_softmax(lm.tensor{{m, m - 1, m - 2}}, 2)[1][1]
      near(got, want, 1e-6, "shifted by " .. m)
    end
    -- a cross-entropy far below float's resolution of the maximum
    near(F.cross_entropy(lm.tensor{{100, 85}}, lm.tensor({1}, "int32")):item(), math.log(1 + math.exp(-15)), 1e-12)
    near(F.cross_entropy(lm.tensor{{30, 20}}, lm.tensor({1}, "int32")):item() / math.log(1 + math.exp(-10)), 1, 1e-5)
  end)

  it("cross-entropy over a masked (-inf) class is finite, as are its gradients", function()
    local logits = lm.tensor{{-math.huge, 0, 1}}
    logits:requires_grad(true)
    local loss = F.cross_entropy(logits, lm.tensor({3}, "int32"))
    near(loss:item(), math.log(1 + math.exp(1)) - 1, 1e-6)
    loss:backward()
    local g = logits.grad:totable()[1]
    eq(g[1], 0)
    near(g[2], 1 / (1 + math.exp(1)), 1e-6)
    near(g[3], math.exp(1) / (1 + math.exp(1)) - 1, 1e-6)
  end)

  it("std of a constant input has gradient 0, not NaN (as torch)", function()
    same(grad_of({5, 5, 5}, function(x) return x:std() end), {0, 0, 0})
    local rows = lm.tensor{{2, 2}, {1, 3}}
    rows:requires_grad(true)
    rows:std(2):sum():backward()
    local g = rows.grad:totable()
    same(g[1], {0, 0}, 0, "the constant row")
    near(g[2][1], -1 / math.sqrt(2), 1e-6, "the other row: (x - mean) / ((n - 1) std)")
  end)

  it("powers at 0 have torch's gradients, not NaN or -inf", function()
    same(grad_of({0, 1, 2}, function(x) return x:pow(0) end), {0, 0, 0}, 0, "x^0")
    local a, b = lm.tensor{0, 0, 0, 2}, lm.tensor{0, 1, 2, 0}
    a:requires_grad(true); b:requires_grad(true)
    a:pow(b):sum():backward()
    same(a.grad:totable(), {0, 1, 0, 0}, 0, "d/da = b a^(b-1), 0 where b = 0")
    same(b.grad:totable(), {0, 0, 0, math.log(2)}, 1e-6, "d/db = y ln a, 0 where a = 0 and b >= 0")
    same(grad_of({0, 1, 2}, function(x) return 0 ^ x end), {0, 0, 0}, 0, "0^x for x >= 0")
  end)

  it("exp reaches FLT_MAX without NaN, and 0 and inf past it (sigmoid at -88.5 stopped a training run)", function()
    local e = lm.tensor{88.5, 88.625, 89, -200}:exp():totable() -- inputs exact in float
    near(e[1] / math.exp(88.5), 1, 1e-6)
    near(e[2] / math.exp(88.625), 1, 1e-6)
    eq(e[3], math.huge)
    eq(e[4], 0)
    local s = lm.tensor{-88.5, -88.7, 88.5}:sigmoid():totable()
    for i, v in ipairs(s) do truthy(v == v, "sigmoid " .. i .. " is not NaN") end
    eq(s[3], 1)
  end)

  it("takes scalars beyond int32's range as floats (the fuzzer found the conversion undefined)", function()
    -- an int32 tensor plus an integral scalar stays int32; one int32 cannot
    -- hold is a float scalar, and the result float32 (UBSan checks the
    -- conversion in the sanitizer build)
    local i = lm.tensor({1, 2}, 'int32')
    eq((i + 3):dtype(), "int32")
    for _, s in ipairs{1e300, -1e300, 2 ^ 31, -(2 ^ 31) - 1, 0 / 0} do
      local r = i + s
      eq(r:dtype(), "float32", tostring(s))
      local got, want = r:totable()[1], lm.tensor(1 + s):item()
      truthy(got == want or (got ~= got and want ~= want), tostring(s) .. ": " .. got .. " against " .. want)
    end
    eq((lm.tensor({1, 2}) + -1e300):totable()[2], -math.huge)
  end)

  it("lets NaN through ReLU, as torch does", function()
    local y = lm.tensor{0 / 0, -1, 2}:relu():totable()
    truthy(y[1] ~= y[1], "NaN stays NaN")
    same({y[2], y[3]}, {0, 2})
  end)

  it("gives no negative squared distance between far-away, nearby points", function()
    lm.manual_seed(2)
    local p = lm.randn(64, 8) * 0.1 + 1000
    truthy(F.squared_distances(p):min():item() >= 0)
    local q = p:clone()
    q:requires_grad(true)
    truthy(F.squared_distances(q):min():item() >= 0, "with gradients too")
  end)
end)
