-- Finite-difference gradient checks for every differentiable op, loss and
-- layer, on contiguous, non-contiguous (transposed, narrowed) and broadcast
-- inputs. Tolerances are explained in lm.autograd.gradcheck.
local lm = require 'lumen'
local F = lm.nn.functional
local nn = lm.nn
local gradcheck = lm.autograd.gradcheck

lm.manual_seed(11)

local function leaf(t) return t:requires_grad(true) end
local function randn(...) return leaf(lm.randn(...)) end
-- a non-contiguous leaf: the transpose of a fresh tensor
local function randn_t(r, c) return leaf(lm.randn(c, r)):t() end
local function positive(...) return leaf(lm.rand(...) + 0.5) end

local function check(name, fn, inputs, opts)
  it(name, function()
    local ok, msg = gradcheck(fn, inputs, opts)
    truthy(ok, msg)
  end)
end

describe("elementwise", function()
  check("add with broadcasting", function(a, b) return a + b end, {randn(3, 4), randn(4)})
  check("sub with a column", function(a, b) return a - b end, {randn(3, 4), randn(3, 1)})
  check("mul, non-contiguous", function(a, b) return a * b end, {randn_t(3, 4), randn(3, 4)})
  check("div", function(a, b) return a / b end, {randn(3, 4), positive(3, 4)})
  check("pow", function(a, b) return a ^ b end, {positive(2, 3), randn(2, 3)})
  check("scalar ops", function(a) return (2 - a) * 3 / 4 + 1 end, {randn(5)})
  check("scalar divided by tensor", function(a) return 2 / a end, {positive(5)})
  check("pow scalar", function(a) return a ^ 3 end, {randn(5)})
  check("neg", function(a) return -a end, {randn(4)})
  check("exp", function(a) return a:exp() end, {randn(2, 3)})
  check("log", function(a) return a:log() end, {positive(2, 3)})
  check("sqrt", function(a) return a:sqrt() end, {positive(2, 3)})
  check("abs", function(a) return a:abs() end, {randn(6)})
  check("tanh", function(a) return a:tanh() end, {randn_t(2, 3)})
  check("sigmoid", function(a) return a:sigmoid() end, {randn(2, 3)})
  check("relu", function(a) return a:relu() end, {randn(6)})
  check("elu", function(a) return a:elu() end, {randn(2, 5)})
  check("elu alpha 0.5", function(a) return a:elu(0.5) end, {randn(5)})
  check("clamp", function(a) return a:clamp(-0.5, 0.5) end, {randn(8)})
  check("maximum and minimum", function(a, b) return a:maximum(b) + a:minimum(b) * 2 end,
    {randn(6), randn(6)})
  check("where", function(a, b) return lm.where(a:gt(0), a, b) end, {randn(6), randn(1)})
end)

describe("reductions", function()
  check("sum all", function(a) return a:sum() end, {randn_t(3, 4)})
  check("sum over a dimension", function(a) return a:sum(1) end, {randn(3, 4)})
  check("sum keepdim", function(a) return a:sum(2, true) * a end, {randn(3, 4)})
  check("mean", function(a) return a:mean(2) end, {randn(3, 4)})
  check("mean all", function(a) return a:mean() end, {randn(3, 4)})
  check("max over a dimension", function(a) return (a:max(2)) end, {randn(3, 4)})
  check("max all", function(a) return a:max() end, {randn(3, 4)})
  check("min over a dimension", function(a) return (a:min(1)) end, {randn(3, 4)})
  check("var and std", function(a) return a:var(2) + a:std() end, {randn(3, 4)})
  check("sum, mean, var and std over lists of dimensions", function(a)
    local x = a:view(2, 3, 2)
    return x:sum({1, 3}) + x:mean({-1, 1}) + x:var({3, 1}) + x:std({1, 3}, true):view(3)
  end, {randn(3, 4)})
end)

describe("views and products", function()
  check("view and transpose", function(a) return a:view(2, 6):t() * 1 end, {randn(3, 4)})
  check("reshape of a transposed tensor", function(a) return a:reshape(12) * 1 end, {randn_t(3, 4)})
  check("permute", function(a) return a:permute(3, 1, 2) * 1 end, {randn(2, 3, 4)})
  check("narrow and select", function(a) return a:narrow(2, 2, 2) * a:select(2, 1):unsqueeze(2) end,
    {randn(3, 4)})
  check("expand", function(a) return a:expand(3, 4) * 1 end, {randn(3, 1)})
  check("squeeze and unsqueeze", function(a) return a:squeeze():unsqueeze(1) * 1 end, {randn(3, 1)})
  check("indexing x[i]", function(a) return a[2] * 2 end, {randn(3, 4)})
  check("contiguous and clone", function(a) return a:contiguous():clone() * 1 end, {randn_t(3, 4)})
  check("matmul", function(a, b) return lm.matmul(a, b) end, {randn(3, 4), randn_t(4, 2)})
  check("matmul vector", function(a, b) return lm.matmul(a, b) end, {randn(4), randn(4, 3)})
  check("matmul batched with broadcast", function(a, b) return lm.matmul(a, b) end,
    {randn(2, 3, 4), randn(4, 2)})
  check("cat", function(a, b) return lm.cat({a, b}, 2) * 1 end, {randn(2, 3), randn(2, 1)})
  check("stack", function(a, b) return lm.stack({a, b}) * 1 end, {randn(3), randn(3)})
end)

describe("layers and losses", function()
  check("linear", F.linear, {randn(5, 4), randn(3, 4), randn(3)})
  check("linear on a non-contiguous input", F.linear, {randn_t(5, 4), randn(3, 4)})
  check("softmax", function(a) return F.softmax(a, 2) end, {randn(3, 5)})
  check("softmax over dimension 1", function(a) return F.softmax(a, 1) end, {randn(3, 5)})
  check("log_softmax", function(a) return F.log_softmax(a, 2) end, {randn(3, 5)})
  check("cross_entropy", function(a) return F.cross_entropy(a, lm.tensor({1, 3, 2, 3}, 'int32')) end,
    {randn(4, 3)})
  check("mse", function(a, b) return F.mse(a, b) end, {randn(4, 3), randn(4, 3)})
  check("mse per sample", function(a, b) return F.mse(a, b, {reduction = 'none'}) end,
    {randn(4, 3), randn(4, 3)})
  local prior = lm.randn(6, 2) -- fixed: fn must be deterministic
  check("mmd", function(z) return F.mmd(z, prior) end, {randn(5, 2)})
  check("mmd with bandwidth and weight", function(z, p) return F.mmd(z, p, {bw = 0.5, weight = 3}) end,
    {randn(5, 2), randn(4, 2)})
  check("conv2d stride 2 padding 1", function(x, w, b) return F.conv2d(x, w, b, {stride = 2, padding = 1}) end,
    {randn(2, 2, 5, 5), randn(3, 2, 3, 3), randn(3)})
  -- grouped and dilated, under each CPU path (the depthwise kernel and
  -- im2col with a product a group)
  for _, algorithm in ipairs{"auto", "gemm"} do
    local function conv(opts)
      return function(x, w, b)
        local before = lm.get_conv_algorithm()
        lm.set_conv_algorithm(algorithm)
        local ok, y = pcall(F.conv2d, x, w, b, opts)
        lm.set_conv_algorithm(before)
        if not ok then error(y, 0) end
        return y
      end
    end
    check("conv2d groups 2, stride 2 (" .. algorithm .. ")", conv{stride = 2, padding = 1, groups = 2},
      {randn(2, 4, 5, 6), randn(4, 2, 3, 3), randn(4)})
    check("conv2d depthwise, 2 filters a channel (" .. algorithm .. ")", conv{padding = 1, groups = 3},
      {randn(2, 3, 5, 4), randn(6, 1, 3, 3), randn(6)})
    check("conv2d depthwise stride 2 dilation {2, 1} (" .. algorithm .. ")",
      conv{stride = 2, padding = 2, dilation = {2, 1}, groups = 2}, {randn(1, 2, 7, 6), randn(2, 1, 3, 3), randn(2)})
    check("conv2d dilation 2 (" .. algorithm .. ")", conv{padding = 1, dilation = 2},
      {randn(2, 2, 6, 5), randn(3, 2, 3, 3), randn(3)})
  end
  check("max_pool2d", function(x) return F.max_pool2d(x, 2) end, {randn(1, 2, 4, 4)})
  check("avg_pool2d with padding", function(x) return F.avg_pool2d(x, 3, {stride = 2, padding = 1}) end,
    {randn(1, 2, 5, 5)})
  check("global_avg_pool2d", F.global_avg_pool2d, {randn(2, 3, 3, 3)})
  check("dropout in evaluation is the identity", function(x) return F.dropout(x, 0.3, false) end, {randn(6)})
  it("dropout in training scales the kept elements", function()
    lm.manual_seed(5)
    local x = leaf(lm.ones(1000))
    local y = F.dropout(x, 0.25, true)
    y:sum():backward()
    local kept = y:gt(0):sum():item()
    near(kept / 1000, 0.75, 0.05)
    near(y:max():item(), 1 / 0.75, 1e-6)
    same(x.grad:totable(), y:detach():totable(), 1e-6) -- d(sum)/dx = mask / (1 - p)
  end)
end)

describe("modules", function()
  local function module_check(name, make, input)
    it(name, function()
      lm.manual_seed(3)
      local m = make()
      local params = m:parameters()
      local inputs = {input}
      for _, p in ipairs(params) do inputs[#inputs + 1] = p end
      local ok, msg = gradcheck(function(x) return m(x) end, inputs)
      truthy(ok, msg)
    end)
  end
  module_check("Linear + ELU + Sigmoid", function()
    return nn.Sequential(nn.Linear(4, 3), nn.ELU(), nn.Linear(3, 2), nn.Sigmoid())
  end, randn(5, 4))
  module_check("Conv2d + Tanh + GlobalAvgPool2d", function()
    return nn.Sequential(nn.Conv2d(2, 3, 3, {stride = 2, padding = 1}), nn.Tanh(), nn.GlobalAvgPool2d())
  end, randn(2, 2, 5, 5))
  module_check("MaxPool2d, AvgPool2d, Flatten, Softmax", function()
    return nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(1), nn.Flatten(), nn.Linear(8, 3), nn.Softmax(2))
  end, randn(2, 2, 4, 4))
  module_check("Reshape, ReLU, LogSoftmax, Identity, Dropout (evaluation)", function()
    local m = nn.Sequential(nn.Reshape(2, 3), nn.ReLU(), nn.Flatten(), nn.LogSoftmax(2), nn.Identity(),
      nn.Dropout(0.5))
    return m:evaluate()
  end, (function() -- keep inputs away from ReLU's kink at 0 (finite differences straddle it)
    local r = lm.randn(2, 6)
    return leaf(r:sign() * (r:abs() + 0.1))
  end)())
end)

describe("gradcheck itself", function()
  it("leaves the inputs' gradients as the caller had them", function()
    local x = lm.randn(3):requires_grad(true)
    local y = lm.randn(3):requires_grad(true)
    x.grad = lm.full({3}, 7)
    truthy(lm.autograd.gradcheck(function(a, b) return a * b end, {x, y}))
    same(x.grad:totable(), {7, 7, 7})
    eq(y.grad, nil)
  end)

  it("takes a tensor passed twice as one input, whose gradient adds both uses", function()
    local x = lm.tensor({1, 2, 3}):requires_grad(true)
    x.grad = lm.full({3}, 7)
    local ok, why = lm.autograd.gradcheck(function(a, b) return a * b end, {x, x})
    truthy(ok, why)
    same(x.grad:totable(), {7, 7, 7}, 0, "the caller's gradient, untouched")
    -- and a wrong one is still found: d(a * b)/dx is 2x, not x
    local Half = lm.autograd.Function{
      forward = function(ctx, a, b) ctx:save_for_backward(a, b); return a * b end,
      backward = function(ctx, g) return g * ctx.saved[2] * 0.5, g * ctx.saved[1] * 0.5 end,
    }
    truthy(not lm.autograd.gradcheck(function(a, b) return Half(a, b) end, {x, x}), "a halved backward")
  end)

  it("leaves a non-leaf input's graph and its leaf as they were", function()
    local base = lm.randn(2, 3):requires_grad(true)
    local v = base:narrow(2, 1, 2)
    truthy(lm.autograd.gradcheck(function(a) return a:exp() end, {v}))
    eq(v:retains_grad(), false)
    eq(base.grad, nil)
    ;(v * 2):sum():backward() -- the caller's graph through narrow is still there
    same(base.grad:totable(), {{2, 2, 0}, {2, 2, 0}})
  end)
end)

describe("custom functions", function()
  local Cube = lm.autograd.Function{
    forward = function(ctx, x) ctx:save_for_backward(x); return x * x * x end,
    backward = function(ctx, g) local x = ctx.saved[1]; return g * x * x * 3 end,
  }
  check("a Lua backward", function(x) return Cube(x) end, {randn(5)})
end)

-- The check itself must reject wrong gradients: each of these backward rules
-- is deliberately wrong in one way, and gradcheck must say so, naming the
-- input and element.
describe("gradcheck rejects a wrong backward", function()
  -- exp whose backward is scaled by `factor`, optionally wrong in one element
  local function exp_with(factor, bad_element)
    return lm.autograd.Function{
      forward = function(ctx, x) local y = x:exp(); ctx:save_for_backward(y); return y end,
      backward = function(ctx, g)
        local d = g * ctx.saved[1] * factor
        if bad_element then d = d:clone(); d[bad_element] = -d[bad_element] end
        return d
      end,
    }
  end
  local function rejected(name, fn, inputs, needle)
    it(name, function()
      local ok, msg = gradcheck(fn, inputs)
      eq(ok, false, "gradcheck accepted it")
      truthy(msg:find(needle, 1, true), "the message names the element: " .. tostring(msg))
    end)
  end
  local x = leaf(lm.tensor{0.3, -0.2, 0.5, 0.1, -0.4})
  it("accepts the correct rule (the control)", function()
    local ok, msg = gradcheck(function(a) return exp_with(1)(a) end, {x})
    truthy(ok, msg)
  end)
  rejected("2 % too large", function(a) return exp_with(1.02)(a) end, {x}, "input 1, element ")
  rejected("1 % too small", function(a) return exp_with(0.99)(a) end, {x}, "input 1, element ")
  rejected("one element of five with the wrong sign", function(a) return exp_with(1, 4)(a) end, {x},
    "input 1, element 4:")
  rejected("no gradient for the second input", function(a, b)
    return lm.autograd.Function{
      forward = function(ctx, p, q) ctx:save_for_backward(q); return p * q end,
      backward = function(ctx, g) return g * ctx.saved[1], nil end,
    }(a, b)
  end, {leaf(lm.tensor{1.5, 2}), leaf(lm.tensor{0.5, -1})}, "input 2, element 1:")
  rejected("a broadcast operand's gradient not summed over the broadcast rows", function(a, b)
    return lm.autograd.Function{
      forward = function(_, p, q) return p + q end,
      backward = function(_, g) return g, g:narrow(1, 1, 1):view(3) end, -- only the first row
    }(a, b)
  end, {randn(4, 3), randn(3)}, "input 2, element 1:")
end)

-- GELU and the transformer layers, with their own seed so that the inputs
-- drawn above stay what they were.
describe("GELU and transformer layers", function()
  lm.manual_seed(17)
  check("gelu (exact), non-contiguous", function(a) return a:gelu() end, {randn_t(3, 4)})
  check("gelu (tanh form)", function(a) return F.gelu(a, {approximate = 'tanh'}) end, {randn(2, 5)})
  check("layer_norm over the last two dimensions", function(x, w, b) return F.layer_norm(x, {3, 4}, w, b) end,
    {randn(2, 3, 4), randn(3, 4), randn(3, 4)})

  -- parameters drawn afresh (LayerNorm's ones and zeros would hide mistakes)
  local function module_check(name, make, input)
    it(name, function()
      lm.manual_seed(3)
      local m = make()
      lm.no_grad(function()
        for _, p in ipairs(m:parameters()) do p:copy_(lm.randn(p:shape()) * 0.5) end
      end)
      local inputs = {input}
      for _, p in ipairs(m:parameters()) do inputs[#inputs + 1] = p end
      local ok, msg = gradcheck(function(x) return m(x) end, inputs)
      truthy(ok, msg)
    end)
  end
  module_check("LayerNorm + GELU", function()
    return nn.Sequential(nn.LayerNorm(4), nn.GELU(), nn.Linear(4, 3), nn.GELU('tanh'))
  end, randn(3, 4))
  -- the output and the attention weights, both differentiated; the masks
  -- (int32: 1 = masked) leave every query a key
  local Probe = nn.Module:extend("AttentionProbe")
  function Probe:init() self:child("mha", nn.MultiheadAttention(4, 2)) end
  function Probe:forward(x)
    local mask = lm.tensor({{0, 1, 1}, {0, 0, 1}, {0, 0, 0}}, 'int32')
    local padding = lm.tensor({{0, 0, 1}, {0, 0, 0}}, 'int32')
    local out, weights = self.mha:forward(x, x, x, {attn_mask = mask, key_padding_mask = padding})
    return out + lm.matmul(weights, x)
  end
  module_check("MultiheadAttention with an attention mask and a key padding mask", Probe, randn(2, 3, 4))
  module_check("TransformerEncoderLayer (norm first, GELU)", function()
    return nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 6, dropout = 0, activation = 'gelu',
      norm_first = true})
  end, randn(2, 3, 4))
  -- (GELU: finite differences straddle ReLU's kink; ReLU is compared with PyTorch)
  module_check("TransformerEncoderLayer (post-norm)", function()
    return nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 6, dropout = 0, activation = 'gelu'})
  end, randn(2, 3, 4))
end)

-- the elementwise ops added after the others (drawn last: the checks above keep their inputs)
describe("more elementwise", function()
  -- kinks at 0: inputs at least 0.1 away from it, farther than the finite differences reach
  local function off_zero(...)
    local t = lm.randn(...)
    return leaf(t + t:sign() * 0.1)
  end
  check("leaky_relu", function(a) return a:leaky_relu() end, {off_zero(2, 5)})
  check("leaky_relu slope 0.3, non-contiguous", function(a) return a:leaky_relu(0.3) end, {off_zero(4, 3):t()})
  check("F.leaky_relu negative slope", function(a) return F.leaky_relu(a, -0.5) end, {off_zero(6)})
  check("nn.LeakyReLU", function(a) return nn.LeakyReLU(0.2)(a) end, {off_zero(6)})
  -- piecewise constant: the tape's gradient is zero, and so are the finite
  -- differences away from the steps (each input 0.1 to 0.4 above a whole number)
  for _, op in ipairs({"floor", "ceil", "round", "trunc"}) do
    check(op, function(a) return a[op](a) * 3 end,
      {leaf((lm.rand(6) * 0.3 + 0.1 + lm.tensor({-3, -2, -1, 0, 1, 2})):detach())})
  end
  check("log1p", function(a) return a:log1p() end, {leaf(lm.rand(2, 3) - 0.5)})
  check("expm1", function(a) return a:expm1() end, {randn_t(2, 3)})
  check("log2", function(a) return a:log2() end, {positive(2, 3)})
  check("log10", function(a) return a:log10() end, {positive(2, 3)})
  check("reciprocal", function(a) return a:reciprocal() end, {positive(5)})
  check("rsqrt", function(a) return a:rsqrt() end, {positive(2, 3)})
  check("square", function(a) return a:square() end, {randn(5)})
  check("erf", function(a) return a:erf() end, {randn_t(2, 3)})
  check("F.softplus", function(a) return F.softplus(a) end, {randn_t(2, 3)})
  -- beta 2, threshold 1: beta x on both sides of it, 0.1 or more away
  check("F.softplus beta and threshold", function(a) return F.softplus(a, 2, 1) end,
    {leaf(lm.tensor({-1.5, -0.2, 0.2, 0.35, 0.65, 1.4}))})
  -- torch's other activations, on values away from their kinks (-3, 0, 3, +-lambd, the threshold)
  local function away() return leaf(lm.tensor({{-4.2, -2.5, -1.1, -0.3}, {0.4, 1.2, 2.2, 4.5}})) end
  for _, fn in ipairs{"hardswish", "hardsigmoid", "mish", "selu", "logsigmoid", "softsign", "tanhshrink", "silu"} do
    check("F." .. fn, function(a) return F[fn](a) end, {away()})
  end
  check("F.celu alpha 0.7", function(a) return F.celu(a, 0.7) end, {away()})
  check("F.hardshrink lambd 0.2", function(a) return F.hardshrink(a, 0.2) end, {away()})
  check("F.softshrink lambd 1", function(a) return F.softshrink(a, 1) end, {away()})
  check("F.threshold 0.1, -2", function(a) return F.threshold(a, 0.1, -2) end, {away()})
  check("F.prelu, one slope a channel", function(a, w) return F.prelu(a, w) end,
    {leaf(lm.tensor({{{-1.5, 0.7}, {0.3, -0.4}, {2, -2}}, {{0.5, -0.9}, {-1.2, 1.1}, {-0.6, 0.8}}})),
      leaf(lm.tensor({0.25, -0.5, 1.5}))})
  check("F.prelu, one slope", function(a, w) return F.prelu(a, w) end, {away(), leaf(lm.tensor({0.3}))})
  check("F.glu along dimension 1", function(a) return F.glu(a, 1) end, {randn_t(4, 3)})
  check("F.softmin", function(a) return F.softmin(a, 2) end, {randn(3, 4)})
end)

-- gather, scatter_add and cumsum (drawn last: the checks above keep their inputs)
describe("indexing and scans", function()
  -- duplicates in the index: gather's gradient adds up where a position is read twice
  local idx = lm.tensor({{3, 1, 3}, {2, 2, 4}}, 'int32')
  check("gather along dim 2, duplicates", function(a) return a:gather(2, idx) end, {randn(3, 4)})
  check("gather along dim 1, non-contiguous", function(a) return a:gather(1, lm.tensor({{3, 1, 3, 2}}, 'int32')) end,
    {randn_t(3, 4)})
  check("scatter_add, duplicates", function(a, s) return a:scatter_add(-1, idx, s) end, {randn(2, 4), randn(2, 3)})
  check("cumsum", function(a) return a:cumsum(2) end, {randn(3, 4)})
  check("cumsum along dim 1, non-contiguous", function(a) return a:cumsum(-2) end, {randn_t(3, 4)})
end)
