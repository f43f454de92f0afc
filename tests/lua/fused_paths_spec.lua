-- The fused fast paths of the CPU kernels give what the plain composition
-- gives: a Linear's bias accumulated by the GEMM, the MSE's one-pass
-- difference and row sums (against its unfused path, taken by a
-- non-contiguous prediction), ELU's unmasked polynomial at the edges, and
-- the prefetching row gather.
local lm = require 'lumen'
local F = lm.nn.functional

-- fn's result under no_grad, and how many tensors the CPU allocator handed out for it
local function no_grad_allocations(fn)
  local before = lm.memory_stats().allocations
  local y = lm.no_grad(fn)
  return y, lm.memory_stats().allocations - before
end

describe("Linear with the bias in the GEMM", function()
  it("equals the product plus the bias, across OpenBLAS's K blocks and batch dimensions", function()
    lm.manual_seed(3)
    for _, shape in ipairs({{7, 2400, 33}, {128, 200, 200}, {1, 5, 3}}) do
      local m, k, n = shape[1], shape[2], shape[3]
      local x, w, b = lm.randn(m, k), lm.randn(n, k), lm.randn(n) * 10
      local want = lm.matmul(x, w:t()) + b
      truthy(rel_error(F.linear(x, w, b), want) < 1e-6, "linear " .. table.concat(shape, "x"))
    end
    local x3, w, b = lm.randn(2, 3, 40), lm.randn(6, 40), lm.randn(6)
    local got = F.linear(x3, w, b)
    same(got:shape(), {2, 3, 6})
    truthy(rel_error(got, lm.matmul(x3, w:t()) + b) < 1e-6, "3-D input")
  end)

  it("keeps the bias gradient and refuses a bias of the wrong size", function()
    local x = lm.randn(5, 4)
    local w, b = lm.randn(3, 4):requires_grad(true), lm.randn(3):requires_grad(true)
    F.linear(x, w, b):sum():backward()
    same(b.grad:totable(), {5, 5, 5}, 1e-6)
    raises(function() F.linear(x, w, lm.randn(4)) end, "bias must be [3]")
  end)
end)

describe("MSE in one pass", function()
  it("matches the unfused path in value and gradient, per batch and per sample", function()
    lm.manual_seed(4)
    local base, target = lm.randn(300, 64), lm.randn(64, 300):t() -- a transposed (non-contiguous) target
    for _, per_sample in ipairs({false, true}) do
      local opts = per_sample and {reduction = "none"} or nil
      local a = base:clone():requires_grad(true)
      local fused = F.mse(a, target:contiguous(), opts)
      local b = base:clone():requires_grad(true)
      local plain = F.mse(b, target, opts) -- non-contiguous: the composed path
      truthy(rel_error(fused, plain) < 1e-6, "value")
      fused:sum():backward()
      plain:sum():backward()
      truthy(rel_error(a.grad, b.grad) < 1e-6, "gradient")
    end
    -- a hand-computed case: 0.5 * mean over rows of the row sums of squares
    near(F.mse(lm.tensor({{1, 2}, {3, 4}}), lm.tensor({{0, 0}, {1, 1}})):item(), 0.5 * (5 + 13) / 2, 1e-6)
  end)
end)

describe("ELU's polynomial in every lane", function()
  it("keeps NaN, infinities, signed zero and the saturation", function()
    local y = lm.tensor({0 / 0, math.huge, -math.huge, -0.0, 1e-30, -100, -1, 2}):elu():totable()
    truthy(y[1] ~= y[1], "NaN stays NaN")
    eq(y[2], math.huge)
    near(y[3], -1, 0)
    eq(y[4], 0)
    near(y[5], 1e-30, 1e-36)
    near(y[6], -1, 1e-7)
    near(y[7], math.exp(-1) - 1, 1e-7)
    eq(y[8], 2)
  end)
end)

describe("the row gather", function()
  it("copies the indexed rows in their order", function()
    local x = lm.arange(1, 6000):view(1000, 6):float()
    local idx = lm.tensor({1000, 1, 500, 500, 2}, 'int32')
    local got = x:index_select(idx)
    same(got:totable(), {x[1000]:totable(), x[1]:totable(), x[500]:totable(), x[500]:totable(), x[2]:totable()})
  end)
end)

describe("batch normalisation's fused kernel", function()
  it("normalises with the batch statistics, also where the mean dwarfs the spread", function()
    lm.manual_seed(5)
    -- mean 1e4, spread 1: E[x^2] - E[x]^2 in float32 loses the variance (1e8
    -- against 1 at 7 digits); sums in double of shifted values keep it
    local x = lm.randn(6, 3, 4, 5) + 1e4
    local w, b = lm.tensor({1, 2, 3}), lm.tensor({0, -1, 1})
    local y = F.batch_norm(x, nil, nil, w, b, true)
    local flat = x:transpose(1, 2):reshape(3, -1) -- x - mean is exact near 1e4 (Sterbenz)
    local mean = flat:mean(2, true)
    local var = ((flat - mean) * (flat - mean)):mean(2, true)
    local want = (flat - mean) / (var + 1e-5):sqrt()
    local got = ((y:transpose(1, 2):reshape(3, -1) - b:view(3, 1)) / w:view(3, 1))
    truthy(rel_error(got, want) < 5e-3, "normalised values (float32 means near 1e4 round at 5e-4)")
    near(y:mean():item(), 0, 1e-3)
  end)

  it("updates the running statistics with the unbiased variance and refuses a wrong weight", function()
    local x = lm.tensor({{1, 10}, {3, 30}})
    local rm, rv = lm.zeros(2), lm.ones(2)
    F.batch_norm(x, rm, rv, nil, nil, true, 0.5)
    same(rm:totable(), {1, 10}, 1e-6)               -- 0.5 * 0 + 0.5 * mean
    same(rv:totable(), {0.5 + 0.5 * 2, 0.5 + 0.5 * 200}, 1e-5) -- unbiased variances 2 and 200
    raises(function() F.batch_norm(x, nil, nil, lm.ones(3), nil, true) end, "batch_norm: weight must be a float32 [2]")
  end)
end)

describe("batch norm, residual sum and ReLU in one pass (evaluation)", function()
  -- a block whose batch norms have statistics and affine maps of their own
  local function block(inplanes, planes, stride)
    lm.manual_seed(6)
    local b = lm.nn.BasicBlock(inplanes, planes, {stride = stride, downsample = stride ~= 1 or nil})
    lm.no_grad(function()
      for _, bn in ipairs({b.bn1, b.bn2, b.downsample and b.downsample[2]}) do
        bn.running_mean:copy_(lm.randn(planes) * 0.5)
        bn.running_var:copy_(lm.rand(planes) + 0.5)
        bn.weight:copy_(lm.randn(planes))
        bn.bias:copy_(lm.randn(planes))
      end
    end)
    return b:evaluate()
  end

  it("gives the unfused modules' values bit for bit, with and without a downsampling branch", function()
    for _, case in ipairs({{8, 8, 1}, {4, 8, 2}}) do
      local b = block(case[1], case[2], case[3])
      local x = lm.randn(3, case[1], 9, 9)
      local fused = lm.no_grad(function() return b(x) end)
      -- with gradients recorded (the parameters require them) nothing is fused
      local unfused = b(x)
      truthy(unfused:requires_grad(), "the reference ran the recorded ops")
      same(fused:totable(), unfused:detach():totable(), 0, "block " .. table.concat(case, ", "))
      truthy(fused:min():item() == 0 and fused:max():item() > 0, "the ReLU clipped some values")
    end
  end)

  it("keeps the modules apart where a hook could tell, in torchvision's order", function()
    local b = block(8, 8, 1)
    local seen = {}
    b.bn2:register_forward_hook(function() seen[#seen + 1] = "bn2" end)
    b.relu:register_forward_hook(function() seen[#seen + 1] = "relu" end)
    local x = lm.randn(2, 8, 5, 5)
    local y = lm.no_grad(function() return b(x) end)
    same(seen, {"relu", "bn2", "relu"})
    local plain = block(8, 8, 1)
    same(y:totable(), lm.no_grad(function() return plain(x) end):totable(), 0, "the same values")
    -- the fused block makes fewer tensors: two results where the modules made five
    local function allocations(net)
      local before = lm.memory_stats().allocations
      lm.no_grad(function() return net(x) end)
      return lm.memory_stats().allocations - before
    end
    local apart, fused = allocations(b), allocations(plain)
    truthy(fused <= apart - 3, ("allocations: %d fused, %d apart"):format(fused, apart))
    plain.fuse = false
    local switched_off = allocations(plain)
    truthy(switched_off >= fused + 3, ("allocations: %d with fuse = false, %d fused"):format(switched_off, fused))
    same(lm.no_grad(function() return plain(x) end):totable(), y:totable(), 0, "the same values with fuse = false")
  end)

  it("passes NaN through the ReLU as the unfused op does, and sums a residual of another shape op by op", function()
    local x = lm.tensor({{{{0 / 0, -1}, {2, -3}}}})   -- [1, 1, 2, 2]
    local one, zero = lm.ones(1), lm.zeros(1)
    local y = F._batch_norm_eval_then(x, zero, one, nil, nil, 0, nil, true)
    local t = y:view(4):totable()
    truthy(t[1] ~= t[1], "NaN passes")
    same({t[2], t[3], t[4]}, {0, 2, 0})
    local r = F._batch_norm_eval_then(x, zero, one, nil, nil, 0, lm.tensor({10, 20}), false) -- broadcast over W
    same(r:view(4):totable()[2], 19)
    raises(function() lm._functional._channel_affine(x, one, zero, lm.ones(1, 1, 2)) end,
      "channel_affine: the residual must be a float32 tensor of the input's shape [1, 1, 2, 2], "
      .. "got a float32 [1, 1, 2]")
  end)
end)

describe("batch norm, residual sum and ReLU in the batch norm's passes (training, CPU)", function()
  -- every gradient and statistic of a module after one step, fused or apart
  local function step(make, fuse, x0)
    lm.manual_seed(9)
    local net = make()
    for _, m in ipairs(net:modules()) do if m.fuse ~= nil then m.fuse = fuse end end
    net:train()
    local x = x0:clone():requires_grad(true)
    local y = net(x)
    ;(y * y:detach():tanh()):sum():backward()
    local got = {y = y:detach(), gx = x.grad}
    for name, p in pairs(net:named_parameters()) do got["grad " .. name] = p.grad end
    for name, t in pairs(net:state_dict()) do got[name] = t end
    return got
  end
  local function same_bits(a, b, label)
    for name, t in pairs(b) do
      truthy(a[name] ~= nil, label .. ": " .. name .. " fused too")
      eq(rel_error(a[name]:float(), t:float()), 0, label .. ": " .. name)
    end
  end

  it("gives the modules' values and gradients bit for bit: blocks, a downsampling branch, a Sequential", function()
    local cases = {
      {"block", function() return lm.nn.BasicBlock(8, 8) end, lm.randn(3, 8, 9, 9)},
      {"downsampling block", function()
        return lm.nn.BasicBlock(4, 8, {stride = 2, downsample = lm.nn.Sequential(lm.nn.Conv2d(4, 8, 1, {stride = 2,
          bias = false}), lm.nn.BatchNorm2d(8))})
      end, lm.randn(3, 4, 8, 8)},
      {"Sequential", function()
        return lm.nn.Sequential(lm.nn.Conv2d(3, 6, 3), lm.nn.BatchNorm2d(6, {momentum = false}), lm.nn.ReLU(),
          lm.nn.Flatten(), lm.nn.Linear(6 * 4 * 4, 2))
      end, lm.randn(4, 3, 6, 6)},
    }
    for _, case in ipairs(cases) do
      local label, make, x = table.unpack(case)
      local fused, apart = step(make, true, x), step(make, false, x)
      same_bits(fused, apart, label)
      truthy(fused.num_batches_tracked ~= nil or fused["1.num_batches_tracked"] ~= nil
        or fused["bn1.num_batches_tracked"] ~= nil, label .. ": the batch counted")
    end
  end)

  it("returns an empty batch as it is, as F.batch_norm does", function()
    local b = lm.nn.BasicBlock(4, 4):train()
    same(b(lm.randn(0, 4, 6, 6)):shape(), {0, 4, 6, 6})
    local s = lm.nn.Sequential(lm.nn.BatchNorm2d(4), lm.nn.ReLU()):train()
    same(s(lm.randn(0, 4, 3, 3)):shape(), {0, 4, 3, 3})
  end)

  it("saves a pass: fewer tensors than the modules apart", function()
    lm.manual_seed(10)
    local b = lm.nn.BasicBlock(8, 8):train()
    local x = lm.randn(2, 8, 6, 6)
    local function allocations()
      local before = lm.memory_stats().allocations
      b(x)
      return lm.memory_stats().allocations - before
    end
    local fused = allocations()
    b.fuse = false
    local apart = allocations()
    truthy(fused <= apart - 3, ("allocations: %d fused, %d apart"):format(fused, apart))
  end)

  it("sends the masked gradient to the residual, passes NaN, and sums a residual of another shape op by op", function()
    local x = lm.tensor({{{{0 / 0, -1}, {2, -3}}}, {{{1, 4}, {-2, 0.5}}}}):requires_grad(true) -- [2, 1, 2, 2]
    local r = lm.tensor({{{{1, -5}, {0, 2}}}, {{{-1, 1}, {3, -4}}}}):requires_grad(true)
    local y = F._batch_norm_train_then(x, nil, nil, nil, nil, 0.1, 1e-5, r, true)
    local t = y:view(8):totable()
    for i = 1, 8 do truthy(t[i] ~= t[i], "the NaN spreads through the statistics: " .. i) end
    local x2 = lm.randn(2, 3, 4, 4):requires_grad(true)
    local r2 = lm.randn(2, 3, 4, 4):requires_grad(true)
    local g = lm.randn(2, 3, 4, 4)
    F._batch_norm_train_then(x2, nil, nil, nil, nil, 0.1, 1e-5, r2, true):backward(g)
    local gx, gr = x2.grad, r2.grad
    x2.grad, r2.grad = nil, nil
    ;(F.batch_norm(x2, nil, nil, nil, nil, true) + r2):relu():backward(g)
    eq(rel_error(gr, r2.grad), 0, "the residual's gradient: g where the output is positive")
    eq(rel_error(gx, x2.grad), 0, "the input's gradient")
    truthy(gr:eq(0):sum():item() > 0, "the mask cut some")
    -- a residual of another shape broadcasts, op by op
    local bn, relu = lm.nn.BatchNorm2d(3):train(), lm.nn.ReLU()
    local small = lm.randn(1, 3, 1, 4)
    local out = lm.nn._bn_then(bn, x2:detach(), small, relu)
    same(out:shape(), {2, 3, 4, 4})
    raises(function() lm._functional._batch_norm(x2, nil, nil, 1e-5, small, true) end,
      "batch_norm: the residual must be a float32 tensor of the input's shape [2, 3, 4, 4], "
      .. "got a float32 [1, 3, 1, 4]")
  end)
end)

describe("a Sequential's batch norm and ReLU in one pass (evaluation)", function()
  it("gives the modules' values, and keeps them apart with fuse = false", function()
    lm.manual_seed(7)
    local net = lm.nn.Sequential(lm.nn.Conv2d(3, 6, 3), lm.nn.BatchNorm2d(6), lm.nn.ReLU(), lm.nn.Flatten(),
      lm.nn.Linear(6 * 4 * 4, 2))
    lm.no_grad(function()
      net[2].running_mean:copy_(lm.randn(6))
      net[2].running_var:copy_(lm.rand(6) + 0.5)
      net[2].bias:copy_(lm.randn(6))
    end)
    net:evaluate()
    local x = lm.randn(4, 3, 6, 6)
    local fused, n_fused = no_grad_allocations(function() return net(x) end)
    net.fuse = false
    local apart, n_apart = no_grad_allocations(function() return net(x) end)
    same(fused:totable(), apart:totable(), 0)
    truthy(n_fused < n_apart, ("allocations: %d fused, %d apart"):format(n_fused, n_apart))
    net.fuse = true
    -- code that wraps F.batch_norm gets it called, unfused (as for F.linear)
    local plain, calls = F.batch_norm, 0
    F.batch_norm = function(...) calls = calls + 1 return plain(...) end
    local ok, wrapped = pcall(lm.no_grad, function() return net(x) end)
    local block_ok, block_err = pcall(function()
      return lm.no_grad(function() return lm.nn.BasicBlock(3, 3):evaluate()(lm.randn(1, 3, 4, 4)) end)
    end)
    F.batch_norm = plain
    assert(ok, wrapped)
    assert(block_ok, block_err)
    eq(calls, 3, "the wrapper ran for the Sequential's batch norm and the block's two")
    same(wrapped:totable(), fused:totable(), 0)
    net:train()
    local trained = lm.no_grad(function() return net(x) end)
    truthy(trained:shape()[2] == 2, "training mode runs (batch statistics)")
  end)
end)

describe("a convolution, its batch norm, residual sum and ReLU as one op (evaluation)", function()
  local C = lm._functional
  local algorithms = dofile("tests/helpers/conv_algorithms.lua")

  it("gives conv2d then the affine map bit for bit, on every path of the convolution", function()
    lm.manual_seed(8)
    -- {N, C, O, H, W, kernel, stride, padding}: Winograd on a large plane and
    -- on a small one (tiles along the images), im2col for few channels, many
    -- images a chunk (side by side), stride 2, a 1x1 stride-2 layer, a
    -- stride-1 layer with few outputs in a batch of 8 (the direct kernel), a
    -- 1x1 stride-1 layer (the pointwise kernel); then
    -- {.., groups, dilation}: depthwise (the direct kernel), a depthwise 7x7
    -- with 2 filters a channel, a dilated grouped stride-2 layer, a grouped
    -- layer (the direct kernel, a block a group)
    local cases = {{2, 16, 16, 12, 12, 3, 1, 1}, {5, 16, 24, 6, 6, 3, 1, 1}, {3, 3, 8, 9, 9, 3, 1, 1},
      {40, 4, 6, 6, 6, 3, 1, 1}, {2, 16, 16, 9, 9, 3, 2, 1}, {2, 8, 16, 8, 8, 1, 2, 0}, {8, 16, 20, 9, 9, 3, 1, 1},
      {3, 20, 14, 9, 9, 1, 1, 0},
      {2, 8, 8, 9, 9, 3, 1, 1, 8, 1}, {2, 6, 12, 10, 10, 7, 1, 3, 6, 1}, {2, 8, 8, 11, 11, 3, 2, 2, 4, 2},
      {2, 8, 16, 10, 10, 3, 1, 1, 4, 1}}
    for _, case in ipairs(cases) do
      local n, c, o, h, w, k, stride, pad, groups, dilation = table.unpack(case)
      groups, dilation = groups or 1, dilation or 1
      local x, weight = lm.randn(n, c, h, w), lm.randn(o, c // groups, k, k) * (1 / math.sqrt(c * k * k))
      local scale, shift = lm.randn(o), lm.randn(o)
      local opts = {stride = stride, padding = pad, groups = groups, dilation = dilation}
      local out = F.conv2d(x, weight, nil, opts)
      local residual = lm.randn(table.unpack(out:shape()))
      for _, algorithm in ipairs(algorithms.available()) do
        algorithms.with(algorithm, function()
          for _, r in ipairs{false, true} do
            for _, relu in ipairs{false, true} do
              local res = r and residual or nil
              local got = C._conv2d_affine(x, weight, opts, scale, shift, res, relu)
              local want = C._channel_affine(F.conv2d(x, weight, nil, opts), scale, shift, res, relu)
              eq(rel_error(got, want), 0, string.format("%s %s residual %s relu %s", algorithm,
                table.concat(case, ","), tostring(r), tostring(relu)))
            end
          end
        end)
      end
    end
    -- an infinite input goes the im2col way, the map after it the same
    local x, weight = lm.randn(1, 16, 6, 6), lm.randn(16, 16, 3, 3)
    x[1][2][3][4] = math.huge
    local scale, shift = lm.randn(16), lm.randn(16)
    local got = C._conv2d_affine(x, weight, {padding = 1}, scale, shift, nil, true)
    local want = C._channel_affine(F.conv2d(x, weight, nil, {padding = 1}), scale, shift, nil, true)
    local a, b = got:view(-1):totable(), want:view(-1):totable()
    for i = 1, #a do
      if not (a[i] == b[i] or (a[i] ~= a[i] and b[i] ~= b[i])) then error("infinite input, value " .. i) end
    end
    -- an empty batch
    eq(C._conv2d_affine(lm.randn(0, 3, 5, 5), lm.randn(4, 3, 3, 3), {padding = 1}, lm.ones(4), lm.zeros(4))
      :shape_string(), "0x4x5x5")
  end)

  it("refuses a residual of another shape, a scale of the wrong size and an input that needs a gradient", function()
    local x, w = lm.randn(2, 3, 5, 5), lm.randn(4, 3, 3, 3)
    local one, zero = lm.ones(4), lm.zeros(4)
    raises(function() C._conv2d_affine(x, w, {padding = 1}, one, zero, lm.ones(2, 4, 3, 3)) end,
      "conv2d_affine: the residual must be a float32 tensor of the output's shape [2, 4, 5, 5], "
      .. "got a float32 [2, 4, 3, 3]")
    raises(function() C._conv2d_affine(x, w, {padding = 1}, lm.ones(3), zero) end,
      "conv2d_affine: scale must be a float32 [4], got [3]")
    raises(function() C._conv2d_affine(x, w:clone():requires_grad(true), {padding = 1}, one, zero) end,
      "conv2d_affine: records no gradient, and an input requires one (run it under no_grad)")
    raises(function() C._conv2d_affine(x, lm.randn(4, 2, 3, 3), {padding = 1}, one, zero) end,
      "conv2d: input has 3 channels, weight expects 2")
  end)

  it("runs a ResNet's convolutions with their batch norms and ReLUs under no_grad: the same bits", function()
    lm.manual_seed(9)
    local net = lm.models.resnet18{stem = "cifar", num_classes = 10, width = 8}
    net:train()
    lm.no_grad(function() for _ = 1, 2 do net(lm.randn(6, 3, 16, 16)) end end) -- running statistics of its own
    net:evaluate()
    local x = lm.randn(3, 3, 16, 16)
    local function run() return net(x) end
    local fused, n_fused = no_grad_allocations(run)
    for _, m in ipairs(net:modules()) do m.fuse = false end
    local apart, n_apart = no_grad_allocations(run)
    eq(rel_error(fused, apart), 0, "fused against module by module")
    -- 20 convolutions, each with its batch norm: one output instead of two
    -- or more (fusing the batch norms and ReLUs alone saves 25 of 268
    -- allocations, the convolutions with them 45)
    truthy(n_fused <= n_apart - 40, ("allocations: %d fused, %d apart"):format(n_fused, n_apart))
    -- with gradients recorded nothing is fused, and the values are the same
    for _, m in ipairs(net:modules()) do m.fuse = nil end
    local recorded = net(x)
    truthy(recorded:requires_grad(), "the recorded ops ran")
    eq(rel_error(recorded:detach(), fused), 0, "recorded")
  end)

  it("fuses a Sequential's convolution, batch norm and ReLU; a hook or a bias keeps them apart", function()
    lm.manual_seed(10)
    local function net(bias)
      local s = lm.nn.Sequential(lm.nn.Conv2d(3, 6, 3, {padding = 1, bias = bias}), lm.nn.BatchNorm2d(6),
        lm.nn.ReLU(), lm.nn.Conv2d(6, 4, 1, {bias = false}), lm.nn.BatchNorm2d(4))
      lm.no_grad(function()
        for _, bn in ipairs{s[2], s[5]} do
          bn.running_mean:copy_(lm.randn(bn.num_features))
          bn.running_var:copy_(lm.rand(bn.num_features) + 0.5)
          bn.bias:copy_(lm.randn(bn.num_features))
        end
      end)
      return s:evaluate()
    end
    local x = lm.randn(2, 3, 7, 7)
    local s = net(false)
    local function run() return s(x) end
    local fused, n_fused = no_grad_allocations(run)
    s.fuse = false
    local apart, n_apart = no_grad_allocations(run)
    s.fuse = true
    eq(rel_error(fused, apart), 0, "the same values")
    truthy(n_fused <= n_apart - 2, ("allocations: %d fused, %d apart"):format(n_fused, n_apart))
    local calls = 0
    s[1]:register_forward_hook(function() calls = calls + 1 end)
    local hooked = lm.no_grad(function() return s(x) end)
    eq(calls, 1, "the hooked convolution ran as a module")
    eq(rel_error(hooked, fused), 0, "hooked")
    -- a BatchNorm1d after a convolution is not fused: its shape error stands
    local wrong = lm.nn.Sequential(lm.nn.Conv2d(3, 6, 3, {bias = false}), lm.nn.BatchNorm1d(6)):evaluate()
    raises(function() lm.no_grad(function() return wrong(x) end) end,
      "nn.BatchNorm1d: input must be [N, C] or [N, C, L], got 2x6x5x5 (in module 2 (nn.BatchNorm1d) of nn.Sequential)")
    local with_bias = net(true)
    local y = lm.no_grad(function() return with_bias(x) end)
    with_bias.fuse = false
    eq(rel_error(y, lm.no_grad(function() return with_bias(x) end)), 0, "a convolution with a bias")
  end)
end)
