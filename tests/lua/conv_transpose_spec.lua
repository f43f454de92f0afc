-- F.conv_transpose2d and nn.ConvTranspose2d without torch: finite-difference
-- gradient checks (non-contiguous inputs, output_padding at or past the
-- stride, groups, dilation) under each CPU algorithm; the op is exactly
-- conv2d's input gradient; and every misuse is an error with its exact
-- message. tests/lua/torch_conv_transpose_spec.lua compares with torch.
local lm = require 'lumen'
local nn = lm.nn
local F = nn.functional
local gradcheck = lm.autograd.gradcheck

lm.manual_seed(17)

local function randn(...) return lm.randn(...):requires_grad(true) end

-- fn under CPU algorithm `algorithm`, the choice put back afterwards
local with_algorithm = dofile("tests/helpers/conv_algorithms.lua").with
local function under(algorithm, fn)
  return function(...)
    local args = table.pack(...)
    return with_algorithm(algorithm, function() return fn(table.unpack(args, 1, args.n)) end)
  end
end

describe("F.conv_transpose2d gradients by finite differences", function()
  for _, algorithm in ipairs{"auto", "gemm"} do
    local function check(name, opts, x, w, b)
      it(name .. " (" .. algorithm .. ")", function()
        local ok, msg = gradcheck(under(algorithm, function(x_, w_, b_)
          return F.conv_transpose2d(x_, w_, b_, opts)
        end), {x, w, b})
        truthy(ok, msg)
      end)
    end
    check("stride 2, padding 1, output_padding 1", {stride = 2, padding = 1, output_padding = 1},
      randn(2, 3, 3, 4), randn(3, 2, 3, 3), randn(2))
    -- a non-contiguous input: the transpose of a fresh tensor
    check("a transposed input, kernel 2 stride 2", {stride = 2},
      randn(2, 3, 4, 3):transpose(3, 4), randn(3, 2, 2, 2), randn(2))
    check("groups 2, dilation {2, 1}", {padding = 1, groups = 2, dilation = {2, 1}},
      randn(1, 4, 3, 3), randn(4, 3, 3, 3), randn(6))
    check("depthwise, stride 2", {stride = 2, padding = 1, groups = 3}, randn(2, 3, 3, 3), randn(3, 1, 3, 3),
      randn(3))
    check("output_padding past the stride, below the dilation", {output_padding = 1, dilation = 2},
      randn(1, 2, 3, 3), randn(2, 2, 3, 3), randn(2))
  end
end)

describe("F.conv_transpose2d is conv2d's input gradient", function()
  it("for groups, stride, padding and dilation", function()
    local opts = {stride = 2, padding = 1, dilation = {1, 2}, groups = 2}
    local w = lm.randn(4, 3, 3, 3)             -- conv2d: 6 -> 4 channels; transposed: 4 -> 6
    local y = lm.randn(2, 6, 9, 9):requires_grad(true)
    local out = F.conv2d(y, w, nil, opts)     -- [2, 4, 5, 4]
    local g = lm.randn(table.unpack(out:shape()))
    out:backward(g)
    local t = F.conv_transpose2d(g, w, nil, opts)
    eq(t:shape_string(), y.grad:shape_string())
    truthy(rel_error(t, y.grad) < 1e-6, "relative error " .. rel_error(t, y.grad))
  end)
end)

-- the message of fn's error, without Lua's "chunk:line: " position
local function message(fn)
  local ok, err = pcall(fn)
  truthy(not ok, "expected an error")
  return (tostring(err):gsub("^[%w_%.%-/]+:%d+: ", "", 1))
end

describe("misuse of F.conv_transpose2d", function()
  local function case(name, want, fn) it(name, function() eq(message(fn), want) end) end
  local x, w = lm.ones(1, 2, 4, 4), lm.ones(2, 3, 3, 3)
  case("a 3-D weight", "conv_transpose2d: weight must be [in, out / groups, kh, kw], got [2, 3, 3]",
    function() return F.conv_transpose2d(x, lm.ones(2, 3, 3)) end)
  case("a 3-D input", "conv_transpose2d: input must be [N, C, H, W], got [2, 4, 4]",
    function() return F.conv_transpose2d(lm.ones(2, 4, 4), w) end)
  case("input channels not the weight's first dimension",
    "conv_transpose2d: input has 2 channels, weight expects 3 (input [1, 2, 4, 4], weight [3, 3, 3, 3]; "
      .. "weights are [in, out / groups, kh, kw])",
    function() return F.conv_transpose2d(x, lm.ones(3, 3, 3, 3)) end)
  case("output_padding as large as the stride",
    "conv_transpose2d: output_padding 2x2 must be smaller than either the stride 2x2 or the dilation 1x1",
    function() return F.conv_transpose2d(x, w, {stride = 2, output_padding = 2}) end)
  case("output_padding as large as one dimension's dilation",
    "conv_transpose2d: output_padding 1x1 must be smaller than either the stride 1x1 or the dilation 2x1",
    function() return F.conv_transpose2d(x, w, {output_padding = 1, dilation = {2, 1}}) end)
  case("negative padding",
    "conv_transpose2d: padding must be an integer from 0 to 2147483647 or a pair {h, w} of them, got -1",
    function() return F.conv_transpose2d(x, w, {padding = -1}) end)
  case("negative output_padding",
    "conv_transpose2d: output_padding must be an integer from 0 to 2147483647 or a pair {h, w} of them, got -1",
    function() return F.conv_transpose2d(x, w, {output_padding = -1}) end)
  case("groups not dividing the input channels",
    "conv_transpose2d: input has 3 channels, which groups = 2 does not divide (input [1, 3, 4, 4])",
    function() return F.conv_transpose2d(lm.ones(1, 3, 4, 4), lm.ones(3, 3, 3, 3), {groups = 2}) end)
  case("padding that leaves no output",
    "conv_transpose2d: the output would be -4x-4 from input [1, 2, 4, 4] (padding 5x5 is too large for kernel 3x3)",
    function() return F.conv_transpose2d(x, w, {padding = 5}) end)
  case("a bias of the wrong size", "conv_transpose2d: bias must be [6] (out = 3 x groups = 2), got [3]",
    function() return F.conv_transpose2d(x, lm.ones(2, 3, 3, 3), lm.ones(3), {groups = 2}) end)
  case("a misspelt option",
    "conv_transpose2d: unknown option 'strides' (known: stride, padding, output_padding, dilation, groups)",
    function() return F.conv_transpose2d(x, w, nil, {strides = 2}) end)
  case("options not a table", "conv_transpose2d: options must be a table, got number",
    function() return F.conv_transpose2d(x, w, nil, 3) end)
  case("stride 0",
    "conv_transpose2d: stride must be an integer from 1 to 2147483647 or a pair {h, w} of them, got 0",
    function() return F.conv_transpose2d(x, w, {stride = 0}) end)
  case("groups 0", "conv_transpose2d: groups must be an integer from 1 to 2147483647, got 0",
    function() return F.conv_transpose2d(x, w, {groups = 0}) end)
  case("an int32 input", "conv_transpose2d: input must be float32, got int32",
    function() return F.conv_transpose2d(x:int(), w) end)
  case("a bias that is not a tensor", "conv_transpose2d: bias must be a tensor or nil, got string",
    function() return F.conv_transpose2d(x, w, "b") end)
end)

describe("nn.ConvTranspose2d", function()
  local function case(name, want, fn) it(name, function() eq(message(fn), want) end) end
  case("groups not dividing the channels",
    "nn.ConvTranspose2d: groups (2) must divide the input channels (3) and the output channels (4)",
    function() return nn.ConvTranspose2d(3, 4, 3, {groups = 2}) end)
  case("output_padding too large",
    "nn.ConvTranspose2d: output_padding (2) must be smaller than either the stride (2) or the dilation (1), "
      .. "as in torch",
    function() return nn.ConvTranspose2d(2, 4, 3, {stride = 2, output_padding = 2}) end)
  case("negative padding",
    "nn.ConvTranspose2d: padding must be a non-negative integer or a pair {h, w} of them, got -1",
    function() return nn.ConvTranspose2d(2, 4, 3, {padding = -1}) end)
  case("dilation 0", "nn.ConvTranspose2d: dilation must be a positive integer or a pair {h, w} of them, got 0",
    function() return nn.ConvTranspose2d(2, 4, 3, {dilation = 0}) end)
  case("a stride pair of three", "nn.ConvTranspose2d: stride must be a positive integer or a pair {h, w} of them, "
      .. "got a table of length 3",
    function() return nn.ConvTranspose2d(2, 4, 3, {stride = {1, 2, 3}}) end)
  case("output_padding too large in one dimension of a pair",
    "nn.ConvTranspose2d: output_padding ({0, 2}) must be smaller than either the stride ({1, 2}) or the dilation "
      .. "(1), as in torch",
    function() return nn.ConvTranspose2d(2, 4, 3, {stride = {1, 2}, output_padding = {0, 2}}) end)
  case("padding_mode other than zeros",
    'nn.ConvTranspose2d: option padding_mode = "reflect" is not supported (torch\'s ConvTranspose2d pads with '
      .. "zeros only)",
    function() return nn.ConvTranspose2d(2, 4, 3, {padding_mode = "reflect"}) end)
  case("a misspelt option", "nn.ConvTranspose2d: unknown option 'outpt_padding'; did you mean output_padding? "
      .. "(known: bias, dilation, groups, init, output_padding, padding, stride)",
    function() return nn.ConvTranspose2d(2, 4, 3, {outpt_padding = 1}) end)
  case("an input with the wrong channels",
    "conv_transpose2d: input has 3 channels, weight expects 2 (input [1, 3, 4, 4], weight [2, 4, 3, 3]; "
      .. "weights are [in, out / groups, kh, kw])",
    function() return nn.ConvTranspose2d(2, 4, 3)(lm.ones(1, 3, 4, 4)) end)

  it("prints its geometry as nn.Conv2d does", function()
    eq(tostring(nn.ConvTranspose2d(4, 6, 3)), "nn.ConvTranspose2d(4 -> 6, 3x3, stride 1, padding 0)")
    eq(tostring(nn.ConvTranspose2d(4, 6, 3, {stride = 2, padding = 1, output_padding = 1, groups = 2,
      dilation = {2, 3}})),
      "nn.ConvTranspose2d(4 -> 6, 3x3, stride 2, padding 1, output_padding 1, dilation {2, 3}, groups 2)")
  end)

  it("upsamples by the stride, with bias false and each init scheme", function()
    for _, scheme in ipairs{"he", "glorot", "pytorch"} do
      local m = nn.ConvTranspose2d(4, 2, 4, {stride = 2, padding = 1, bias = scheme ~= "he", init = scheme})
      eq(m(lm.randn(3, 4, 5, 7)):shape_string(), "3x2x10x14")
      eq(m.bias == nil, scheme == "he")
      truthy(m.weight:abs():max():item() > 0, scheme)
    end
  end)
end)
