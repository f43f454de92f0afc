-- Reductions over a list of dimensions (torch's x.sum((2, 3))): sum and
-- mean against one dimension at a time, var and std against the listed
-- dimensions' elements gathered into one row (the unbiased spread of all of
-- them together, not of the per-dimension results), keepdim's shapes,
-- negative and unordered lists, the empty list (every dimension, as torch
-- 1.13), empty tensors, and the errors. Gradients: tests/lua/gradcheck_spec.lua.
local lm = require 'lumen'

local function max_abs(a, b) return (a - b):abs():max():item() end

describe("x:sum, mean, var and std over a list of dimensions", function()
  lm.manual_seed(9)
  local x = lm.randn(2, 3, 4, 5)

  it("sum and mean equal reducing one dimension at a time", function()
    truthy(max_abs(x:sum({2, 4}), x:sum(4):sum(2)) < 1e-5, "sum {2, 4}")
    truthy(max_abs(x:mean({4, 3}, true), x:mean(4, true):mean(3, true)) < 1e-6, "mean {4, 3} keepdim")
    truthy(max_abs(x:sum({-1, 1}), x:sum(4):sum(1)) < 1e-5, "negative dimensions")
    same(x:sum({-1, 1}):shape(), {3, 4})
    same(x:mean({2, 3}, true):shape(), {2, 1, 1, 5})
    same(x:sum({2, 3}):shape(), {2, 5})
  end)

  it("var and std spread over all the listed elements together", function()
    -- dimensions 2 and 4 gathered into the last of [2, 4, 15]
    local gathered = x:permute(1, 3, 2, 4):reshape(2, 4, 15)
    truthy(max_abs(x:var({2, 4}), gathered:var(3)) < 1e-6, "var {2, 4}")
    truthy(max_abs(x:std({4, 2}, true), gathered:std(3):view(2, 1, 4, 1)) < 1e-6, "std {4, 2} keepdim")
    -- not the variance of the variances
    truthy(max_abs(x:var({2, 4}), x:var(4):var(2)) > 1e-3, "differs from reducing in turn")
  end)

  it("an empty list reduces every dimension, as torch 1.13", function()
    near(x:sum({}):item(), x:sum():item(), 1e-4)
    same(x:sum({}):shape(), {})
    same(x:mean({}, true):shape(), {1, 1, 1, 1})
    near(x:var({}):item(), x:var():item(), 1e-6)
  end)

  it("empty tensors", function()
    local z = lm.zeros(0, 3)
    same(z:sum({1}):view(-1):totable(), {0, 0, 0})
    same(z:sum({2}):shape(), {0})
    same(z:mean({1, 2}, true):shape(), {1, 1})
  end)

  it("names what is wrong in the list", function()
    raises(function() return x:sum({2, 2}) end, "sum: dimension 2 is listed twice")
    raises(function() return x:mean({2, -3}) end, "mean: dimension 2 is listed twice")
    raises(function() return x:var({5}) end, "var: dimension 5 out of range for a 4-D tensor")
    raises(function() return x:std({1.5}) end, "std: dims must hold whole numbers, got 1.5 at position 1")
    raises(function() return x:sum({"a"}) end, "sum: dims must hold whole numbers, got \"a\" at position 1")
    raises(function() return x:max({1, 2}) end, "max: takes one dimension, got a list")
    raises(function() return x:min({1}) end, "min: takes one dimension, got a list")
    -- one dimension as before
    same(x:max(2):shape(), {2, 4, 5})
  end)
end)
