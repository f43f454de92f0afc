-- Convolutions and pools with (h, w) pairs against torch 1.13
-- (tests/torch/conv_pairs_reference.py, which defines the cases): non-square
-- kernels, strides and paddings that differ by dimension, torch's padding
-- 'same' (even kernels and spans pad one more at the bottom or right) and
-- 'valid', grouped and depthwise layers with pair kernels: F.conv2d's output
-- and its input, weight and bias gradients at 1e-5 relative error (max |a -
-- b| / max |b|) under every CPU algorithm choice; F.max_pool2d and
-- F.avg_pool2d with pair kernels, strides and paddings, torch's ceil_mode
-- (inputs smaller than the kernel, last windows dropped) and
-- count_include_pad = false at every border, max pools of ties and -inf
-- (the gradient at each window's first maximum); and a torch
-- Sequential of such layers (with batch norms, so evaluation fuses them)
-- loads strictly into its Lumen twin and gives torch's output.
-- LUMEN_SPEC_VERBOSE=1 prints the worst error of each case.
local lm = require 'lumen'
local nn = lm.nn
local F = nn.functional

local py = dofile("tests/helpers/python.lua")
local dir, ref = py.torch_cases("tests/torch/conv_pairs_reference.py", skip)

local TOL = 1e-5
local verbose = os.getenv("LUMEN_SPEC_VERBOSE")

-- every choice lm.set_conv_algorithm offers in this build ('direct' needs AVX-512)
local conv_algorithms = dofile("tests/helpers/conv_algorithms.lua")
local ALGORITHMS = conv_algorithms.available()

local function close(a, b, what)
  eq(a:shape_string(), b:shape_string(), what .. " shape")
  local err = rel_error(a, b)
  truthy(err <= TOL, string.format("%s: relative error %.3g", what, err))
  return err
end

-- a pair as the options take it: one number where both agree, else {h, w}
local function arg(p)
  if type(p) ~= "table" then return p end
  return p[1] == p[2] and p[1] or {p[1], p[2]}
end

local function conv_opts(case)
  return {stride = arg(case.stride), padding = arg(case.padding), dilation = arg(case.dilation), groups = case.groups}
end

local with_algorithm = conv_algorithms.with

describe("conv2d with (h, w) pairs and padding 'same' against torch " .. ref.torch, function()
  local ran = {}
  for _, case in ipairs(ref.convs) do
    for _, algorithm in ipairs(ALGORITHMS) do
      it(string.format("%s (%s): forward, input, weight and bias gradients", case.name, algorithm), function()
        local t = lm.load(string.format("%s/%s.safetensors", dir, case.name))
        with_algorithm(algorithm, function()
          local x, w = t.x:clone():requires_grad(true), t.w:clone():requires_grad(true)
          local b = case.bias and t.b:clone():requires_grad(true) or nil
          local y = F.conv2d(x, w, b, conv_opts(case))
          local worst = close(y, t.y, case.name .. " output")
          ;(y * t.gy):sum():backward()
          worst = math.max(worst, close(x.grad, t.gx, case.name .. " input gradient"))
          worst = math.max(worst, close(w.grad, t.gw, case.name .. " weight gradient"))
          if case.bias then worst = math.max(worst, close(b.grad, t.gb, case.name .. " bias gradient")) end
          -- without gradients (another path through the op), and as nn.Conv2d
          lm.no_grad(function() close(F.conv2d(t.x, t.w, t.b, conv_opts(case)), t.y, case.name .. " no_grad") end)
          local opts = conv_opts(case)
          opts.bias = case.bias
          local m = nn.Conv2d(case.shape[2], case.out, arg(case.kernel), opts)
          eq(m.weight:shape_string(), t.w:shape_string(), case.name .. " nn.Conv2d weight")
          lm.no_grad(function()
            m.weight:copy_(t.w)
            if case.bias then m.bias:copy_(t.b) end
          end)
          close(m(t.x), t.y, case.name .. " nn.Conv2d output")
          if verbose then io.stderr:write(string.format("    %-32s %-8s worst %.2g\n", case.name, algorithm, worst)) end
        end)
        ran[case.name .. " " .. algorithm] = true
      end)
    end
  end

  for _, case in ipairs(ref.pools) do
    it(case.name .. ": forward and input gradient, F and nn", function()
      local t = lm.load(string.format("%s/%s.safetensors", dir, case.name))
      local x = t.x:clone():requires_grad(true)
      local fn = case.max and F.max_pool2d or F.avg_pool2d
      local modes = {ceil_mode = case.ceil_mode or nil}
      if not case.max and case.count_include_pad == false then modes.count_include_pad = false end
      local opts = {stride = arg(case.stride), padding = arg(case.padding), ceil_mode = modes.ceil_mode,
        count_include_pad = modes.count_include_pad}
      local y = fn(x, arg(case.kernel), opts)
      -- windows of -inf alone give -inf: compared as -1e4, so any other value there differs
      local shown = case.values == "ties" and function(v) return v:clamp(-1e4, 1e4) end or function(v) return v end
      local worst = close(shown(y), shown(t.y), case.name .. " output")
      ;(y * t.gy):sum():backward()
      worst = math.max(worst, close(x.grad, t.gx, case.name .. " input gradient"))
      local class = case.max and nn.MaxPool2d or nn.AvgPool2d
      local m = class(arg(case.kernel), arg(case.stride), arg(case.padding), modes)
      close(shown(m(t.x)), shown(t.y), case.name .. " module")
      if verbose then io.stderr:write(string.format("    %-32s worst %.2g\n", case.name, worst)) end
      ran[case.name] = true
    end)
  end

  it("ran every case of the reference under every algorithm", function()
    local missing = {}
    for _, case in ipairs(ref.convs) do
      for _, algorithm in ipairs(ALGORITHMS) do
        if not ran[case.name .. " " .. algorithm] then missing[#missing + 1] = case.name .. " " .. algorithm end
      end
    end
    for _, case in ipairs(ref.pools) do
      if not ran[case.name] then missing[#missing + 1] = case.name end
    end
    eq(table.concat(missing, ", "), "", "reference cases that did not pass")
    truthy(#ref.convs >= 29 and #ref.pools >= 30, "the reference's cases: " .. #ref.convs .. ", " .. #ref.pools)
    local kinds = {}
    for _, case in ipairs(ref.convs) do
      local k, p = case.kernel, case.padding
      if k[1] ~= k[2] then kinds.rectangular = true end
      if case.stride[1] ~= case.stride[2] then kinds.stride_pair = true end
      if type(p) == "table" and p[1] ~= p[2] then kinds.padding_pair = true end
      if p == "same" and (case.dilation[1] * (k[1] - 1) % 2 == 1 or case.dilation[2] * (k[2] - 1) % 2 == 1) then
        kinds.same_uneven = true
      end
      if case.groups > 1 and k[1] ~= k[2] then kinds.grouped_rectangular = true end
    end
    for _, kind in ipairs{"rectangular", "stride_pair", "padding_pair", "same_uneven", "grouped_rectangular"} do
      truthy(kinds[kind], kind)
    end
  end)

  it("a torch Sequential of pair-shaped layers loads strictly, gives torch's output", function()
    local m = nn.Sequential(
      nn.Conv2d(3, 8, {1, 7}, {padding = {0, 3}}),
      nn.ReLU(),
      nn.Conv2d(8, 8, {7, 1}, {padding = {3, 0}, groups = 8, bias = false}),
      nn.BatchNorm2d(8),
      nn.MaxPool2d({2, 3}, {2, 1}, {1, 1}),
      nn.Conv2d(8, 6, {3, 5}, {stride = {2, 1}, padding = {1, 2}, bias = false}),
      nn.BatchNorm2d(6),
      nn.ReLU(),
      nn.Conv2d(6, 6, 4, {padding = "same", bias = false}),
      nn.BatchNorm2d(6),
      nn.Conv2d(6, 6, {3, 4}, {padding = "same", dilation = 2}),
      nn.AvgPool2d({3, 1}, {1, 2}, {1, 0}),
      nn.MaxPool2d(3, 2, 0, {ceil_mode = true}),
      nn.AvgPool2d({2, 3}, {1, 2}, 1, {ceil_mode = true, count_include_pad = false}))
    m:load_state_dict(lm.load(dir .. "/module.safetensors"), {strict = true})
    m:eval()
    local io_ = lm.load(dir .. "/module_io.safetensors")
    for _, algorithm in ipairs(ALGORITHMS) do
      with_algorithm(algorithm, function()
        close(m(io_.x), io_.y, "Sequential output (" .. algorithm .. ")")
        -- without gradients: the convolutions and batch norms fused
        lm.no_grad(function() close(m(io_.x), io_.y, "Sequential output without gradients (" .. algorithm .. ")") end)
      end)
    end
  end)
end)

os.execute("rm -rf '" .. dir .. "'")
