-- gather, scatter_add and cumsum on the GPU against the CPU reference, with
-- transposed inputs, negative dims, duplicates in the index and empty
-- tensors. Tolerances (max |gpu - cpu| / max(|cpu|, 1e-3)): gather and
-- short cumsum lines exact (copies; the same sequential double sum per line),
-- scatter_add, gather's gradient and long cumsum lines 1e-6 (atomic adds:
-- duplicates summed in any order; a long line's chunk totals are scanned in
-- double, then rounded once to float as the CPU's in-order sum).
-- Skips, saying why, when no GPU answers.
local lm = require 'lumen'

local DEV = dofile("tests/helpers/gpu_device.lua")("gather_spec", skip)
local EXACT, ATOMIC, SCANNED = 0, 1e-6, 1e-6

local function close(gpu, cpu, tol, what)
  eq(gpu:device(), DEV, what .. " lives on the GPU")
  local g = gpu:to('cpu')
  eq(table.concat(g:shape(), "x"), table.concat(cpu:shape(), "x"), what .. " shape")
  eq(g:dtype(), cpu:dtype(), what .. " dtype")
  if cpu:numel() == 0 then return end
  local ref = cpu:float()
  local e = (g:float() - ref):abs():max():item() / math.max(ref:abs():max():item(), 1e-3)
  truthy(e <= tol, string.format("%s: relative error %.3g over %.0g", what, e, tol))
end

-- f on CPU and GPU copies of `inputs`; the outputs compared, and for the
-- names in `grads` the gradients of sum(out * r)
local function check(what, inputs, grads, f, tol, grad_tol)
  local cpu, gpu = {}, {}
  for name, t in pairs(inputs) do cpu[name], gpu[name] = t, t:to(DEV) end
  for _, name in ipairs(grads) do
    cpu[name] = inputs[name]:clone():requires_grad(true)
    gpu[name] = inputs[name]:clone():to(DEV):requires_grad(true)
  end
  local out_c, out_g = f(cpu), f(gpu)
  close(out_g, out_c, tol, what)
  if #grads == 0 then return end
  local r = lm.randn(out_c:shape())
  ;(out_c * r):sum():backward()
  ;(out_g * r:to(DEV)):sum():backward()
  for _, name in ipairs(grads) do close(gpu[name].grad, cpu[name].grad, grad_tol, what .. " d/d" .. name) end
end

-- 1-based values in [1, size], many repeated
local function index(size, ...) return (lm.rand(...) * size):int() + 1 end

describe("gpu gather, scatter_add and cumsum", function()
  lm.manual_seed(5)
  it("gather", function()
    local x = lm.randn(30, 40)
    check("gather dim 2", {x = x, i = index(40, 30, 70)}, {"x"}, function(t) return t.x:gather(2, t.i) end,
      EXACT, ATOMIC)
    check("gather dim -2, smaller index", {x = x, i = index(30, 50, 20)}, {"x"},
      function(t) return t.x:gather(-2, t.i) end, EXACT, ATOMIC)
    check("gather transposed", {x = lm.randn(40, 30), i = index(40, 30, 9)}, {"x"},
      function(t) return t.x:t():gather(2, t.i) end, EXACT, ATOMIC)
    check("gather 3-D", {x = lm.randn(4, 5, 6), i = index(6, 3, 5, 8)}, {"x"},
      function(t) return t.x:gather(3, t.i) end, EXACT, ATOMIC)
    check("gather int32", {x = (lm.randn(6, 7) * 100):int(), i = index(7, 6, 3)}, {},
      function(t) return t.x:gather(2, t.i) end, EXACT)
    check("gather empty", {x = x, i = lm.zeros(0, 40):int()}, {"x"}, function(t) return t.x:gather(1, t.i) end,
      EXACT, EXACT)
  end)
  it("scatter_add", function()
    check("scatter_add duplicates", {x = lm.randn(30, 8), i = index(8, 30, 200), s = lm.randn(30, 200)},
      {"x", "s"}, function(t) return t.x:scatter_add(-1, t.i, t.s) end, ATOMIC, ATOMIC)
    check("scatter_add transposed", {x = lm.randn(8, 30), i = index(30, 12, 8), s = lm.randn(8, 12)},
      {"x", "s"}, function(t) return t.x:t():scatter_add(1, t.i, t.s:t()) end, ATOMIC, ATOMIC)
  end)
  it("cumsum", function()
    for _, d in ipairs({1, 2, 3, -1}) do
      check("cumsum dim " .. d, {x = lm.randn(7, 33, 5)}, {"x"}, function(t) return t.x:cumsum(d) end, EXACT, EXACT)
    end
    check("cumsum transposed", {x = lm.randn(9, 20)}, {"x"}, function(t) return t.x:t():cumsum(2) end, EXACT, EXACT)
    check("cumsum int32", {x = (lm.randn(6, 7) * 100):int()}, {}, function(t) return t.x:cumsum(1) end, EXACT)
    check("cumsum empty", {x = lm.zeros(3, 0)}, {"x"}, function(t) return t.x:cumsum(2) end, EXACT, EXACT)
    -- lines of 256 and more are scanned by a block: lengths around the chunking
    for _, n in ipairs({256, 257, 1000, 4099}) do
      check("cumsum long lines of " .. n, {x = lm.randn(3, n)}, {"x"}, function(t) return t.x:cumsum(2) end,
        SCANNED, SCANNED)
    end
    check("cumsum long strided lines", {x = lm.randn(2, 700, 3)}, {"x"}, function(t) return t.x:cumsum(2) end,
      SCANNED, SCANNED)
    check("cumsum long int32, wrapping", {x = (lm.rand(2, 3000) * 2 ^ 30):int()}, {},
      function(t) return t.x:cumsum(2) end, EXACT)
  end)
end)
