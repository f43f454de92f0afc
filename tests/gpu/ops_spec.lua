-- Every op and its backward on the GPU against the CPU reference, on random
-- inputs that include non-contiguous views and broadcast operands.
-- Tolerances (max |gpu - cpu| / max(|cpu|, 1e-3)), stated per family:
--   exact (0):  copies, comparisons, argmax/argmin, indices, uniform and
--               Bernoulli numbers (same Philox counters on both devices);
--   1e-6:       elementwise arithmetic, normal numbers (double Box-Muller);
--   1e-5:       transcendental functions and reductions (different exp/log
--               implementations; different summation order);
--   1e-4:       matrix products, convolutions and everything after them
--               (cuBLAS/cuDNN block orders), whole training steps.
-- Skips, saying why, when no GPU answers.
local lm = require 'lumen'
local F = lm.nn.functional

-- LUMEN_GPU_DRY_RUN=1 is a smoke run: the whole file with 'cpu' standing in
-- for the GPU. Every comparison is then CPU against CPU and cannot fail on
-- numbers; it only shows that the spec's code runs before device time is
-- spent on it. It is not a GPU check, and ctest names it gpu_specs_smoke.
local DEV, DRY = dofile("tests/helpers/gpu_device.lua")("ops_spec", skip)

local EXACT, ARITH, TRANS, GEMM = 0, 1e-6, 1e-5, 1e-4

local function rel_err(gpu, cpu)
  local g = gpu:to('cpu')
  eq(table.concat(g:shape(), "x"), table.concat(cpu:shape(), "x"), "shape")
  if cpu:numel() == 0 then return 0 end
  local ref = cpu:float()
  local scale = math.max(ref:abs():max():item(), 1e-3)
  return (g:float() - ref):abs():max():item() / scale
end

local function close(gpu, cpu, tol, what)
  eq(gpu:device(), DEV, what .. " lives on the GPU")
  local e = rel_err(gpu, cpu)
  truthy(e <= tol, string.format("%s: relative error %.3g over %.0g", what, e, tol))
end

-- Runs f on CPU copies and GPU copies of `inputs` (name -> tensor); compares
-- the outputs and, for the names in `grads`, the gradients of sum(out * r)
-- for a fixed random r. Returns the GPU output.
local function check(what, inputs, grads, f, tol, grad_tol)
  local cpu, gpu = {}, {}
  for name, t in pairs(inputs) do cpu[name], gpu[name] = t, t:to(DEV) end
  for _, name in ipairs(grads or {}) do
    cpu[name] = inputs[name]:clone():requires_grad(true)
    gpu[name] = inputs[name]:clone():to(DEV):requires_grad(true)
  end
  local out_c, out_g = f(cpu), f(gpu)
  close(out_g, out_c, tol, what)
  if grads and #grads > 0 then
    local r = lm.randn(out_c:shape())
    local loss_c, loss_g = (out_c * r):sum(), (out_g * r:to(DEV)):sum()
    loss_c:backward()
    loss_g:backward()
    for _, name in ipairs(grads) do
      close(gpu[name].grad, cpu[name].grad, grad_tol or tol, what .. " d/d" .. name)
    end
  end
  return out_g
end

-- The GPU output of `what` against the core's reference loops
-- (lm._reference: plain loops, double sums) on the same CPU inputs. In the
-- smoke run this is the one comparison that is not CPU against itself: it
-- checks the CPU backend (BLAS, im2col) against an independent definition.
local R = lm._reference
local function against_reference(what, out_g, ref)
  close(out_g, ref, GEMM, what .. " against lm._reference")
end

lm.manual_seed(7)

describe("gpu elementwise", function()
  local x = lm.randn(6, 9)
  local xt = lm.randn(9, 6):t()          -- non-contiguous
  local pos = lm.rand(6, 9) + 0.1
  local unary = {
    neg = {function(t) return -t.x end, ARITH}, abs = {function(t) return t.x:abs() end, ARITH},
    exp = {function(t) return t.x:exp() end, TRANS}, tanh = {function(t) return t.x:tanh() end, TRANS},
    sigmoid = {function(t) return t.x:sigmoid() end, TRANS}, relu = {function(t) return t.x:relu() end, ARITH},
    elu = {function(t) return t.x:elu(0.7) end, TRANS}, clamp = {function(t) return t.x:clamp(-0.5, 0.5) end, ARITH},
    square = {function(t) return t.x ^ 2 end, ARITH}, scalar = {function(t) return 2 - t.x * 3 + 1 end, ARITH},
    rdiv = {function(t) return 1 / (t.x:abs() + 1) end, ARITH},
  }
  for name, case in pairs(unary) do
    it(name .. " and its gradient, contiguous and transposed", function()
      check(name, {x = x}, {"x"}, case[1], case[2])
      check(name .. " (transposed)", {x = xt}, {"x"}, case[1], case[2])
    end)
  end
  it("log, sqrt and pow on positive inputs", function()
    check("log", {x = pos}, {"x"}, function(t) return t.x:log() end, TRANS)
    check("sqrt", {x = pos}, {"x"}, function(t) return t.x:sqrt() end, TRANS)
    check("pow", {x = pos}, {"x"}, function(t) return t.x ^ 2.5 end, TRANS)
    check("sign", {x = x}, nil, function(t) return t.x:sign() end, EXACT)
  end)
  it("binary ops broadcast like the CPU, with gradients reduced back", function()
    local row, col = lm.randn(9), lm.randn(6, 1)
    check("add row", {a = x, b = row}, {"a", "b"}, function(t) return t.a + t.b end, ARITH)
    check("sub col", {a = col, b = xt}, {"a", "b"}, function(t) return t.a - t.b end, ARITH)
    check("mul", {a = x, b = xt}, {"a", "b"}, function(t) return t.a * t.b end, ARITH)
    check("div", {a = x, b = pos}, {"a", "b"}, function(t) return t.a / t.b end, ARITH)
    check("pow", {a = pos, b = x}, {"a", "b"}, function(t) return t.a:pow(t.b) end, TRANS)
    check("maximum", {a = x, b = xt}, {"a", "b"}, function(t) return t.a:maximum(t.b) end, ARITH)
    check("minimum", {a = x, b = row}, nil, function(t) return t.a:minimum(t.b) end, ARITH)
    for _, op in ipairs{"eq", "ne", "lt", "le", "gt", "ge"} do
      check(op, {a = x, b = xt:clone():fill_(0)}, nil, function(t) return t.a[op](t.a, t.b) end, EXACT)
    end
    check("where", {c = x:gt(0), a = x, b = xt}, nil, function(t) return lm.where(t.c, t.a, t.b) end, EXACT)
  end)
  it("copies, dtype conversions and views", function()
    local p = lm.randn(2, 3, 4, 5):permute(4, 2, 1, 3)
    check("permuted contiguous()", {x = p}, nil, function(t) return t.x:contiguous() end, EXACT)
    check("narrow/select", {x = x}, {"x"}, function(t) return t.x:narrow(2, 3, 4):select(1, 2) * 2 end, ARITH)
    check("to int32", {x = x * 10}, nil, function(t) return t.x:int() end, EXACT)
    check("int32 arithmetic", {x = lm.tensor({1, -7, 12}, 'int32')}, nil, function(t) return t.x * 3 - 1 end, EXACT)
    check("cat", {a = x, b = xt}, {"a", "b"}, function(t) return lm.cat({t.a, t.b}, 2) end, EXACT)
    check("stack", {a = x, b = xt}, {"a", "b"}, function(t) return lm.stack({t.a, t.b}) end, EXACT)
    local g = lm.zeros(3, 4, DEV)
    eq(g:device(), DEV)
    eq(g:sum():item(), 0)
    eq(lm.full({2, 2}, 3, DEV):sum():item(), 12)
    g:fill_(2)
    eq(g:to('cpu'):totable()[3][4], 2)
  end)
end)

describe("gpu reductions", function()
  local x, xt = lm.randn(33, 70), lm.randn(70, 33):t()
  for _, src in ipairs{{"contiguous", x}, {"transposed", xt}} do
    it("sum/mean/var/std/max/min on " .. src[1] .. " input", function()
      local v = src[2]
      check("sum all", {x = v}, {"x"}, function(t) return t.x:sum() end, TRANS)
      check("sum dim 1", {x = v}, {"x"}, function(t) return t.x:sum(1) end, TRANS)
      check("mean dim 2 keepdim", {x = v}, {"x"}, function(t) return t.x:mean(2, true) end, TRANS)
      check("var dim 2", {x = v}, {"x"}, function(t) return t.x:var(2) end, TRANS)
      check("std all", {x = v}, {"x"}, function(t) return t.x:std() end, TRANS)
      check("var all", {x = v}, nil, function(t) return t.x:var() end, TRANS)
      check("max dim 1", {x = v}, {"x"}, function(t) return t.x:max(1) end, EXACT, TRANS)
      check("min dim 2", {x = v}, {"x"}, function(t) return t.x:min(2) end, EXACT, TRANS)
      check("max all", {x = v}, nil, function(t) return t.x:max() end, EXACT)
      check("argmax dim 2", {x = v}, nil, function(t) return t.x:argmax(2) end, EXACT)
      check("argmin dim 1", {x = v}, nil, function(t) return t.x:argmin(1) end, EXACT)
    end)
  end
  it("a long reduction over many blocks, ties and NaN like the CPU", function()
    local big = lm.randn(1000, 1003)
    check("sum of 1e6", {x = big}, nil, function(t) return t.x:sum() end, TRANS)
    check("argmax of 1e6", {x = big}, nil, function(t) return t.x:argmax() end, EXACT)
    local ties = lm.tensor({{1, 5, 5, 2}, {3, 3, 1, 0}})
    check("first index on ties", {x = ties}, nil, function(t) return t.x:argmax(2) end, EXACT)
    local nan = lm.tensor({1, 0 / 0, 4, 0 / 0})
    eq(nan:to(DEV):argmax():item(), nan:argmax():item(), "NaN wins at the same index")
  end)
end)

describe("gpu matrix products", function()
  it("plain, transposed, batched and broadcast batches", function()
    local a, b = lm.randn(37, 50), lm.randn(50, 29)
    local at_, bt, v = lm.randn(50, 37), lm.randn(29, 50), lm.randn(50)
    local a3, b3, b2 = lm.randn(4, 7, 5), lm.randn(4, 5, 6), lm.randn(5, 6)
    local out = check("matmul", {a = a, b = b}, {"a", "b"}, function(t) return lm.matmul(t.a, t.b) end, GEMM)
    against_reference("matmul", out, R.matmul(a, b))
    out = check("matmul a^T", {a = at_, b = b}, {"a", "b"},
      function(t) return lm.matmul(t.a:t(), t.b) end, GEMM)
    against_reference("matmul a^T", out, R.matmul(at_:t(), b))
    out = check("matmul b^T", {a = a, b = bt}, {"a", "b"},
      function(t) return lm.matmul(t.a, t.b:t()) end, GEMM)
    against_reference("matmul b^T", out, R.matmul(a, bt:t()))
    out = check("batched", {a = a3, b = b3}, {"a", "b"},
      function(t) return lm.matmul(t.a, t.b) end, GEMM)
    against_reference("batched", out, R.matmul(a3, b3))
    out = check("broadcast batch", {a = a3, b = b2}, {"a", "b"},
      function(t) return lm.matmul(t.a, t.b) end, GEMM)
    against_reference("broadcast batch", out, R.matmul(a3, b2))
    out = check("vector", {a = a, b = v}, {"a", "b"}, function(t) return lm.matmul(t.a, t.b) end, GEMM)
    against_reference("vector", out, R.matmul(a, v:view(50, 1)):view(37))
  end)
  it("TF32 is off unless asked for", function()
    eq(lm.cuda.allow_tf32(), false)
    eq(lm.cuda.allow_tf32(true), true)
    eq(lm.cuda.allow_tf32(false), false)
  end)
end)

describe("gpu layers and losses", function()
  it("linear, softmax, log_softmax, cross_entropy, mse, mmd", function()
    check("linear", {x = lm.randn(16, 30), w = lm.randn(20, 30), b = lm.randn(20)}, {"x", "w", "b"},
      function(t) return F.linear(t.x, t.w, t.b) end, GEMM)
    check("softmax", {x = lm.randn(12, 10) * 3}, {"x"}, function(t) return F.softmax(t.x, 2) end, TRANS)
    check("softmax wide rows", {x = lm.randn(3, 1000)}, {"x"}, function(t) return F.softmax(t.x, 2) end, TRANS)
    check("log_softmax", {x = lm.randn(12, 10) * 3}, {"x"}, function(t) return F.log_softmax(t.x, 2) end, TRANS)
    check("cross_entropy", {l = lm.randn(12, 10) * 2, y = lm.tensor({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2}, 'int32')},
      {"l"}, function(t) return F.cross_entropy(t.l, t.y) end, TRANS)
    check("mse", {a = lm.randn(12, 10), b = lm.randn(12, 10)}, {"a", "b"}, function(t) return F.mse(t.a, t.b) end,
      TRANS)
    check("one_hot", {y = lm.tensor({3, 1, 2}, 'int32')}, nil, function(t) return lm.data.one_hot(t.y, 4) end, EXACT)
    check("mmd", {z = lm.randn(40, 2), p = lm.randn(50, 2)}, {"z", "p"}, function(t) return F.mmd(t.z, t.p) end, GEMM)
    check("mmd, five bandwidths and a weight (the main experiment's)", {z = lm.randn(130, 2) * 2, p = lm.randn(128, 2)},
      {"z", "p"}, function(t) return F.mmd(t.z, t.p, {bw = {0.2, 2, 20, 200, 2000}, weight = 500}) end, GEMM)
    check("mse over wide rows", {a = lm.randn(9, 300), b = lm.randn(9, 300)}, {"a", "b"},
      function(t) return F.mse(t.a, t.b) end, TRANS)
  end)
  it("conv2d (cuDNN when built with it), pooling", function()
    local x, w, b = lm.randn(4, 3, 11, 11), lm.randn(8, 3, 3, 3), lm.randn(8)
    local out = check("conv2d 3x3 s2 p1", {x = x, w = w, b = b}, {"x", "w", "b"},
      function(t) return F.conv2d(t.x, t.w, t.b, {stride = 2, padding = 1}) end, GEMM)
    against_reference("conv2d 3x3 s2 p1", out, R.conv2d(x, w, b, {stride = 2, padding = 1}))
    x, w = lm.randn(3, 5, 6, 6), lm.randn(4, 5, 1, 1)
    out = check("conv2d 1x1", {x = x, w = w}, {"x", "w"}, function(t) return F.conv2d(t.x, t.w) end, GEMM)
    against_reference("conv2d 1x1", out, R.conv2d(x, w))
    x, w = lm.randn(3, 4, 9, 9):transpose(3, 4), lm.randn(2, 4, 3, 3)
    out = check("conv2d non-contiguous input", {x = x, w = w},
      {"x", "w"}, function(t) return F.conv2d(t.x, t.w, {padding = 1}) end, GEMM)
    against_reference("conv2d non-contiguous input", out, R.conv2d(x, w, nil, {padding = 1}))
    -- an empty batch: an empty output and a zero weight gradient (cuDNN refuses zero sizes)
    check("conv2d empty batch", {x = lm.randn(0, 16, 8, 8), w = lm.randn(16, 16, 3, 3), b = lm.randn(16)},
      {"x", "w", "b"}, function(t) return F.conv2d(t.x, t.w, t.b, {padding = 1}) end, EXACT)
    -- no output channels: an empty output, the input's gradient zero
    check("conv2d no output channels", {x = lm.randn(2, 3, 6, 6), w = lm.randn(0, 3, 3, 3)},
      {"x", "w"}, function(t) return F.conv2d(t.x, t.w, nil, {padding = 1}) end, EXACT)
    check("max_pool2d", {x = lm.randn(2, 3, 8, 8)}, {"x"}, function(t) return F.max_pool2d(t.x, 2) end, EXACT, ARITH)
    check("max_pool2d overlapping", {x = lm.randn(2, 3, 9, 9)}, {"x"},
      function(t) return F.max_pool2d(t.x, 3, {stride = 2, padding = 1}) end, EXACT, ARITH)
    check("avg_pool2d", {x = lm.randn(2, 3, 8, 8)}, {"x"}, function(t) return F.avg_pool2d(t.x, 2) end, ARITH)
    check("max_pool2d, (h, w) pairs", {x = lm.randn(2, 3, 9, 10)}, {"x"},
      function(t) return F.max_pool2d(t.x, {2, 3}, {stride = {2, 1}, padding = {1, 1}}) end, EXACT, ARITH)
    check("avg_pool2d, (h, w) pairs", {x = lm.randn(2, 3, 9, 10)}, {"x"},
      function(t) return F.avg_pool2d(t.x, {3, 1}, {stride = {1, 2}, padding = {1, 0}}) end, ARITH)
    check("max_pool2d, ceil_mode", {x = lm.randn(2, 3, 10, 9)}, {"x"},
      function(t) return F.max_pool2d(t.x, 3, {stride = 2, ceil_mode = true}) end, EXACT, ARITH)
    check("avg_pool2d, ceil_mode and count_include_pad = false", {x = lm.randn(2, 3, 10, 9)}, {"x"},
      function(t) return F.avg_pool2d(t.x, {3, 2}, {stride = 2, padding = 1, ceil_mode = true,
        count_include_pad = false}) end, ARITH)
    x, w, b = lm.randn(2, 3, 11, 10), lm.randn(4, 3, 3, 5), lm.randn(4)
    out = check("conv2d 3x5 stride {2, 1} padding {1, 2}", {x = x, w = w, b = b}, {"x", "w", "b"},
      function(t) return F.conv2d(t.x, t.w, t.b, {stride = {2, 1}, padding = {1, 2}}) end, GEMM)
    against_reference("conv2d 3x5 stride {2, 1} padding {1, 2}", out,
      R.conv2d(x, w, b, {stride = {2, 1}, padding = {1, 2}}))
    check("global_avg_pool2d", {x = lm.randn(2, 3, 5, 5)}, {"x"}, function(t) return F.global_avg_pool2d(t.x) end,
      TRANS)
  end)
  it("dropout draws the same mask on both devices", function()
    local x = lm.randn(64, 50)
    lm.manual_seed(99)
    local c = F.dropout(x, 0.3, true)
    lm.manual_seed(99)
    local g = F.dropout(x:to(DEV), 0.3, true)
    close(g, c, ARITH, "dropout")
  end)
  it("a Linear with its activation and dropout as one op (composed on the GPU)", function()
    local x, w, b, grad = lm.randn(64, 30), lm.randn(20, 30) * 0.3, lm.randn(20), lm.randn(64, 20)
    for _, act in ipairs({"elu", "relu", "none"}) do
      local out, grads = {}, {}
      for _, dev in ipairs({"cpu", DEV}) do
        -- (copies: x:to('cpu') is x itself, whose gradient would add up over the activations)
        local xd, wd, bd = x:clone():to(dev):requires_grad(true), w:clone():to(dev):requires_grad(true),
          b:clone():to(dev):requires_grad(true)
        lm.manual_seed(5)
        out[dev] = F._linear_act(xd, wd, bd, act, 1, 0.8)
        out[dev]:backward(grad:to(dev))
        grads[dev] = {xd.grad, wd.grad, bd.grad}
      end
      close(out[DEV], out.cpu, GEMM, "linear_act " .. act)
      for i, name in ipairs({"x", "w", "b"}) do
        close(grads[DEV][i], grads.cpu[i], GEMM, "linear_act " .. act .. " d/d" .. name)
      end
    end
  end)
  it("index_select and topk", function()
    local x = lm.randn(50, 8)
    local idx = lm.tensor({5, 1, 50, 5}, 'int32')
    close(x:to(DEV):index_select(idx:to(DEV)), x:index_select(idx), EXACT, "index_select")
    -- an index on the host is copied over; an output elsewhere is refused
    close(x:to(DEV):index_select(idx), x:index_select(idx), EXACT, "index_select, host index")
    if not DRY then
      raises(function() lm._index_select_into(lm.zeros(4, 8), x:to(DEV), idx) end,
        "index_select: output is on cpu, input on " .. DEV)
    end
    local d = lm.randn(6, 40)
    local vc, ic = d:topk(5)
    local vg, ig = d:to(DEV):topk(5)
    close(vg, vc, EXACT, "topk values")
    close(ig, ic, EXACT, "topk indices")
    local vc2, ic2 = d:topk(3, true)
    local vg2, ig2 = d:to(DEV):topk(3, true)
    close(vg2, vc2, EXACT, "topk largest")
    close(ig2, ic2, EXACT, "topk largest indices")
  end)
  it("uploads past the staging buffers' size, and without pinned memory", function()
    local n = 10 * 2 ^ 20 + 3 -- 40 MiB and a little: two pinned chunks and a part
    local x = lm.arange(1, n + 1)
    eq((x:to(DEV):to('cpu') - x):abs():max():item(), 0, "round trip")
    if DRY then return end
    -- a sandbox may refuse pinned memory (the emulator's LUMEN_EMU_NO_PINNED stands in):
    -- the upload then copies from pageable memory
    local lumen = (os.getenv("LUMEN_BUILD_DIR") or "build") .. "/lumen"
    local p = io.popen("LUMEN_EMU_NO_PINNED=1 " .. lumen .. " -e \"local lm = require 'lumen'; " ..
      "local x = lm.arange(1, 3 * 2 ^ 20); print((x:to('cuda'):to('cpu') - x):abs():max():item())\" 2>&1")
    local out = p:read("a")
    p:close()
    eq(out, "0.0\n", "round trip without pinned memory")
  end)
  it("a figure draws a GPU tensor as the same pixels as its CPU copy", function()
    local img = lm.rand(3, 6, 5)
    local function pixels(t)
      local fig = lm.plot.figure{width = 20, height = 20}
      fig:image(2, 3, t, 2)
      local canvas, out = fig:render(), {}
      for y = 0, 19 do
        for x = 0, 19 do out[#out + 1] = table.concat({canvas:pixel(x, y)}, ",") end
      end
      return table.concat(out, ";")
    end
    truthy(pixels(img) ~= pixels(lm.zeros(3, 6, 5)), "the image is drawn")
    eq(pixels(img:to(DEV)), pixels(img), "pixels")
  end)
  it("torch's losses run on the device and refuse a target or weight elsewhere", function()
    local p, t, w = lm.rand(3, 4), lm.rand(3, 4), lm.rand(4)
    close(F.binary_cross_entropy(p:to(DEV), t:to(DEV), {weight = w:to(DEV)}),
      F.binary_cross_entropy(p, t, {weight = w}), TRANS, "binary_cross_entropy")
    local logp, y = lm.randn(3, 4):log_softmax(2), lm.tensor({1, 4, 2}, 'int32')
    close(F.nll_loss(logp:to(DEV), y:to(DEV), {weight = w:to(DEV)}), F.nll_loss(logp, y, {weight = w}), TRANS,
      "nll_loss")
    if DRY then return end
    raises(function() F.l1_loss(p:to(DEV), t) end, "l1_loss: the target is on cpu, the input on " .. DEV)
    raises(function() F.binary_cross_entropy(p:to(DEV), t:to(DEV), {weight = w}) end,
      "binary_cross_entropy: weight is on cpu, the input on " .. DEV)
    raises(function() F.nll_loss(logp:to(DEV), y, {weight = w}) end, "nll_loss: weight is on cpu, the input on " .. DEV)
  end)
  it("topk by sorting (a large k, a few long rows): ties, signed zeros, NaN as the CPU", function()
    local pool = {-1, 0, -0.0, 1, 0 / 0, math.huge, -math.huge, 2.5}
    local function rows_of(r, c) -- a fixed draw from the pool
      local t, seed = {}, 7
      for i = 1, r do
        t[i] = {}
        for j = 1, c do
          seed = (seed * 1103515245 + 12345) % 2147483648
          t[i][j] = pool[seed % #pool + 1]
        end
      end
      return lm.tensor(t)
    end
    for _, case in ipairs({{3, 300, 300}, {3, 300, 100}, {2, 5000, 5}, {5, 65, 65}}) do
      local d = rows_of(case[1], case[2])
      for _, largest in ipairs({false, true}) do
        local what = string.format("topk(%d) of %dx%d%s", case[3], case[1], case[2],
                                   largest and ", largest" or "")
        local vc, ic = d:topk(case[3], largest)
        local vg, ig = d:to(DEV):topk(case[3], largest)
        close(ig, ic, EXACT, what .. ": indices")
        close(vg:isnan(), vc:isnan(), EXACT, what .. ": NaN places")
        -- comparable numbers: NaN as 0, infinities clamped, a zero's sign through 1/v
        local function plain(v) return v:masked_fill(v:isnan(), 0):clamp(-10, 10) end
        close(plain(vg), plain(vc), EXACT, what .. ": values")
        close(plain(plain(vg):reciprocal()), plain(plain(vc):reciprocal()), EXACT, what .. ": zeros' signs")
      end
    end
  end)
end)

describe("gpu random numbers", function()
  it("the same seed gives the same numbers as the CPU", function()
    for _, shape in ipairs{{1001}, {7, 13}} do
      lm.manual_seed(5); local uc = lm.rand(shape)
      lm.manual_seed(5); local ug = lm.rand(shape, DEV)
      close(ug, uc, EXACT, "rand")
      lm.manual_seed(6); local nc = lm.randn(shape)
      lm.manual_seed(6); local ng = lm.randn(shape, DEV)
      close(ng, nc, ARITH, "randn")
    end
    local strided = lm.zeros(20, 10, DEV):t()
    lm.manual_seed(9); strided:uniform_(-1, 1)
    lm.manual_seed(9); local ref = lm.zeros(20, 10):t():uniform_(-1, 1)
    close(strided, ref, EXACT, "uniform_ into a transposed view")
    -- bounds whose span times a draw is not exact: a fused multiply-add
    -- rounds about half of them differently (an initialiser's bounds)
    for _, b in ipairs{{-0.1, 0.3}, {-1 / math.sqrt(30), 1 / math.sqrt(30)}, {2, 5}} do
      lm.manual_seed(11); local ug2 = lm.zeros(4099, DEV):uniform_(b[1], b[2])
      lm.manual_seed(11); local uc2 = lm.zeros(4099):uniform_(b[1], b[2])
      close(ug2, uc2, EXACT, string.format("uniform_(%g, %g)", b[1], b[2]))
    end
  end)
end)

describe("gpu optimisers", function()
  local function step(kind, settings, device)
    lm.manual_seed(3)
    local net = lm.nn.Linear(6, 4)
    net:to(device)
    local opt = lm.optim[kind](net:parameters(), settings)
    for _ = 1, 3 do
      opt:zero_grad()
      local x = lm.randn(5, 6):to(device)
      F.mse(net(x), lm.ones(5, 4, device)):backward()
      opt:step()
    end
    return net.weight
  end
  it("updates every one of many parameters once, empty ones among them (one launch takes 48)", function()
    local function run(device)
      local ps = {}
      for k = 1, 120 do ps[k] = lm.full({k % 7 == 3 and 0 or 3}, k, 'float32', device):requires_grad(true) end
      local opt = lm.optim.Adam(ps, {lr = 0.1})
      for _, p in ipairs(ps) do p.grad = lm.ones(p:shape(), 'float32', device) end
      opt:step()
      return ps
    end
    local g, c = run(DEV), run('cpu')
    for k = 1, 120 do close(g[k], c[k], ARITH, "parameter " .. k) end
  end)
  for kind, settings in pairs{SGD = {lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01},
      Adam = {lr = 0.01, weight_decay = 0.01}, AdamW = {lr = 0.01, weight_decay = 0.1},
      RMSprop = {lr = 0.01}} do
    it(kind .. " updates the parameters as on the CPU", function()
      close(step(kind, settings, DEV), step(kind, settings, 'cpu'), GEMM, kind)
    end)
  end
end)

describe("gpu errors and memory", function()
  if DRY then return end -- CUDA-only behaviour: nothing for the CPU to stand in for
  it("mixing devices is an error that names both", function()
    local a, b = lm.ones(3), lm.ones(3, 'cuda')
    raises(function() return a + b end, "cpu and cuda")
    raises(function() return lm.matmul(lm.ones(2, 2, 'cuda'), lm.ones(2, 2)) end, "different devices")
    raises(function() return F.linear(lm.ones(2, 3, 'cuda'), lm.ones(4, 3)) end, "different devices")
    -- a gradient from the other device, given to backward or to .grad
    local w = lm.ones(3, 'cuda'):requires_grad(true)
    local y = w * 2
    raises(function() y:backward(lm.ones(3)) end, "backward: the gradient is on cpu, the output on cuda")
    raises(function() w.grad = lm.ones(3) end, "grad: the gradient is on cpu, the tensor on cuda")
  end)
  it("uint8 tensors stay on the CPU, and their float batches go to the GPU", function()
    local bytes = lm.tensor({{0, 255}, {51, 102}}, 'uint8')
    raises(function() return bytes:to('cuda') end, "uint8 tensors live on the CPU only: make bytes on the CPU, "
      .. "and convert them with x:float() before moving them to 'cuda'")
    raises(function() return lm.ones(2, 'cuda'):byte() end, "uint8 tensors live on the CPU only")
    raises(function() return lm.zeros(2, 'uint8', 'cuda') end, "uint8 tensors live on the CPU")
    local x = lm.data.to_float(bytes):to('cuda')
    eq(x:to('cpu'):totable()[2][1], lm.data.to_float(bytes):totable()[2][1])
  end)
  it("the caching allocator reuses blocks and empties on request", function()
    lm.cuda.synchronize()
    collectgarbage(); collectgarbage()
    local before = lm.cuda.memory_stats()
    for _ = 1, 50 do
      local t = lm.zeros(1000, 1000, 'cuda') -- luacheck: ignore 231 (held, never read)
      t = nil
      collectgarbage() -- gives the block back at once
    end
    collectgarbage(); collectgarbage()
    local after = lm.cuda.memory_stats()
    truthy(after.cache_hits - before.cache_hits >= 40, "blocks are reused")
    truthy(after.cached_bytes > 0, "freed blocks are kept")
    lm.cuda.empty_cache()
    eq(lm.cuda.memory_stats().cached_bytes, 0)
    truthy(#lm.cuda.device_name() > 0)
  end)
end)

-- the elementwise ops added after the others (drawn last: the cases above keep their inputs)
describe("gpu elementwise, the later ops", function()
  local x = lm.randn(6, 9) * 2
  local xt = (lm.randn(9, 6) * 2):t()    -- non-contiguous
  local pos = lm.rand(6, 9) + 0.1
  local more = {
    leaky_relu = {function(t) return t.x:leaky_relu() end, ARITH, x},
    leaky_relu_slope = {function(t) return t.x:leaky_relu(-0.3) end, ARITH, x},
    floor = {function(t) return t.x:floor() end, EXACT, x}, ceil = {function(t) return t.x:ceil() end, EXACT, x},
    round = {function(t) return t.x:round() end, EXACT, x}, trunc = {function(t) return t.x:trunc() end, EXACT, x},
    log1p = {function(t) return t.x:log1p() end, TRANS, pos}, expm1 = {function(t) return t.x:expm1() end, TRANS, x},
    log2 = {function(t) return t.x:log2() end, TRANS, pos}, log10 = {function(t) return t.x:log10() end, TRANS, pos},
    reciprocal = {function(t) return t.x:reciprocal() end, ARITH, pos},
    rsqrt = {function(t) return t.x:rsqrt() end, TRANS, pos},
    square = {function(t) return t.x:square() end, ARITH, x}, erf = {function(t) return t.x:erf() end, TRANS, x},
    softplus = {function(t) return F.softplus(t.x) end, TRANS, x},
    softplus_beta = {function(t) return F.softplus(t.x * 3, 2, 5) end, TRANS, x},
    -- torch's other activations (x * 2 crosses hardswish's -3 and 3)
    hardswish = {function(t) return F.hardswish(t.x * 2) end, ARITH, x},
    hardsigmoid = {function(t) return F.hardsigmoid(t.x * 2) end, ARITH, x},
    mish = {function(t) return F.mish(t.x) end, TRANS, x}, selu = {function(t) return F.selu(t.x) end, TRANS, x},
    celu = {function(t) return F.celu(t.x, 0.7) end, TRANS, x},
    logsigmoid = {function(t) return F.logsigmoid(t.x) end, TRANS, x},
    softsign = {function(t) return F.softsign(t.x) end, ARITH, x},
    tanhshrink = {function(t) return F.tanhshrink(t.x) end, TRANS, x},
    hardshrink = {function(t) return F.hardshrink(t.x, 0.7) end, ARITH, x},
    softshrink = {function(t) return F.softshrink(t.x, 0.7) end, ARITH, x},
    threshold = {function(t) return F.threshold(t.x, 0.3, -2) end, ARITH, x},
  }
  local names = {}
  for name in pairs(more) do names[#names + 1] = name end
  table.sort(names) -- a fixed order: the same draws of r every run
  for _, name in ipairs(names) do
    local case = more[name]
    it(name .. " and its gradient, contiguous and transposed", function()
      check(name, {x = case[3]}, {"x"}, case[1], case[2])
      check(name .. " (transposed)", {x = case[3] == pos and pos:t():contiguous():t() or xt}, {"x"}, case[1], case[2])
    end)
  end
  it("the rounding ops on ties, signed zeros and int32; the predicates on NaN and infinities", function()
    local ties = lm.tensor({0.5, 1.5, 2.5, -0.5, -2.5, -0.0, 0.0, 3.7, -3.7, 1e30})
    for _, op in ipairs({"floor", "ceil", "round", "trunc"}) do
      local out = check(op .. " of ties", {x = ties}, nil, function(t) return t.x[op](t.x) end, EXACT)
      local signs_cpu, signs_gpu = {}, {}
      for i, v in ipairs(ties[op](ties):totable()) do signs_cpu[i] = 1 / v end
      for i, v in ipairs(out:to('cpu'):totable()) do signs_gpu[i] = 1 / v end
      eq(table.concat(signs_gpu, " "), table.concat(signs_cpu, " "), op .. ": the signs of zeros")
      check(op .. " of int32", {x = lm.tensor({7, -3, 0}, 'int32')}, nil, function(t) return t.x[op](t.x) end, EXACT)
    end
    local odd = lm.tensor({0 / 0, 1 / 0, -1 / 0, 0, -0.0, 1, -2.5, 3e38})
    for _, op in ipairs({"isnan", "isinf", "isfinite"}) do
      check(op, {x = odd}, nil, function(t) return t.x[op](t.x) end, EXACT)
    end
  end)
end)
