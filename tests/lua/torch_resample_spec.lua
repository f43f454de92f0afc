-- Padding and resampling against torch 1.13 (tests/torch/resample_reference.py,
-- which defines the cases): F.pad in every mode with 2, 4, 6 and 8 entries,
-- negative (cropping) entries, reflect at its largest pad; F.interpolate in
-- every mode with scale factors 2, 0.5 and 1.7, sizes up and down,
-- align_corners both ways, on [N, C, L] and [N, C, H, W]; some on a
-- transposed view. Output and input gradient at 1e-5 relative error (max
-- |a - b| / max |b|); then the layers (nn.ZeroPad2d, nn.Upsample, ...)
-- against the functions. LUMEN_SPEC_VERBOSE=1 prints the worst error of each case.
local lm = require 'lumen'
local nn = lm.nn
local F = nn.functional

local py = dofile("tests/helpers/python.lua")
local dir, ref = py.torch_cases("tests/torch/resample_reference.py", skip)

local TOL = 1e-5
local verbose = os.getenv("LUMEN_SPEC_VERBOSE")

local function close(a, b, what)
  eq(a:shape_string(), b:shape_string(), what .. " shape")
  if b:numel() == 0 then return 0 end
  local err = rel_error(a, b)
  truthy(err <= TOL, string.format("%s: relative error %.3g", what, err))
  return err
end

local function run(case, x)
  if case.op == "pad" then return F.pad(x, case.pad, {mode = case.mode, value = case.value}) end
  return F.interpolate(x, {size = case.size, scale_factor = case.scale_factor, mode = case.mode,
    align_corners = case.align_corners, recompute_scale_factor = case.recompute_scale_factor})
end

describe("F.pad and F.interpolate against torch " .. ref.torch, function()
  local ran = {}
  for _, case in ipairs(ref.cases) do
    it(case.name .. ": output and input gradient", function()
      local t = lm.load(string.format("%s/%s.safetensors", dir, case.name))
      local leaf = t.x:clone():requires_grad(true)
      local x = leaf
      if case.transposed then
        local d = x:dim()
        x = leaf:transpose(d - 1, d):contiguous():transpose(d - 1, d)
        truthy(not x:is_contiguous(), "a transposed view")
      end
      local y = run(case, x)
      local worst = close(y, t.y, case.name .. " output")
      ;(y * t.gy):sum():backward()
      worst = math.max(worst, close(leaf.grad, t.gx, case.name .. " input gradient"))
      if verbose then io.stderr:write(string.format("    %-28s worst %.2g\n", case.name, worst)) end
      ran[case.name] = true
    end)
  end

  it("ran every case of the reference, of every mode", function()
    local missing, modes = {}, {}
    for _, case in ipairs(ref.cases) do
      if not ran[case.name] then missing[#missing + 1] = case.name end
      modes[case.op .. " " .. case.mode] = true
    end
    eq(table.concat(missing, ", "), "", "reference cases that did not pass")
    for _, m in ipairs{"pad constant", "pad reflect", "pad replicate", "pad circular", "interpolate nearest",
      "interpolate nearest-exact", "interpolate linear", "interpolate bilinear", "interpolate bicubic"} do
      truthy(modes[m], m)
    end
  end)
end)

describe("padding and upsampling layers", function()
  local x = lm.randn(2, 3, 5, 6)

  it("nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d take an int or {l, r, t, b}", function()
    eq(rel_error(nn.ZeroPad2d(2)(x), F.pad(x, {2, 2, 2, 2})), 0)
    eq(rel_error(nn.ZeroPad2d{1, 2, 3, 0}(x), F.pad(x, {1, 2, 3, 0})), 0)
    eq(rel_error(nn.ConstantPad2d({1, 0, 2, 1}, 3.5)(x), F.pad(x, {1, 0, 2, 1}, {value = 3.5})), 0)
    eq(rel_error(nn.ReflectionPad2d(3)(x), F.pad(x, {3, 3, 3, 3}, {mode = "reflect"})), 0)
    eq(rel_error(nn.ReplicationPad2d{0, 4, 1, 2}(x), F.pad(x, {0, 4, 1, 2}, {mode = "replicate"})), 0)
    eq(rel_error(nn.ReflectionPad1d{1, 2}(x[1]), F.pad(x[1], {1, 2}, {mode = "reflect"})), 0)
    eq(nn.ReflectionPad2d(3):extra_repr(), "(3, 3, 3, 3)")
    -- whole numbers from a division count as sizes
    eq(rel_error(F.pad(x, {2, 4 / 2}), F.pad(x, {2, 2})), 0)
    eq(F.interpolate(x, {size = {10 / 2, 12 / 2}}):shape_string(), "2x3x5x6")
    eq(#nn.ReflectionPad2d(3):parameters(), 0)
  end)

  it("nn.Upsample, nn.UpsamplingNearest2d and nn.UpsamplingBilinear2d (align_corners true, as torch's)", function()
    eq(rel_error(nn.Upsample{scale_factor = 2}(x), F.interpolate(x, {scale_factor = 2})), 0)
    eq(rel_error(nn.Upsample{size = {7, 4}, mode = "bilinear", align_corners = true}(x),
      F.interpolate(x, {size = {7, 4}, mode = "bilinear", align_corners = true})), 0)
    eq(rel_error(nn.UpsamplingNearest2d{scale_factor = 3}(x), F.interpolate(x, {scale_factor = 3})), 0)
    eq(rel_error(nn.UpsamplingBilinear2d{size = 9}(x),
      F.interpolate(x, {size = 9, mode = "bilinear", align_corners = true})), 0)
    eq(nn.Upsample{scale_factor = 2, mode = "bilinear"}:extra_repr(), "scale_factor = 2, mode = 'bilinear'")
  end)

  it("a U-Net style block: upsample, pad to the skip's size, concatenate, and back-propagate", function()
    local skip_ = lm.randn(1, 4, 11, 13):requires_grad(true)
    local low = lm.randn(1, 4, 5, 6):requires_grad(true)
    local up = F.interpolate(low, {scale_factor = 2, mode = "bilinear"})
    local dh, dw = skip_:size(3) - up:size(3), skip_:size(4) - up:size(4)
    up = F.pad(up, {dw // 2, dw - dw // 2, dh // 2, dh - dh // 2})
    local y = lm.cat({skip_, up}, 2)
    eq(y:shape_string(), "1x8x11x13")
    y:sum():backward()
    -- each input value reaches the output with total weight 4 (bilinear x2 weights sum to 2 per dimension)
    truthy((low.grad - 4):abs():max():item() < 1e-5, "upsampling's gradient sums its weights")
  end)
end)

os.execute("rm -rf '" .. dir .. "'")
