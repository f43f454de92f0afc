-- Layer normalisation as one op (F._layer_norm, the CPU's fused kernel):
-- F.layer_norm takes it on the CPU, and it must give its composed form's
-- values and gradients (F._layer_norm_composed, itself compared with
-- PyTorch through nn.LayerNorm in torch_transformer_spec.lua), with and
-- without weight and bias, over one or several dimensions, at any thread
-- count; its gradient is checked by finite differences and its misuse gives
-- clear errors.
local lm = require 'lumen'
local F = lm.nn.functional

-- value and gradients of sum(f(x, w, b) * r) for a fixed random r
local function value_and_grads(f, x, w, b, r)
  local xi = x:clone():requires_grad(true)
  local wi = w and w:clone():requires_grad(true)
  local bi = b and b:clone():requires_grad(true)
  local y = f(xi, wi, bi)
  local loss = (y * r):sum()
  loss:backward()
  return y:detach(), xi.grad, wi and wi.grad, bi and bi.grad
end

local function compare(shape, k, affine, what)
  lm.manual_seed(#shape + k)
  local x = lm.randn(shape) * 3 + 1
  local norm_shape = {}
  for i = #shape - k + 1, #shape do norm_shape[#norm_shape + 1] = shape[i] end
  local w = affine and lm.randn(norm_shape) or nil
  local b = affine and lm.randn(norm_shape) or nil
  local r = lm.randn(shape)
  local fused = {value_and_grads(function(xi, wi, bi) return F._layer_norm(xi, k, wi, bi, 1e-5) end, x, w, b, r)}
  local composed = {value_and_grads(function(xi, wi, bi) return F._layer_norm_composed(xi, k, wi, bi, 1e-5) end,
    x, w, b, r)}
  truthy(rel_error(fused[1], composed[1]) < 1e-6, what .. ": output " .. rel_error(fused[1], composed[1]))
  for i, name in ipairs({"x", "weight", "bias"}) do
    if composed[i + 1] then
      truthy(rel_error(fused[i + 1], composed[i + 1]) < 1e-5,
        what .. ": gradient of " .. name .. " " .. rel_error(fused[i + 1], composed[i + 1]))
    end
  end
end

describe("fused layer normalisation against the composed form", function()
  it("gives the same values and gradients", function()
    compare({4, 7}, 1, true, "rows of 7")
    compare({128, 65, 96}, 1, true, "the ViT's tokens") -- more rows than one block of 64
    compare({3, 5, 37}, 1, false, "no weight or bias")
    compare({2, 3, 4, 5}, 2, true, "over two dimensions")
    compare({6, 33}, 2, true, "over every dimension")
  end)

  it("is what F.layer_norm and nn.LayerNorm run on the CPU", function()
    local real, calls = F._layer_norm, 0
    F._layer_norm = function(...) calls = calls + 1; return real(...) end
    local ok, err = pcall(function()
      local m = lm.nn.LayerNorm(6)
      m(lm.randn(2, 6))
      F.layer_norm(lm.randn(3, 4), 4)
    end)
    F._layer_norm = real
    truthy(ok, err)
    eq(calls, 2)
  end)

  it("takes a weight without a bias and a bias without a weight", function()
    lm.manual_seed(3)
    local x, w, r = lm.randn(5, 8), lm.randn(8), lm.randn(5, 8)
    local f1 = {value_and_grads(function(xi, wi) return F._layer_norm(xi, 1, wi, nil, 1e-5) end, x, w, nil, r)}
    local c1 = {value_and_grads(function(xi, wi) return F._layer_norm_composed(xi, 1, wi, nil, 1e-5) end,
      x, w, nil, r)}
    truthy(rel_error(f1[3], c1[3]) < 1e-5, "weight gradient")
    local f2 = {value_and_grads(function(xi, _, bi) return F._layer_norm(xi, 1, nil, bi, 1e-5) end, x, nil, w, r)}
    local c2 = {value_and_grads(function(xi, _, bi) return F._layer_norm_composed(xi, 1, nil, bi, 1e-5) end,
      x, nil, w, r)}
    truthy(rel_error(f2[4], c2[4]) < 1e-5, "bias gradient")
    truthy(rel_error(f2[2], c2[2]) < 1e-5, "input gradient")
  end)

  it("gives the same bits at 1 and 2 threads", function()
    lm.manual_seed(8)
    local x, w, b, r = lm.randn(300, 40), lm.randn(40), lm.randn(40), lm.randn(300, 40)
    local threads = lm.get_num_threads()
    lm.set_num_threads(1)
    local one = {value_and_grads(function(xi, wi, bi) return F._layer_norm(xi, 1, wi, bi, 1e-5) end, x, w, b, r)}
    lm.set_num_threads(2)
    local two = {value_and_grads(function(xi, wi, bi) return F._layer_norm(xi, 1, wi, bi, 1e-5) end, x, w, b, r)}
    lm.set_num_threads(threads)
    for i = 1, 4 do eq(rel_error(one[i], two[i]), 0, "result " .. i) end
  end)

  it("sums the weight and bias gradients of a million rows without drift", function()
    local rows = 1048576
    local x = lm.randn(rows, 2)
    local w, b = lm.ones(2):requires_grad(true), lm.zeros(2):requires_grad(true)
    local y = F._layer_norm(x, 1, w, b, 1e-5)
    y:backward(lm.full({rows, 2}, 1.1))
    -- each g is float(1.1); their exact sum over the rows, in double
    local want = rows * lm.tensor({1.1}):item()
    local got = b.grad:totable()
    truthy(math.abs(got[1] - want) / want < 1e-6, "bias gradient " .. got[1] .. " against " .. want)
    truthy(math.abs(got[2] - want) / want < 1e-6, "bias gradient " .. got[2] .. " against " .. want)
  end)

  it("reports errors at the caller's line", function()
    local ok, err = pcall(function()
      local y = F.layer_norm(lm.zeros(2, 3), 3, lm.zeros(2)) -- not a tail call: this line is the caller's
      return y
    end)
    truthy(not ok and err:find("layer_norm_spec.lua:%d+: layer_norm: weight must have the normalised shape"),
      tostring(err))
  end)

  it("matches a hand-computed row", function()
    -- mean 2, variance 2/3: (x - 2) / sqrt(2/3 + eps)
    local y = F._layer_norm(lm.tensor({{1, 2, 3}}), 1, nil, nil, 0)
    local s = math.sqrt(2 / 3)
    same(y:totable(), {{-1 / s, 0, 1 / s}}, 1e-6)
  end)

  it("passes the finite-difference gradient check", function()
    lm.manual_seed(9)
    local x = lm.randn(3, 5):requires_grad(true)
    local w, b = lm.randn(5):requires_grad(true), lm.randn(5):requires_grad(true)
    local ok, msg = lm.autograd.gradcheck(function(a, c, d) return F._layer_norm(a, 1, c, d, 1e-5) end, {x, w, b})
    truthy(ok, msg)
  end)

  it("returns empty results for empty inputs", function()
    local x = lm.zeros(0, 4):requires_grad(true)
    local w = lm.ones(4):requires_grad(true)
    local y = F._layer_norm(x, 1, w, nil, 1e-5)
    same(y:shape(), {0, 4})
    y:sum():backward()
    same(w.grad:totable(), {0, 0, 0, 0})
  end)

  it("refuses wrong shapes, dims and eps with clear errors", function()
    raises(function() F._layer_norm(lm.zeros(2, 3), 1, lm.zeros(4), nil, 1e-5) end,
      "layer_norm: weight must have the normalised shape (the last 1 of input [2, 3]), got [4]")
    raises(function() F._layer_norm(lm.zeros(2, 3), 2, nil, lm.zeros(3), 1e-5) end,
      "layer_norm: bias must have the normalised shape (the last 2 of input [2, 3]), got [3]")
    raises(function() F._layer_norm(lm.zeros(2, 3), 3, nil, nil, 1e-5) end,
      "layer_norm: cannot normalise the last 3 dimensions of [2, 3]")
    raises(function() F._layer_norm(lm.zeros(2, 3), 1, nil, nil, -1) end,
      "layer_norm: eps must be finite and >= 0, got -1")
    raises(function() F._layer_norm(lm.zeros(2, 3, 'int32'), 1, nil, nil, 1e-5) end,
      "layer_norm: input must be float32, got int32")
  end)
end)
