-- Grouped and dilated convolutions against torch 1.13
-- (tests/torch/conv_groups_reference.py, which defines the cases): F.conv2d's
-- output and the gradients of its input, weight and bias, at 1e-5 relative
-- error (max |a - b| / max |b|), under each CPU algorithm choice (auto: the
-- depthwise kernel where it applies; gemm: im2col with a product a group);
-- and a torch Sequential of grouped, depthwise and dilated nn.Conv2d loads
-- strictly into its Lumen twin and gives torch's output.
-- LUMEN_SPEC_VERBOSE=1 prints the worst error of each case.
local lm = require 'lumen'
local nn = lm.nn
local F = nn.functional

local py = dofile("tests/helpers/python.lua")
local dir, ref = py.torch_cases("tests/torch/conv_groups_reference.py", skip)
local conv_algorithms = dofile("tests/helpers/conv_algorithms.lua")

local TOL = 1e-5
local verbose = os.getenv("LUMEN_SPEC_VERBOSE")

local function close(a, b, what)
  eq(a:shape_string(), b:shape_string(), what .. " shape")
  local err = rel_error(a, b)
  truthy(err <= TOL, string.format("%s: relative error %.3g", what, err))
  return err
end

local function opts_of(case)
  local d = case.dilation
  return {stride = case.stride, padding = case.padding, groups = case.groups,
    dilation = d[1] == d[2] and d[1] or {d[1], d[2]}}
end

describe("grouped and dilated conv2d against torch " .. ref.torch, function()
  local ran = {}
  for _, case in ipairs(ref.cases) do
    for _, algorithm in ipairs{"auto", "gemm"} do
      it(string.format("%s (%s): forward, input, weight and bias gradients", case.name, algorithm), function()
        local t = lm.load(string.format("%s/%s.safetensors", dir, case.name))
        conv_algorithms.with(algorithm, function()
          local x, w = t.x:clone():requires_grad(true), t.w:clone():requires_grad(true)
          local b = case.bias and t.b:clone():requires_grad(true) or nil
          local y = F.conv2d(x, w, b, opts_of(case))
          local worst = close(y, t.y, case.name .. " output")
          local loss = (y * t.gy):sum()
          loss:backward()
          worst = math.max(worst, close(x.grad, t.gx, case.name .. " input gradient"))
          worst = math.max(worst, close(w.grad, t.gw, case.name .. " weight gradient"))
          if case.bias then worst = math.max(worst, close(b.grad, t.gb, case.name .. " bias gradient")) end
          if verbose then io.stderr:write(string.format("    %-28s %-4s worst %.2g\n", case.name, algorithm, worst)) end
        end)
        ran[case.name .. " " .. algorithm] = true
      end)
    end
  end

  it("ran every case of the reference under both algorithms", function()
    local missing = {}
    for _, case in ipairs(ref.cases) do
      for _, algorithm in ipairs{"auto", "gemm"} do
        if not ran[case.name .. " " .. algorithm] then missing[#missing + 1] = case.name .. " " .. algorithm end
      end
    end
    eq(table.concat(missing, ", "), "", "reference cases that did not pass")
    truthy(#ref.cases >= 17, "the reference's cases: " .. #ref.cases)
    local kinds = {}
    for _, case in ipairs(ref.cases) do
      if case.groups > 1 and case.groups == case.shape[2] then kinds.depthwise = true end
      if case.groups > 1 and case.groups < case.shape[2] then kinds.grouped = true end
      if case.dilation[1] ~= case.dilation[2] then kinds.dilation_pair = true end
      if case.kernel == 7 and case.groups == case.shape[2] then kinds.convnext = true end
    end
    for _, kind in ipairs{"depthwise", "grouped", "dilation_pair", "convnext"} do truthy(kinds[kind], kind) end
  end)

  it("a torch Sequential of grouped, depthwise and dilated nn.Conv2d loads strictly, gives torch's output", function()
    local m = nn.Sequential(
      nn.Conv2d(3, 8, 3, {padding = 1}),
      nn.Conv2d(8, 8, 3, {stride = 2, padding = 1, groups = 8, bias = false}),
      nn.Conv2d(8, 16, 1),
      nn.Conv2d(16, 16, 7, {padding = 3, groups = 16}),
      nn.Conv2d(16, 8, 3, {padding = 2, dilation = 2, groups = 4}),
      nn.Conv2d(8, 8, 3, {padding = 3, dilation = {2, 3}}))
    m:load_state_dict(lm.load(dir .. "/module.safetensors"), {strict = true})
    local io_ = lm.load(dir .. "/module_io.safetensors")
    close(m(io_.x), io_.y, "Sequential output")
    m:eval()
    lm.no_grad(function() close(m(io_.x), io_.y, "Sequential output without gradients") end)
  end)
end)

os.execute("rm -rf '" .. dir .. "'")
