-- The conveniences composed in Lua (lua/lumen/conveniences.lua: x:softmax,
-- x:log_softmax, x:softplus, x:masked_fill, x:sort, lm.linspace, lm.eye;
-- F.hardtanh, F.relu6) against PyTorch: tests/torch/conveniences_reference.py
-- writes inputs, torch's outputs and torch's gradients of sum(y * g), and
-- every manifest case is replayed here. Then what torch is not needed for:
-- the *_like functions, randint, any / all, nn.Unflatten, the modules'
-- defaults and reprs, and the errors (at the caller's line).
local lm = require 'lumen'
local json = require 'lumen.json'
local F = lm.nn.functional
local nn = lm.nn

-- same() over tensors (as nested tables) or tables
local function same_t(got, want, tol, what)
  if lm.is_tensor(got) then got = got:totable() end
  if lm.is_tensor(want) then want = want:totable() end
  same(got, want, tol or 0, what)
end

local refused = dofile("tests/helpers/refused.lua")("torch_conveniences_spec.lua", raises, truthy)

describe("conveniences without torch", function()
  it("x:softmax and x:log_softmax are F's", function()
    local x = lm.randn(3, 4)
    same_t(x:softmax(), F.softmax(x), 0)
    same_t(x:log_softmax(1), F.log_softmax(x, 1), 0)
    same_t(x:softplus(2, 5), F.softplus(x, 2, 5), 0)
    refused(function() local _ = x:softmax(3) end, "softmax: dimension 3 out of range for a 2-D tensor")
    refused(function() local _ = lm.ones(2, 'int32'):log_softmax() end, "log_softmax: input must be float32, got int32")
    refused(function() local _ = x:softplus("2") end, 'softplus: beta must be a number, got "2"')
  end)

  it("x:masked_fill", function()
    local x = lm.tensor{{1, 2}, {3, 4}}
    same_t(x:masked_fill(lm.tensor({0, 1}, 'uint8'), 9):totable(), {{1, 9}, {3, 9}})
    same_t(x:masked_fill(lm.tensor{{0 / 0}, {0}}, -1):totable(), {{-1, -1}, {3, 4}}, 0, "NaN is nonzero")
    eq(lm.tensor({1, 2}, 'int32'):masked_fill(lm.tensor{1, 0}, 7):dtype(), "int32")
    refused(function() local _ = x:masked_fill(lm.ones(3), 0) end,
      "masked_fill: the mask's shape 3 and the input's shape 2x2 do not broadcast")
    eq(x:masked_fill(lm.ones(2, 2, 2), 0):shape_string(), "2x2x2", "a larger mask broadcasts x, as torch's")
    refused(function() local _ = x:masked_fill({1, 0}, 0) end, "masked_fill: mask must be a tensor, got a table")
    refused(function() local _ = x:masked_fill(lm.ones(2), "0") end, 'masked_fill: value must be a number, got "0"')
  end)

  it("x:sort and x:argsort: ties keep their order, NaN last, errors", function()
    local v, i = lm.tensor{3, 1, 3, 0 / 0, 2, 1}:sort()
    same_t(i, {2, 6, 5, 1, 3, 4})
    truthy(v[6] ~= v[6], "NaN last")
    same_t(lm.tensor{3, 1, 3, 0 / 0, 2, 1}:argsort(1, true), {1, 3, 5, 2, 6, 4})
    local e, ei = lm.zeros(2, 0):sort()
    eq(e:shape_string(), "2x0")
    eq(ei:dtype(), "int32")
    refused(function() local _ = lm.ones(2, 2):sort(3) end, "sort: dimension 3 out of range for a 2-D tensor")
    refused(function() local _ = lm.ones(2, 2):argsort(0) end, "argsort: dimension 0 out of range")
    refused(function() local _ = lm.ones(2, 'int32'):sort() end, "sort: needs a float32 tensor, got int32")
    refused(function() local _ = lm.ones(2):sort(1, 1) end, "sort: descending must be true or false, got 1")
  end)

  it("x:any and x:all", function()
    eq(lm.tensor{0, 0, 2}:any(), true)
    eq(lm.tensor{0, 0, 2}:all(), false)
    eq(lm.tensor{{1, -1}, {0 / 0, 3}}:all(), true)
    eq(lm.zeros(3):any(), false)
    eq(lm.zeros(0):any(), false)
    eq(lm.zeros(0):all(), true)
    eq(lm.tensor({1, 1}, 'uint8'):all(), true)
    eq(lm.tensor({0, 0}, 'int32'):any(), false)
  end)

  it("the *_like functions", function()
    local x = lm.randn(2, 3)
    local z = lm.zeros_like(x)
    same_t({z:shape_string(), z:dtype(), z:device(), z:sum():item()}, {"2x3", "float32", "cpu", 0})
    eq(lm.ones_like(x, 'int32'):dtype(), "int32")
    eq(lm.ones_like(lm.zeros({}, 'int32')):dim(), 0)
    same_t(lm.full_like(x, 2.5):totable(), {{2.5, 2.5, 2.5}, {2.5, 2.5, 2.5}})
    lm.manual_seed(3)
    local r = lm.rand_like(x)
    lm.manual_seed(3)
    same_t(r, lm.rand(2, 3), 0, "rand_like draws as rand")
    eq(lm.randn_like(lm.zeros(4, 1)):shape_string(), "4x1")
    refused(function() local _ = lm.zeros_like(3) end, "zeros_like: x must be a tensor, got 3")
    refused(function() local _ = lm.ones_like(x, 'double') end,
      "ones_like: dtype must be 'float32', 'int32' or 'uint8', got \"double\"")
    refused(function() local _ = lm.full_like(x, "1") end, 'full_like: value must be a number, got "1"')
    refused(function() local _ = lm.rand_like(lm.zeros(2, 'int32')) end, "rand_like: x must be float32")
    refused(function() local _ = lm.randn_like({}) end, "randn_like: x must be a tensor, got a table")
  end)

  it("lm.randint: int32, uniform over [low, high), seeded", function()
    lm.manual_seed(11)
    local r = lm.randint(-3, 4, 1000)
    same_t({r:dtype(), r:shape_string()}, {"int32", "1000"})
    local counts = {}
    for _, v in ipairs(r:totable()) do counts[v] = (counts[v] or 0) + 1 end
    for v = -3, 3 do truthy((counts[v] or 0) > 100, "every value drawn often: " .. v) end
    eq(r:min():item(), -3)
    eq(r:max():item(), 3)
    lm.manual_seed(11)
    same_t(lm.randint(-3, 4, {1000}), r, 0, "the same seed, the same numbers")
    same_t(lm.randint(5, 6, 2, 2), {{5, 5}, {5, 5}})
    refused(function() local _ = lm.randint(2, 2, 3) end, "randint: high (2) must be greater than low (2)")
    refused(function() local _ = lm.randint(0.5, 2, 3) end, "randint: low must be an integer, got 0.5")
    refused(function() local _ = lm.randint(0, 2 ^ 30, 3) end, "randint: the range must lie in int32's")
    refused(function() local _ = lm.randint(0, 2) end, "randint: give a shape")
  end)

  it("lm.eye and lm.linspace: edge cases and errors", function()
    eq(lm.eye(0):shape_string(), "0x0")
    eq(lm.linspace(0, 1, 0):numel(), 0)
    refused(function() local _ = lm.eye(-1) end, "eye: n must be a non-negative integer, got -1")
    refused(function() local _ = lm.eye(2, 1.5) end, "eye: m must be a non-negative integer, got 1.5")
    refused(function() local _ = lm.linspace(0, 1, 2.5) end, "linspace: steps must be a non-negative integer, got 2.5")
    refused(function() local _ = lm.linspace(0, "1", 2) end, 'linspace: stop must be a number, got "1"')
  end)

  it("nn.Softplus, nn.Hardtanh, nn.ReLU6, nn.Unflatten", function()
    local x = lm.randn(4, 6)
    same_t(nn.Softplus()(x), F.softplus(x), 0)
    same_t(nn.Softplus(2, 5)(x), F.softplus(x, 2, 5), 0)
    eq(tostring(nn.Softplus()), "nn.Softplus(beta = 1, threshold = 20)")
    same_t(nn.Hardtanh()(x), x:clamp(-1, 1), 0)
    same_t(nn.Hardtanh(-0.5, 2)(x), x:clamp(-0.5, 2), 0)
    eq(tostring(nn.Hardtanh()), "nn.Hardtanh(min_val = -1, max_val = 1)")
    same_t(nn.ReLU6()(x * 5), (x * 5):clamp(0, 6), 0)
    eq(nn.Unflatten(2, {2, 3})(x):shape_string(), "4x2x3")
    eq(nn.Unflatten(-1, {-1, 2})(x):shape_string(), "4x3x2")
    eq(nn.Unflatten(1, {2, 2})(x):shape_string(), "2x2x6")
    eq(tostring(nn.Unflatten(2, {2, 3})), "nn.Unflatten(2, {2, 3})")
    refused(function() local _ = nn.Hardtanh(1, 1) end, "nn.Hardtanh: min_val (1) must be less than max_val (1)")
    refused(function() local _ = nn.Hardtanh("a") end, 'nn.Hardtanh: min_val must be a number, got "a"')
    refused(function() local _ = F.hardtanh(x, 0 / 0, 1) end, "hardtanh: min_val (")
    refused(function() local _ = F.hardtanh(x, 2, 1) end, "hardtanh: min_val (2) must be less than max_val (1)")
    refused(function() local _ = F.relu6(5) end, "relu6: input must be a tensor, got 5")
    refused(function() local _ = nn.Softplus(nil, "t") end, 'nn.Softplus: threshold must be a number, got "t"')
    refused(function() local _ = nn.Unflatten(0, {2}) end, "nn.Unflatten: dim must be a nonzero integer")
    refused(function() local _ = nn.Unflatten(2, 6) end, "nn.Unflatten: sizes must be a table, got 6")
    refused(function() local _ = nn.Unflatten(2, {-1, -1}) end, "nn.Unflatten: at most one size may be -1")
    refused(function() local _ = nn.Unflatten(2, {2, 1.5}) end, "nn.Unflatten: sizes[2] must be a non-negative")
    refused(function() local _ = nn.Unflatten(2, {4, 4})(x) end,
      "nn.Unflatten: size 6 of dimension 2 cannot become 4x4")
    refused(function() local _ = nn.Unflatten(3, {1})(x) end, "nn.Unflatten: dimension 3 out of range for a 2-D input")
  end)
end)

describe("conveniences at their edges (found by review)", function()
  it("any and all count past 2^24 elements and refuse a dim they would ignore", function()
    -- a float32 sum of the mask stopped at 2^24: ones(2^24 + 1):all() was false
    eq(lm.ones(16777217):all(), true)
    eq(lm.zeros(16777217):any(), false)
    eq(lm.tensor({0, 0 / 0}):any(), true, "NaN is nonzero")
    eq(lm.tensor({}):all(), true)
    eq(lm.tensor({}):any(), false)
    refused(function() lm.tensor({{0, 1}, {0, 0}}):any(1) end,
      "any: takes no arguments (a whole-tensor test: no dim), got 1")
  end)

  it("masked_fill broadcasts the input with the mask, as torch's out-of-place masked_fill", function()
    local y = lm.zeros(3):masked_fill(lm.tensor({{1, 0, 0}, {0, 0, 1}}), 5)
    same(y:totable(), {{5, 0, 0}, {0, 0, 5}})
    refused(function() lm.zeros(3):masked_fill(lm.ones(2, 4), 5) end,
      "masked_fill: the mask's shape 2x4 and the input's shape 3 do not broadcast")
  end)

  it("Unflatten works out -1 from its dimension alone, an empty batch too", function()
    eq(lm.nn.Unflatten(2, {-1, 3})(lm.zeros(0, 6)):shape_string(), "0x2x3")
    eq(lm.nn.Unflatten(2, {-1, 3})(lm.zeros(2, 6)):shape_string(), "2x2x3")
    refused(function() lm.nn.Unflatten(2, {-1, 4})(lm.zeros(2, 6)) end,
      "nn.Unflatten: size 6 of dimension 2 cannot become -1x4")
  end)

  it("names the method or function in its errors", function()
    refused(function() lm.zeros(3):softmax("a") end, 'softmax: dim must be an integer, got "a"')
    refused(function() lm.zeros(3):log_softmax(1.5) end, "log_softmax: dim must be an integer, got 1.5")
    refused(function() lm.eye(2 ^ 31) end, "eye: shape is too large")
    refused(function() lm.randint(0, 2, -1) end, "randint: sizes must be >= 0")
  end)

  it("takes dimension -1 of a 0-D tensor as torch does", function()
    eq(lm.tensor(3):cumsum(-1):item(), 3)
    eq(lm.tensor(3):cumsum(1):item(), 3)
  end)
end)

describe("gradients of the conveniences (lm.autograd.gradcheck)", function()
  local function check(name, fn, inputs)
    it(name, function()
      local ok, msg = lm.autograd.gradcheck(fn, inputs)
      truthy(ok, msg)
    end)
  end
  local function leaf(t) return t:requires_grad(true) end
  lm.manual_seed(5)
  check("x:softmax over dimension 1", function(a) return a:softmax(1) end, {leaf(lm.randn(3, 4))})
  check("x:log_softmax, non-contiguous", function(a) return a:log_softmax() end, {leaf(lm.randn(4, 3)):t()})
  check("x:softplus(2, 3)", function(a) return a:softplus(2, 3) end, {leaf(lm.randn(8) * 0.5)})
  check("x:masked_fill with a broadcast mask", function(a) return a:masked_fill(lm.tensor{{1}, {0}, {1}}, 0.5) end,
    {leaf(lm.randn(3, 4))})
  -- off the bounds, where the numerical gradient is defined
  check("nn.Hardtanh(-0.5, 0.5)", function(a) return nn.Hardtanh(-0.5, 0.5)(a) end,
    {leaf(lm.tensor{-2, -0.7, -0.3, 0, 0.2, 0.45, 0.9, 3})})
  check("nn.ReLU6", function(a) return nn.ReLU6()(a) end, {leaf(lm.tensor{-1, 0.5, 3, 5.5, 7})})
end)

local py = dofile("tests/helpers/python.lua")
if not py.can_import("torch") then
  skip("/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed", true)
end

-- the reference's failure is this file's failure, with its output
local ref, meta = py.safetensors_reference("tests/torch/conveniences_reference.py", "conveniences.safetensors")
local manifest = json.decode(meta.manifest).cases

local TOL = 1e-6 -- relative to the largest value (torch's float32 kernels against Lumen's)

-- Lumen's twin of every kind of case: y from x (and the case's mask and arguments)
local differentiable = {
  softmax = function(x, a) return x:softmax(a.dim) end,
  log_softmax = function(x, a) return x:log_softmax(a.dim) end,
  softplus = function(x, a) return x:softplus(a.beta, a.threshold) end,
  masked_fill = function(x, a, case) return x:masked_fill(ref[case.name .. ".mask"], a.value) end,
  hardtanh = function(x, a) return nn.Hardtanh(a.min_val, a.max_val)(x) end,
  relu6 = function(x) return nn.ReLU6()(x) end,
  clamp = function(x, a) return x:clamp(a.min, a.max) end,
}

local function check_close(got, want, what, tol)
  eq(got:shape_string(), want:shape_string(), what .. ": shape")
  if want:numel() == 0 then return end
  local err = rel_error(got:detach(), want)
  if err ~= err then error(what .. ": NaN in the result or the reference", 0) end
  if err > tol then error(string.format("%s: relative error %.3g > %g", what, err, tol), 0) end
end

-- float32 values equal bit for bit (NaN never occurs here); the first difference is the error
local function check_bits(got, want, what)
  eq(got:shape_string(), want:shape_string(), what .. ": shape")
  local g, w = got:totable(), want:totable()
  for k = 1, #w do
    if g[k] ~= w[k] then error(string.format("%s: element %d is %.9g, torch %.9g", what, k, g[k], w[k]), 0) end
  end
end

local linspace_cases = 0

describe("conveniences against PyTorch", function()
  local checked = 0
  for _, case in ipairs(manifest) do
    local a, name = case.args, case.name
    it(name, function()
      if differentiable[case.kind] then
        local x = ref[name .. ".x"]:clone():requires_grad(true)
        local y = differentiable[case.kind](x, a, case)
        check_close(y, ref[name .. ".y"], name, TOL)
        local loss = (y * ref[name .. ".g"]):sum()
        loss:backward()
        check_close(x.grad, ref[name .. ".grad"], name .. " gradient", TOL)
      elseif case.kind == "linspace" then
        local y = lm.linspace(a.start, a.stop, a.steps)
        linspace_cases = linspace_cases + 1
        check_bits(y, ref[name .. ".y"], name) -- (bit for bit: a case that differs fails here)
      elseif case.kind == "eye" then
        same_t(lm.eye(a.n, a.m), ref[name .. ".y"], 0)
      elseif case.kind == "sort" then
        local x = ref[name .. ".x"]
        local values, indices = x:sort(a.dim, a.descending)
        same_t(values, ref[name .. ".y"], 0)
        eq(indices:dtype(), "int32")
        same_t(indices, ref[name .. ".indices"], 0)
        same_t(x:argsort(a.dim, a.descending), ref[name .. ".indices"], 0)
      else
        error("no Lumen twin of case kind '" .. case.kind .. "'", 0)
      end
      checked = checked + 1
    end)
  end

  it("checked every case of the manifest", function()
    truthy(#manifest >= 60, "the manifest lists the cases")
    eq(checked, #manifest, "cases checked")
    truthy(linspace_cases >= 25, "linspace cases")
  end)
end)
