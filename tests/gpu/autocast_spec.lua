-- lm.autocast('bfloat16') on the GPU against the CPU: both compute products
-- of operands rounded to bfloat16 with float32 sums (cuBLAS's bfloat16
-- compute type and cuDNN's tensor-op math on the GPU, exact for such
-- operands), so they agree to the GEMM tolerance (1e-4 relative, the block
-- orders differ), while float32 products differ from them by more than
-- 3e-4. This checks values: a tensor-core kernel that lost precision (a
-- half-precision conversion, a transform rounded to TF32) fails here. It
-- cannot tell whether tensor cores ran (plain float32 kernels on rounded
-- operands give the same numbers): that is the speed that
-- scripts/gpu-check.sh autocast measures.
-- Skips without a GPU (LUMEN_GPU_DRY_RUN=1: a smoke run with 'cpu'
-- standing in; it checks that the spec's code runs, not the GPU).
local lm = require 'lumen'
local F = lm.nn.functional

local DEV = dofile("tests/helpers/gpu_device.lua")("autocast_spec", skip)

local GEMM = 1e-4

local function rel(a, b)
  local ref = b:to('cpu')
  return (a:to('cpu') - ref):abs():max():item() / math.max(ref:abs():max():item(), 1e-3)
end

-- f(x, w) and the gradients of sum(f * r) on one device, under autocast or not
local function run(f, x, w, r, device, cast)
  local xd, wd = x:clone():to(device):requires_grad(true), w:clone():to(device):requires_grad(true)
  local y = cast and lm.autocast("bfloat16", f, xd, wd) or f(xd, wd)
  ;(y * r:to(device)):sum():backward()
  return {y, xd.grad, wd.grad}
end

local function check(what, f, x, w, rshape)
  local r = lm.randn(rshape)
  local cpu = run(f, x, w, r, 'cpu', true)
  local cpu32 = run(f, x, w, r, 'cpu', false)
  local gpu = run(f, x, w, r, DEV, true)
  for i, name in ipairs({"output", "input gradient", "weight gradient"}) do
    eq(gpu[i]:device(), DEV, what .. " " .. name .. " lives on the device")
    local e = rel(gpu[i], cpu[i])
    truthy(e <= GEMM, string.format("%s %s: relative error %.3g over %.0g", what, name, e, GEMM))
    local d32 = rel(cpu32[i], cpu[i])
    truthy(d32 > 3 * GEMM, string.format("%s %s: float32 differs by only %.3g (the check must discriminate)",
      what, name, d32))
  end
end

describe("autocast on the GPU", function()
  it("matmul and Linear: the CPU's bfloat16 products", function()
    lm.manual_seed(21)
    check("matmul 256x512x384", function(x, w) return x:matmul(w) end, lm.randn(256, 512), lm.randn(512, 384),
      {256, 384})
    check("batched matmul", function(x, w) return x:matmul(w) end, lm.randn(6, 40, 96), lm.randn(96, 72), {6, 40, 72})
    local b = lm.randn(200)
    check("linear", function(x, w) return F.linear(x, w, b:to(x:device())) end, lm.randn(128, 300),
      lm.randn(200, 300) * 0.1, {128, 200})
    check("linear + ELU + dropout (one op)", function(x, w)
      lm.manual_seed(5) -- the same mask on both devices
      return F._linear_act(x, w, b:to(x:device()), "elu", 1.0, 0.9)
    end, lm.randn(128, 300), lm.randn(200, 300) * 0.1, {128, 200})
  end)

  it("convolutions: 3x3 (the CPU's Winograd), strided, 1x1, the stem", function()
    lm.manual_seed(22)
    for _, c in ipairs({{64, 64, 3, 1, 1, 16}, {32, 64, 3, 2, 1, 16}, {64, 128, 1, 1, 0, 8}, {3, 32, 3, 1, 1, 32}}) do
      local C, O, k, stride, pad, hw = table.unpack(c)
      local out = (hw + 2 * pad - k) // stride + 1
      check(string.format("conv %d->%d %dx%d/%d on %dx%d", C, O, k, k, stride, hw, hw),
        function(x, w) return F.conv2d(x, w, nil, {stride = stride, padding = pad}) end,
        lm.randn(8, C, hw, hw), lm.randn(O, C, k, k) * 0.1, {8, O, out, out})
    end
  end)

  -- Across a whole network the two devices part further: each layer rounds
  -- its inputs to bfloat16 again (a step of 2^-8), so a last-bit
  -- difference in one sum (another block order) can move a value by a
  -- whole step, and batch normalisation's backward pass, which subtracts
  -- most of its gradient, amplifies it. Measured on this net at its
  -- initial weights (the CUDA emulator against the CPU): the forward losses
  -- agree to 2e-4, but the parameters' gradients differ by 3-23 % (norm-
  -- relative) between the devices and by 5-58 % between bfloat16 and
  -- float32 on the CPU alone. So the gradients are checked against that
  -- yardstick (each parameter's device gradient nearer the CPU's bfloat16
  -- one than the CPU's float32 gradient is: a wrong gradient, at about
  -- 100 %, fails), and three training steps' losses to 2e-2.
  local function resnet(device, cast)
    lm.manual_seed(23)
    local net = lm.models.resnet18{num_classes = 10, stem = "cifar", width = 16}
    return net:to(device), cast and "bfloat16" or false
  end
  local function batch(i, device)
    lm.manual_seed(100 + i)
    local x = lm.randn(16, 3, 32, 32)
    local labels = {}
    for k = 1, 16 do labels[k] = (k * 7 + i) % 10 + 1 end
    return x:to(device), lm.tensor(labels, 'int32'):to(device)
  end
  local function norm(t) return (t * t):sum():sqrt():item() end

  it("ResNet-18 under autocast: the CPU's forward loss and gradients, at bfloat16's precision", function()
    local function gradients(device, cast)
      local net, mode = resnet(device, cast)
      local x, y = batch(1, device)
      local l = F.cross_entropy(lm.autocast(mode, net, x), y)
      l:backward()
      local g = {}
      for i, p in ipairs(net:parameters()) do g[i] = p.grad:to('cpu') end
      return l:item(), g
    end
    local lc, gc = gradients('cpu', true)
    local _, g32 = gradients('cpu', false)
    local lg, gg = gradients(DEV, true)
    truthy(math.abs(lg - lc) <= 1e-3 * math.abs(lc),
      string.format("forward loss %.6f on the device, %.6f on the CPU", lg, lc))
    eq(#gg, #gc, "parameter count")
    for i = 1, #gc do
      local scale = math.max(norm(gc[i]), 1e-12)
      local e, e32 = norm(gg[i] - gc[i]) / scale, norm(g32[i] - gc[i]) / scale
      truthy(e <= math.max(e32, 1e-4), string.format(
        "parameter %d: the device's bfloat16 gradient differs from the CPU's by %.3g, float32's by %.3g", i, e, e32))
    end
  end)

  it("ResNet-18 training steps under autocast: the CPU's losses", function()
    local function losses(device)
      local net, mode = resnet(device, true)
      local opt = lm.optim.SGD(net:parameters(), {lr = 0.05, momentum = 0.9})
      local out = {}
      for i = 1, 3 do
        local x, y = batch(i, device)
        opt:zero_grad()
        local l = F.cross_entropy(lm.autocast(mode, net, x), y)
        l:backward()
        opt:step()
        out[i] = l:item()
      end
      return out
    end
    local cpu, gpu = losses('cpu'), losses(DEV)
    for i = 1, 3 do
      truthy(math.abs(gpu[i] - cpu[i]) <= 2e-2 * math.abs(cpu[i]),
        string.format("step %d: loss %.6f on the device, %.6f on the CPU", i, gpu[i], cpu[i]))
    end
  end)

end)
