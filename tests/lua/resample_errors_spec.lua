-- Wrong calls of F.pad, F.interpolate and the padding and upsampling layers:
-- each a Lua error with an exact message, raised at the caller's line.
local lm = require 'lumen'
local nn = lm.nn
local F = nn.functional

-- the message of fn's error, which must point at this file (fn makes no tail
-- call: a tail call leaves no line to point at)
local function message(fn)
  local ok, err = pcall(fn)
  truthy(not ok, "an error")
  err = tostring(err)
  truthy(err:find("resample_errors_spec.lua:%d+: ") ~= nil, "raised at the caller's line: " .. err)
  return (err:gsub("^[^\n]-:%d+: ", ""))
end

local x = lm.randn(1, 2, 6)
local img = lm.randn(1, 2, 5, 6)

local CASES = {
  {"pad: an odd list", function() local _ = F.pad(x, {1, 2, 3}) end,
    "pad: padding {1, 2, 3} has 3 entries: it must have pairs (left, right) from the last dimension back"},
  {"pad: more pairs than dimensions", function() local _ = F.pad(x, {1, 1, 1, 1, 1, 1, 1, 1}) end,
    "pad: padding {1, 1, 1, 1, 1, 1, 1, 1} pads 4 dimensions, more than input [1, 2, 6] has"},
  {"pad: not a list", function() local _ = F.pad(x, 2) end, "pad: padding must be a list of sizes, got 2"},
  {"pad: a fractional entry", function() local _ = F.pad(x, {1, 1.5}) end,
    "pad: padding entries must be integers, got 1.5 in {1, 1.5}"},
  {"pad: reflect as large as the size", function() local _ = F.pad(x, {6, 0}, {mode = "reflect"}) end,
    "pad: reflect padding (6, 0) must be less than the size 6 of dimension 3 of input [1, 2, 6]"},
  {"pad: replicate from an empty dimension",
    function() local _ = F.pad(lm.zeros(1, 1, 0), {2, 2}, {mode = "replicate"}) end,
    "pad: mode 'replicate' takes its values from dimension 3 of input [1, 1, 0], which is empty"},
  {"pad: reflect on a 1-D input", function() local _ = F.pad(lm.zeros(6), {1, 1}, {mode = "reflect"}) end,
    "pad: mode 'reflect' pads the last 1, 2 or 3 dimensions of an input with 1 or 2 more (padding of 2 entries: "
    .. "a 2-D or 3-D input; 4: 3-D or 4-D; 6: 4-D or 5-D), got padding {1, 1} for input [6]"},
  {"pad: replicate of 4 entries on a 5-D input", function()
    local _ = F.pad(lm.zeros(1, 1, 2, 3, 4), {1, 1, 1, 1}, {mode = "replicate"}) end,
    "pad: mode 'replicate' pads the last 1, 2 or 3 dimensions of an input with 1 or 2 more (padding of 2 "
    .. "entries: a 2-D or 3-D input; 4: 3-D or 4-D; 6: 4-D or 5-D), got padding {1, 1, 1, 1} for input "
    .. "[1, 1, 2, 3, 4]"},
  {"pad: circular wrapping twice", function() local _ = F.pad(x, {7, 0}, {mode = "circular"}) end,
    "pad: circular padding (7, 0) wraps around dimension 3 of input [1, 2, 6] more than once (each pad at most "
    .. "the 6 elements kept)"},
  {"pad: a value with reflect", function() local _ = F.pad(x, {1, 1}, {mode = "reflect", value = 2}) end,
    "pad: value is only for mode 'constant', got mode 'reflect' with value 2"},
  {"pad: an unknown mode", function() local _ = F.pad(x, {1, 1}, {mode = "zeros"}) end,
    "pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got \"zeros\""},
  {"pad: a misspelt option", function() local _ = F.pad(x, {1, 1}, {mdoe = "reflect"}) end,
    "pad: unknown option 'mdoe'; did you mean mode? (known: mode, value)"},
  {"pad: cropping past the start", function() local _ = F.pad(x, {-7, 0}) end,
    "pad: padding (-7, 0) leaves dimension 3 of input [1, 2, 6] with -1 elements"},
  {"pad: replicate cropping everything", function() local _ = F.pad(x, {0, -6}, {mode = "replicate"}) end,
    "pad: padding (0, -6) leaves dimension 3 of input [1, 2, 6] with 0 elements"},
  {"pad: a number for the input", function() local _ = F.pad(3, {1, 1}) end, "pad: input must be a tensor, got 3"},
  {"pad: reflect on int32", function() local _ = F.pad(x:int(), {1, 1}, {mode = "reflect"}) end,
    "pad: mode 'reflect' needs a float32 input, got int32"},
  {"interpolate: an int32 input", function() local _ = F.interpolate(x:int(), {scale_factor = 2}) end,
    "interpolate: input must be float32, got int32"},
  {"interpolate: a fractional size", function() local _ = F.interpolate(x, {size = 2.5}) end,
    "interpolate: size must be a positive integer or a list of 1, got 2.5"},
  {"interpolate: both size and scale_factor", function() local _ = F.interpolate(x, {size = 3, scale_factor = 2}) end,
    "interpolate: give exactly one of size and scale_factor, got both"},
  {"interpolate: neither size nor scale_factor", function() local _ = F.interpolate(x, {mode = "linear"}) end,
    "interpolate: give exactly one of size and scale_factor, got neither"},
  {"interpolate: an unknown mode", function() local _ = F.interpolate(img, {scale_factor = 2, mode = "trilinear"}) end,
    "interpolate: mode must be 'nearest', 'nearest-exact', 'linear', 'bilinear' or 'bicubic', got \"trilinear\""},
  {"interpolate: align_corners with nearest", function()
    local _ = F.interpolate(img, {scale_factor = 2, align_corners = false}) end,
    "interpolate: align_corners is only for the interpolating modes 'linear', 'bilinear' and 'bicubic', got "
    .. "mode 'nearest'"},
  {"interpolate: bilinear on [N, C, L]", function() local _ = F.interpolate(x, {size = 3, mode = "bilinear"}) end,
    "interpolate: mode 'bilinear' needs a 4-D [N, C, H, W] input, got [1, 2, 6]"},
  {"interpolate: linear on [N, C, H, W]", function() local _ = F.interpolate(img, {size = 3, mode = "linear"}) end,
    "interpolate: mode 'linear' needs a 3-D [N, C, L] input, got [1, 2, 5, 6]"},
  {"interpolate: a 5-D input", function() local _ = F.interpolate(lm.zeros(1, 1, 2, 2, 2), {scale_factor = 2}) end,
    "interpolate: input must be [N, C, L] or [N, C, H, W], got [1, 1, 2, 2, 2]"},
  {"interpolate: one scale for two dimensions", function() local _ = F.interpolate(img, {scale_factor = {2}}) end,
    "interpolate: scale_factor must be a positive number or a list of 2, got {2}"},
  {"interpolate: a negative size", function() local _ = F.interpolate(img, {size = {3, -1}}) end,
    "interpolate: size must be a positive integer or a list of 2, got {3, -1}"},
  {"interpolate: a scale that empties the output", function() local _ = F.interpolate(x, {scale_factor = 0.1}) end,
    "interpolate: scale_factor 0.1 gives an empty output for input [1, 2, 6]"},
  {"interpolate: recompute_scale_factor with a size", function()
    local _ = F.interpolate(x, {size = 3, recompute_scale_factor = true}) end,
    "interpolate: recompute_scale_factor is only for scale_factor, not with a size"},
  {"interpolate: a misspelt option", function() local _ = F.interpolate(x, {scale = 2}) end,
    "interpolate: unknown option 'scale'; did you mean scale_factor? (known: align_corners, mode, "
    .. "recompute_scale_factor, "
    .. "scale_factor, size)"},
  {"nn.ReflectionPad2d: two sizes", function() local _ = nn.ReflectionPad2d({1, 2}) end,
    "nn.ReflectionPad2d: padding must be an integer or a list of 4 integers, got a list of 2"},
  {"nn.ConstantPad2d: no value", function() local _ = nn.ConstantPad2d(1) end,
    "nn.ConstantPad2d: value must be a number, got nil"},
  {"nn.Upsample: no size or scale", function() local _ = nn.Upsample{mode = "bilinear"} end,
    "nn.Upsample: give exactly one of size and scale_factor"},
  {"nn.UpsamplingBilinear2d: a mode",
    function() local _ = nn.UpsamplingBilinear2d{scale_factor = 2, mode = "nearest"} end,
    "nn.UpsamplingBilinear2d: unknown option 'mode' (known: scale_factor, size)"},
}

describe("F.pad, F.interpolate and their layers refuse wrong calls", function()
  for _, c in ipairs(CASES) do
    it(c[1], function() eq(message(c[2]), c[3]) end)
  end
end)
