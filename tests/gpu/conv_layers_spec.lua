-- The convolutional-network layers (lua/lumen/nn/conv_layers.lua) and a
-- narrow ResNet-18 on the GPU against the same modules on the CPU: outputs,
-- input and parameter gradients and running statistics, in training and
-- evaluation mode. Tolerance (max |gpu - cpu| / max(|cpu|, 1e-3)): 1e-5 for
-- layers of elementwise ops and reductions, 1e-4 for anything with a
-- convolution (cuDNN's summation order), as in ops_spec.lua.
-- Skips, saying why, when no GPU answers.
local lm = require 'lumen'
local nn = lm.nn

-- LUMEN_GPU_DRY_RUN=1: the CPU stands in for the GPU (checks the spec's code only)
local DEV = dofile("tests/helpers/gpu_device.lua")("conv_layers_spec", skip)

local TRANS, GEMM = 1e-5, 1e-4

local function rel_err(gpu, cpu)
  local g = gpu:to('cpu')
  eq(g:shape_string(), cpu:shape_string(), "shape")
  local scale = math.max(cpu:float():abs():max():item(), 1e-3)
  return (g:float() - cpu:float()):abs():max():item() / scale
end

local function close(gpu, cpu, tol, what)
  eq(gpu:device(), DEV, what .. " lives on the GPU")
  local e = rel_err(gpu, cpu)
  truthy(e <= tol, string.format("%s: relative error %.3g over %.0g", what, e, tol))
end

-- one forward and backward of sum(y * r) on both devices, then comparisons
local function step(cpu_m, gpu_m, x, tol, what)
  cpu_m:zero_grad()
  gpu_m:zero_grad()
  local xc, xg = x, x:to(DEV)
  if x:dtype() == "float32" then
    xc, xg = x:clone():requires_grad(true), x:clone():to(DEV):requires_grad(true)
  end
  lm.manual_seed(3)
  local yc = cpu_m(xc)
  lm.manual_seed(3)
  local yg = gpu_m(xg)
  close(yg, yc, tol, what .. " output")
  local r = lm.randn(yc:shape())
  local lc, lg = (yc * r):sum(), (yg * r:to(DEV)):sum()
  lc:backward()
  lg:backward()
  if x:dtype() == "float32" then close(xg.grad, xc.grad, tol, what .. " input gradient") end
  local gp = gpu_m:named_parameters()
  for i, pair in ipairs(cpu_m:named_parameters()) do
    close(gp[i][2].grad, pair[2].grad, tol, what .. " gradient of " .. pair[1])
  end
  local gb = gpu_m:named_buffers()
  for i, pair in ipairs(cpu_m:named_buffers()) do close(gb[i][2], pair[2], tol, what .. " buffer " .. pair[1]) end
end

local function twin_check(what, make, x, tol)
  lm.manual_seed(1)
  local cpu_m = make()
  local gpu_m = make()
  gpu_m:load_state_dict(cpu_m:state_dict())
  gpu_m:to(DEV)
  for k = 1, 2 do step(cpu_m, gpu_m, x, tol, what .. " (train " .. k .. ")") end
  cpu_m:eval()
  gpu_m:eval()
  step(cpu_m, gpu_m, x, tol, what .. " (eval)")
end

describe("gpu conv layers", function()
  lm.manual_seed(7)
  it("BatchNorm1d and BatchNorm2d, running statistics included", function()
    twin_check("BatchNorm1d", function() return nn.BatchNorm1d(5) end, lm.randn(8, 5), TRANS)
    twin_check("BatchNorm1d 3-D", function() return nn.BatchNorm1d(4) end, lm.randn(3, 4, 7), TRANS)
    twin_check("BatchNorm2d", function() return nn.BatchNorm2d(6) end, lm.randn(4, 6, 5, 5), TRANS)
    twin_check("BatchNorm2d cumulative", function() return nn.BatchNorm2d(3, {momentum = false}) end,
      lm.randn(2, 3, 4, 4), TRANS)
  end)
  it("BatchNorm in the fused kernels: a channel in several parts, a large mean, many channels", function()
    if os.getenv("LUMEN_CUDA_UNFUSED") ~= "1" then -- (gpu-check.sh's rerun without the fused kernels)
      truthy(lm.nn.functional._batch_norm_available(lm.zeros(2, 3):to(DEV)), "the device has the fused batch norm")
    end
    twin_check("BatchNorm2d wide channels", function() return nn.BatchNorm2d(3) end,
      lm.randn(16, 3, 24, 24) * 0.5 + 20, TRANS)
    twin_check("BatchNorm1d 300 channels", function() return nn.BatchNorm1d(300) end, lm.randn(64, 300), TRANS)
    twin_check("BatchNorm2d without affine", function() return nn.BatchNorm2d(5, {affine = false}) end,
      lm.randn(8, 5, 7, 9), TRANS)
  end)
  it("GroupNorm, SiLU, AdaptiveAvgPool2d", function()
    twin_check("GroupNorm", function() return nn.GroupNorm(3, 6) end, lm.randn(4, 6, 5, 5), TRANS)
    twin_check("SiLU", function() return nn.SiLU() end, lm.randn(3, 4, 5), TRANS)
    twin_check("AdaptiveAvgPool2d", function() return nn.AdaptiveAvgPool2d({3, 2}) end, lm.randn(2, 3, 7, 5), TRANS)
    twin_check("AdaptiveAvgPool2d 1", function() return nn.AdaptiveAvgPool2d(1) end, lm.randn(2, 3, 5, 5), TRANS)
  end)
  it("Dropout2d draws the same channel masks on both devices", function()
    twin_check("Dropout2d", function() return nn.Dropout2d(0.4) end, lm.randn(4, 6, 3, 3), TRANS)
  end)
  it("Embedding: rows and the weight's gradient", function()
    twin_check("Embedding", function() return nn.Embedding(10, 4, {padding_idx = 3}) end,
      lm.tensor({{1, 3, 10, 3}, {2, 2, 5, 7}}, "int32"), TRANS)
  end)
  it("BasicBlock and a narrow cifar resnet18", function()
    twin_check("BasicBlock", function() return nn.BasicBlock(4, 8, {stride = 2, downsample = true}) end,
      lm.randn(2, 4, 6, 6), GEMM)
    twin_check("resnet18", function() return lm.models.resnet18{num_classes = 10, stem = "cifar", width = 8} end,
      lm.randn(2, 3, 16, 16), GEMM)
  end)
  -- (the conv slots' backward-data, forward and backward-filter, with the
  -- transposed roles; output_padding 1 at stride 1 makes the convolution it
  -- transposes larger than its input)
  it("ConvTranspose2d: U-Net's 2x2 stride 2, DCGAN's 4x4, output_padding, groups and dilation", function()
    local layers = {
      {"2x2 stride 2", function() return nn.ConvTranspose2d(6, 4, 2, {stride = 2}) end, {2, 6, 5, 4}},
      {"4x4 stride 2 padding 1", function() return nn.ConvTranspose2d(4, 3, 4, {stride = 2, padding = 1}) end,
        {2, 4, 5, 5}},
      {"3x3 stride 2 output_padding 1 no bias",
        function() return nn.ConvTranspose2d(3, 5, 3, {stride = 2, padding = 1, output_padding = 1, bias = false}) end,
        {3, 3, 4, 6}},
      {"groups 2 dilation {2, 3}",
        function() return nn.ConvTranspose2d(4, 6, 3, {padding = 1, groups = 2, dilation = {2, 3}}) end, {2, 4, 5, 5}},
      {"depthwise stride 2", function() return nn.ConvTranspose2d(4, 4, 3, {stride = 2, groups = 4}) end, {1, 4, 4, 4}},
      {"output_padding past the stride", function() return nn.ConvTranspose2d(3, 2, 3, {output_padding = 1,
        dilation = 2}) end, {2, 3, 5, 5}},
      {"1x1 stride 3", function() return nn.ConvTranspose2d(5, 3, 1, {stride = 3}) end, {2, 5, 4, 3}},
      {"padding past the kernel's reach, stride above the kernel",
        function() return nn.ConvTranspose2d(3, 4, 2, {stride = 3, padding = 2}) end, {2, 3, 5, 6}},
    }
    for _, l in ipairs(layers) do twin_check("ConvTranspose2d " .. l[1], l[2], lm.randn(l[3]), GEMM) end
  end)
  -- (cuDNN's group count and dilation; without cuDNN, im2col a group at a
  -- time with dilated taps) against the CPU's depthwise kernel and grouped
  -- im2col, and the reference loops for the forward pass
  it("grouped, depthwise, dilated and rectangular Conv2d, as MobileNet's, ConvNeXt's and Inception's layers", function()
    local layers = {
      {"groups 2 stride 2", function() return nn.Conv2d(4, 6, 3, {stride = 2, padding = 1, groups = 2}) end,
        {2, 4, 9, 7}},
      {"depthwise 3x3 stride 2", function() return nn.Conv2d(8, 8, 3, {stride = 2, padding = 1, groups = 8}) end,
        {2, 8, 11, 10}},
      {"depthwise 7x7", function() return nn.Conv2d(6, 6, 7, {padding = 3, groups = 6, bias = false}) end,
        {2, 6, 9, 9}},
      {"depthwise, 2 filters a channel", function() return nn.Conv2d(3, 6, 3, {padding = 1, groups = 3}) end,
        {3, 3, 8, 9}},
      {"dilation 2", function() return nn.Conv2d(3, 4, 3, {padding = 2, dilation = 2}) end, {2, 3, 10, 9}},
      {"dilation {2, 3} stride 2 groups 2",
        function() return nn.Conv2d(4, 4, 3, {stride = 2, padding = 3, dilation = {2, 3}, groups = 2}) end,
        {2, 4, 13, 12}},
      -- (h, w) pairs: cuDNN's descriptors and the im2col kernels take each dimension's own
      {"1x7 padding {0, 3}", function() return nn.Conv2d(3, 4, {1, 7}, {padding = {0, 3}}) end, {2, 3, 8, 11}},
      {"3x5 stride {2, 1} padding {1, 2}",
        function() return nn.Conv2d(3, 5, {3, 5}, {stride = {2, 1}, padding = {1, 2}}) end, {2, 3, 11, 10}},
      {"depthwise 5x3 stride {1, 2} padding {2, 0}",
        function() return nn.Conv2d(6, 6, {5, 3}, {stride = {1, 2}, padding = {2, 0}, groups = 6}) end, {2, 6, 9, 12}},
      {"padding 'same' with a 4x3 kernel (one more row at the bottom)",
        function() return nn.Conv2d(3, 4, {4, 3}, {padding = "same", dilation = {1, 2}}) end, {2, 3, 9, 10}},
    }
    for _, l in ipairs(layers) do
      local x = lm.randn(l[3])
      twin_check(l[1], l[2], x, GEMM)
      lm.manual_seed(1)
      local m = l[2]()
      local d = m.dilation
      if m.padding ~= "same" then -- (the reference pads both sides alike: twin_check covers 'same')
        local want = lm._reference.conv2d(x, m.weight, m.bias, {stride = m.stride, padding = m.padding,
          groups = m.groups, dilation = d})
        m:to(DEV)
        close(m(x:to(DEV)), want, GEMM, l[1] .. " against the reference")
      end
    end
  end)
end)
