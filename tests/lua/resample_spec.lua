-- F.pad and F.interpolate without torch: values worked out by hand, and
-- finite-difference gradient checks of every mode (on transposed inputs
-- too). tests/lua/torch_resample_spec.lua compares them with torch 1.13.
local lm = require 'lumen'
local F = lm.nn.functional
local gradcheck = lm.autograd.gradcheck

lm.manual_seed(13)

local function row(t) return t:reshape(-1):totable() end
local line = lm.tensor{{{0, 1, 2, 3, 4, 5}}}

describe("F.pad by hand", function()
  it("constant, with a value and a crop", function()
    same(row(F.pad(line, {2, -1}, {value = 9})), {9, 9, 0, 1, 2, 3, 4})
  end)
  it("reflect, replicate and circular, with negative entries", function()
    same(row(F.pad(line, {2, 3}, {mode = "reflect"})), {2, 1, 0, 1, 2, 3, 4, 5, 4, 3, 2})
    same(row(F.pad(line, {-1, 5}, {mode = "reflect"})), {1, 2, 3, 4, 5, 4, 3, 2, 1, 0})
    same(row(F.pad(line, {2, -3}, {mode = "replicate"})), {0, 0, 0, 1, 2})
    same(row(F.pad(line, {-3, 2}, {mode = "circular"})), {3, 4, 5, 3, 4})
    same(row(F.pad(line, {2, -3}, "circular")), {1, 2, 0, 1, 2})
  end)
  it("reflect's gradient adds up at the positions read twice", function()
    local x = lm.ones(1, 1, 4):requires_grad(true)
    F.pad(x, {2, 1}, {mode = "reflect"}):sum():backward()
    same(row(x.grad), {1, 2, 3, 1}) -- the output reads x[2] twice and x[3] three times (1-based)
  end)
end)

describe("F.interpolate by hand", function()
  it("nearest x2 and x0.5, linear with and without align_corners", function()
    same(row(F.interpolate(line, {scale_factor = 2})), {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5})
    same(row(F.interpolate(line, {scale_factor = 0.5})), {0, 2, 4})
    same(row(F.interpolate(line, {size = 11, mode = "linear", align_corners = true})),
      {0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5})
    -- half-pixel centres: output 0 sits at -0.25, clamped to 0; output 1 at 0.25
    local y = row(F.interpolate(line, {scale_factor = 2, mode = "linear"}))
    eq(y[1], 0)
    near(y[2], 0.25, 1e-7)
    eq(y[12], 5)
  end)
end)

describe("F.pad and F.interpolate gradients (finite differences)", function()
  local function check(name, fn, x)
    it(name, function()
      local ok, msg = gradcheck(fn, {x})
      truthy(ok, msg)
    end)
  end
  local function img(transposed)
    if transposed then return lm.randn(1, 2, 5, 4):requires_grad(true):transpose(3, 4) end
    return lm.randn(1, 2, 4, 5):requires_grad(true)
  end
  for _, mode in ipairs{"constant", "reflect", "replicate", "circular"} do
    check("pad " .. mode, function(x) return F.pad(x, {2, -1, 3, 1}, {mode = mode}) end, img(true))
  end
  for _, mode in ipairs{"nearest", "nearest-exact", "bilinear", "bicubic"} do
    check("interpolate " .. mode .. " x1.7", function(x) return F.interpolate(x, {scale_factor = 1.7, mode = mode}) end,
      img(true))
    check("interpolate " .. mode .. " to 3x7", function(x) return F.interpolate(x, {size = {3, 7}, mode = mode}) end,
      img(false))
  end
  check("interpolate linear, align_corners", function(x)
    return F.interpolate(x, {size = 9, mode = "linear", align_corners = true})
  end, lm.randn(2, 3, 5):requires_grad(true))
end)
