-- The fused fast paths of the CPU kernels give what the plain composition
-- gives: a Linear's bias accumulated by the GEMM, the MSE's one-pass
-- difference and row sums (against its unfused path, taken by a
-- non-contiguous prediction), ELU's unmasked polynomial at the edges, and
-- the prefetching row gather.
local lm = require 'lumen'
local F = lm.nn.functional

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
