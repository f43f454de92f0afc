-- Transposed convolutions against torch 1.13 (tests/torch/conv_transpose_reference.py,
-- which defines the cases): F.conv_transpose2d's output and the gradients of
-- its input, weight and bias, at 1e-5 relative error (max |a - b| / max |b|),
-- under each CPU algorithm choice (the op runs through the convolution's
-- input-gradient, forward and weight-gradient kernels, each of which the
-- choice steers); a torch Sequential of nn.ConvTranspose2d loads strictly
-- into its Lumen twin and gives torch's output; and the 'pytorch' init draws
-- within torch's bounds (fan-in from the weight's dimension 2).
-- LUMEN_SPEC_VERBOSE=1 prints the worst error of each case.
local lm = require 'lumen'
local nn = lm.nn
local F = nn.functional

local py = dofile("tests/helpers/python.lua")
local dir, ref = py.torch_cases("tests/torch/conv_transpose_reference.py", skip)

local TOL = 1e-5
local verbose = os.getenv("LUMEN_SPEC_VERBOSE")

-- every CPU algorithm this build offers ('direct' needs AVX-512)
local conv_algorithms = dofile("tests/helpers/conv_algorithms.lua")
local ALGORITHMS = conv_algorithms.available()

local function close(a, b, what)
  eq(a:shape_string(), b:shape_string(), what .. " shape")
  local err = rel_error(a, b)
  truthy(err <= TOL, string.format("%s: relative error %.3g", what, err))
  return err
end

local function opts_of(case)
  local d = case.dilation
  return {stride = case.stride, padding = case.padding, output_padding = case.output_padding,
    groups = case.groups, dilation = d[1] == d[2] and d[1] or {d[1], d[2]}}
end

describe("F.conv_transpose2d against torch " .. ref.torch, function()
  local ran = {}
  for _, case in ipairs(ref.cases) do
    for _, algorithm in ipairs(ALGORITHMS) do
      it(string.format("%s (%s): forward, input, weight and bias gradients", case.name, algorithm), function()
        local t = lm.load(string.format("%s/%s.safetensors", dir, case.name))
        conv_algorithms.with(algorithm, function()
          local x, w = t.x:clone():requires_grad(true), t.w:clone():requires_grad(true)
          local b = case.bias and t.b:clone():requires_grad(true) or nil
          local y = F.conv_transpose2d(x, w, b, opts_of(case))
          local worst = close(y, t.y, case.name .. " output")
          local loss = (y * t.gy):sum()
          loss:backward()
          worst = math.max(worst, close(x.grad, t.gx, case.name .. " input gradient"))
          worst = math.max(worst, close(w.grad, t.gw, case.name .. " weight gradient"))
          if case.bias then worst = math.max(worst, close(b.grad, t.gb, case.name .. " bias gradient")) end
          -- without gradients: the same forward, nothing recorded
          lm.no_grad(function() close(F.conv_transpose2d(t.x, t.w, t.b, opts_of(case)), t.y, case.name) end)
          if verbose then io.stderr:write(string.format("    %-28s %-8s worst %.2g\n", case.name, algorithm, worst)) end
        end)
        ran[case.name .. " " .. algorithm] = true
      end)
    end
  end

  it("ran every case of the reference under every algorithm", function()
    local missing = {}
    for _, case in ipairs(ref.cases) do
      for _, algorithm in ipairs(ALGORITHMS) do
        if not ran[case.name .. " " .. algorithm] then missing[#missing + 1] = case.name .. " " .. algorithm end
      end
    end
    eq(table.concat(missing, ", "), "", "reference cases that did not pass")
    truthy(#ref.cases >= 21, "the reference's cases: " .. #ref.cases)
    local kinds, kernels = {}, {}
    for _, case in ipairs(ref.cases) do
      if type(case.kernel) == "table" then
        kinds.pairs = true -- kernel, stride, padding and output_padding (h, w)
      else
        kernels[case.kernel] = true
      end
      if case.groups > 1 and case.groups == case.shape[2] then kinds.depthwise = true end
      if case.groups > 1 and case.groups < case.shape[2] then kinds.grouped = true end
      if case.dilation[1] ~= case.dilation[2] then kinds.dilation_pair = true end
      local op, st = case.output_padding, case.stride
      if type(op) == "number" and type(st) == "number" then
        if op >= st then kinds.output_padding_by_dilation = true end
        if op > 0 and op < st then kinds.output_padding = true end
      end
      if not case.bias then kinds.no_bias = true end
      if case.shape[1] == 1 then kinds.batch1 = true end
      if case.shape[3] ~= case.shape[4] then kinds.non_square = true end
    end
    for _, kind in ipairs{"depthwise", "grouped", "dilation_pair", "output_padding_by_dilation", "output_padding",
      "no_bias", "batch1", "non_square", "pairs"} do
      truthy(kinds[kind], kind)
    end
    for _, k in ipairs{1, 2, 3, 4, 5} do truthy(kernels[k], "kernel " .. k) end
  end)

  it("an empty batch gives an empty output and zero weight and bias gradients", function()
    local x = lm.zeros(0, 3, 4, 4):requires_grad(true)
    local w, b = lm.randn(3, 2, 3, 3):requires_grad(true), lm.randn(2):requires_grad(true)
    local y = F.conv_transpose2d(x, w, b, {stride = 2, output_padding = 1})
    eq(y:shape_string(), "0x2x10x10")
    y:sum():backward()
    eq(w.grad:abs():sum():item(), 0)
    eq(b.grad:abs():sum():item(), 0)
    eq(x.grad:shape_string(), "0x3x4x4")
  end)
end)

describe("nn.ConvTranspose2d against torch " .. ref.torch, function()
  local function decoder()
    return nn.Sequential(
      nn.ConvTranspose2d(8, 6, 4, {stride = 2, padding = 1}),
      nn.ReLU(),
      nn.ConvTranspose2d(6, 6, 3, {padding = 1, groups = 3, bias = false}),
      nn.ConvTranspose2d(6, 4, 2, {stride = 2}),
      nn.ConvTranspose2d(4, 3, 3, {stride = 2, padding = 2, output_padding = 1, dilation = {2, 3}}),
      nn.ConvTranspose2d(3, 2, {1, 3}, {stride = {1, 2}, padding = {0, 1}, output_padding = {0, 1}}))
  end

  it("a torch Sequential of nn.ConvTranspose2d loads strictly, gives torch's output", function()
    local m = decoder()
    m:load_state_dict(lm.load(dir .. "/module.safetensors"), {strict = true})
    local io_ = lm.load(dir .. "/module_io.safetensors")
    close(m(io_.x), io_.y, "Sequential output")
    m:eval()
    lm.no_grad(function() close(m(io_.x), io_.y, "Sequential output without gradients") end)
  end)

  it("has torch's state_dict names and shapes", function()
    local names = {}
    for name, t in pairs(decoder():state_dict()) do names[#names + 1] = name .. " " .. t:shape_string() end
    table.sort(names)
    eq(table.concat(names, "; "), "0.bias 6; 0.weight 8x6x4x4; 2.weight 6x2x3x3; 3.bias 4; 3.weight 6x4x2x2; "
      .. "4.bias 3; 4.weight 4x3x3x3; 5.bias 2; 5.weight 3x2x1x3")
  end)

  it("init = 'pytorch' draws within torch's bounds, fan-in out / groups * k * k", function()
    local r = ref.init
    lm.manual_seed(3)
    local m = nn.ConvTranspose2d(r.inputs, r.outputs, r.kernel, {groups = r.groups, init = "pytorch"})
    eq(m.weight:shape_string(), string.format("%dx%dx%dx%d", r.inputs, r.outputs // r.groups, r.kernel, r.kernel))
    eq(r.fan_in, r.outputs // r.groups * r.kernel * r.kernel)
    local wmax, bmax = m.weight:abs():max():item(), m.bias:abs():max():item()
    -- 4608 uniform draws reach within 1 % of the bound; 32 within 15 %
    truthy(wmax <= r.weight_bound and wmax > 0.99 * r.weight_bound, "weight max |w| " .. wmax)
    truthy(bmax <= r.bias_bound and bmax > 0.85 * r.bias_bound, "bias max |b| " .. bmax)
    -- a uniform's standard deviation is bound / sqrt(3)
    local std = m.weight:std():item()
    truthy(math.abs(std - r.weight_bound / math.sqrt(3)) < 0.03 * r.weight_bound, "weight std " .. std)
    eq(m.bias:shape_string(), tostring(r.outputs))
  end)
end)

os.execute("rm -rf '" .. dir .. "'")
