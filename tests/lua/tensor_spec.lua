-- Every tensor call of docs/design.md's Lua API, against hand-computed values.
local lm = require 'lumen'
local F = lm.nn.functional

describe("creation", function()
  it("builds float32 tensors from nested tables", function()
    local x = lm.tensor{{1, 2}, {3, 4}}
    same(x:shape(), {2, 2})
    eq(x:dtype(), "float32")
    same(x:totable(), {{1, 2}, {3, 4}})
    eq(x:dim(), 2)
    eq(x:numel(), 4)
    eq(x:size(1), 2)
    eq(x:size(-1), 2)
  end)

  it("builds int32 tensors and converts between dtypes", function()
    local l = lm.tensor({3, 1, 2}, 'int32')
    eq(l:dtype(), "int32")
    eq(l[1], 3)
    eq(math.type(l[1]), "integer")
    local f = l:float()
    eq(f:dtype(), "float32")
    same(f:totable(), {3, 1, 2})
    local back = lm.tensor{1.7, -2.2}:int()
    same(back:totable(), {1, -2}) -- truncation toward zero
    raises(function() lm.tensor({1.5}, 'int32') end, "not an int32")
  end)

  it("makes zeros, ones, full and arange", function()
    same(lm.zeros(2, 3):totable(), {{0, 0, 0}, {0, 0, 0}})
    same(lm.ones(2):totable(), {1, 1})
    same(lm.ones{1, 2}:totable(), {{1, 1}})
    eq(lm.zeros(2, 'int32'):dtype(), "int32")
    same(lm.full({2}, 7):totable(), {7, 7})
    same(lm.arange(1, 5):totable(), {1, 2, 3, 4, 5})   -- inclusive, like Lua's for
    same(lm.arange(4):totable(), {1, 2, 3, 4})
    same(lm.arange(0, 1, 0.25):totable(), {0, 0.25, 0.5, 0.75, 1})
    same(lm.arange(5, 1, -2):totable(), {5, 3, 1})
    eq(lm.arange(1, 3, 'int32'):dtype(), "int32")
  end)

  it("makes a 0-D tensor from a number and prints it as a number", function()
    local s = lm.tensor(2.5)
    eq(s:dim(), 0)
    eq(s:item(), 2.5)
    eq(tostring(s), "2.5")
    -- no first dimension to count, as x[1] has none to index (torch's len() raises too)
    raises(function() return #s end, "#x: a 0-d tensor has no dimension 1 (x:item() reads its value)")
    eq(#lm.zeros(0, 3), 0)
  end)

  it("rejects ragged and non-numeric tables", function()
    raises(function() lm.tensor{{1, 2}, {3}} end, "ragged")
    raises(function() lm.tensor{1, "a"} end, "expected a number")
    raises(function() lm.zeros(-1) end, "sizes must be >= 0")
  end)
end)

describe("random numbers", function()
  it("repeats under manual_seed", function()
    lm.manual_seed(42)
    local a = lm.randn(3, 4):totable()
    local u = lm.rand(5):totable()
    lm.manual_seed(42)
    same(lm.randn(3, 4):totable(), a)
    same(lm.rand(5):totable(), u)
  end)

  it("has the right moments", function()
    lm.manual_seed(1)
    local x = lm.randn(100000)
    near(x:mean():item(), 0, 0.02)
    near(x:std():item(), 1, 0.02)
    local u = lm.rand(100000)
    truthy(u:min():item() >= 0 and u:max():item() < 1, "rand in [0, 1)")
    near(u:mean():item(), 0.5, 0.01)
  end)

  it("gives 1-based permutations", function()
    lm.manual_seed(3)
    local p = lm.randperm(10)
    eq(p:dtype(), "int32")
    local seen = {}
    for i = 1, 10 do seen[p[i]] = true end
    for i = 1, 10 do truthy(seen[i], "value " .. i .. " present") end
  end)
end)

describe("views", function()
  it("view, transpose, contiguous and narrow share or copy as documented", function()
    local x = lm.tensor{{1, 2, 3}, {4, 5, 6}}
    same(x:view(6):totable(), {1, 2, 3, 4, 5, 6})
    same(x:view(3, -1):shape(), {3, 2})
    local t = x:transpose(1, 2)
    same(t:totable(), {{1, 4}, {2, 5}, {3, 6}})
    eq(t:is_contiguous(), false)
    eq(t:contiguous():is_contiguous(), true)
    same(x:narrow(2, 2, 2):totable(), {{2, 3}, {5, 6}})
    raises(function() t:view(6) end, "reshape")
    same(t:reshape(6):totable(), {1, 4, 2, 5, 3, 6})
    -- writes through a view reach the base
    local row = x[2]
    row[1] = 40
    eq(x[2][1], 40)
    x:narrow(2, 3, 1):fill_(0)
    same(x:totable(), {{1, 2, 0}, {40, 5, 0}})
  end)

  it("indexes with x[i] and negative indices", function()
    local x = lm.tensor{{1, 2}, {3, 4}, {5, 6}}
    same(x[1]:totable(), {1, 2})
    eq(x[-1][2], 6)
    eq(#x, 3)
    raises(function() return x[4] end, "out of range")
    raises(function() return x[0] end, "out of range")
  end)

  it("permutes, squeezes, unsqueezes and expands", function()
    local x = lm.zeros(2, 3, 4)
    same(x:permute(3, 1, 2):shape(), {4, 2, 3})
    same(x:unsqueeze(1):shape(), {1, 2, 3, 4})
    same(lm.zeros(1, 3, 1):squeeze():shape(), {3})
    same(lm.tensor{{1}, {2}}:expand(2, 3):totable(), {{1, 1, 1}, {2, 2, 2}})
  end)
end)

describe("arithmetic", function()
  local a = lm.tensor{{1, 2}, {3, 4}}
  local b = lm.tensor{10, 20}

  it("broadcasts tensors and numbers", function()
    same((a + b):totable(), {{11, 22}, {13, 24}})
    same((a - 1):totable(), {{0, 1}, {2, 3}})
    same((2 * a):totable(), {{2, 4}, {6, 8}})
    same((a / b):totable(), {{0.1, 0.1}, {0.3, 0.2}}, 1e-7)
    same((1 / a):totable(), {{1, 0.5}, {1 / 3, 0.25}}, 1e-7)
    same((-a):totable(), {{-1, -2}, {-3, -4}})
    same((a ^ 2):totable(), {{1, 4}, {9, 16}})
    same((a * lm.tensor{{1}, {-1}}):totable(), {{1, 2}, {-3, -4}})
  end)

  it("computes elementwise functions", function()
    local x = lm.tensor{-1, 0, 2}
    same(x:abs():totable(), {1, 0, 2})
    same(x:exp():totable(), {math.exp(-1), 1, math.exp(2)}, 1e-5)
    same(lm.tensor{1, math.exp(1)}:log():totable(), {0, 1}, 1e-6)
    same(x:relu():totable(), {0, 0, 2})
    same(x:elu():totable(), {math.exp(-1) - 1, 0, 2}, 1e-6)
    same(x:sigmoid():totable(), {1 / (1 + math.exp(1)), 0.5, 1 / (1 + math.exp(-2))}, 1e-6)
    same(x:clamp(-0.5, 1):totable(), {-0.5, 0, 1})
    same(x:gt(0):totable(), {0, 0, 1})
    same(lm.where(x:gt(0), x, lm.tensor{-9}):totable(), {-9, -9, 2})
  end)

  it("multiplies matrices", function()
    eq(lm.matmul(lm.ones(2, 3), lm.ones(3, 4)):sum():item(), 24)
    same(lm.matmul(a, a):totable(), {{7, 10}, {15, 22}})
    same(a:matmul(lm.tensor{1, 1}):totable(), {3, 7})
    same(lm.matmul(a:t(), a):totable(), {{10, 14}, {14, 20}})
    raises(function() lm.matmul(a, lm.ones(3, 2)) end, "inner dimensions differ")
  end)

  it("keeps an empty batch empty when the other operand is broadcast", function()
    -- (the batch count was the larger operand's, 1 for one without a batch)
    eq(lm.matmul(lm.zeros(0, 2, 3), lm.zeros(3, 4)):shape_string(), "0x2x4")
    eq(lm.matmul(lm.zeros(0, 2, 3), lm.zeros(3)):shape_string(), "0x2")
    eq(lm.matmul(lm.zeros(2, 3), lm.zeros(0, 3, 4)):shape_string(), "0x2x4")
    eq(lm.matmul(lm.zeros(1, 2, 3), lm.zeros(0, 1, 3, 4)):shape_string(), "0x1x2x4")
    local x, w = lm.randn(0, 2, 3):requires_grad(true), lm.randn(3, 4):requires_grad(true)
    lm.matmul(x, w):sum():backward()
    eq(x.grad:shape_string(), "0x2x3")
    same(w.grad:totable(), lm.zeros(3, 4):totable())
    -- a broadcast right operand over a real batch, for contrast
    same(lm.matmul(lm.ones(3, 2, 3), lm.ones(3, 4)):sum():item(), 72)
  end)
end)

describe("reductions", function()
  local x = lm.tensor{{1, 5, 3}, {4, 2, 6}}

  it("reduces everything to a 0-D tensor", function()
    eq(x:sum():item(), 21)
    eq(x:mean():item(), 3.5)
    eq(x:max():item(), 6)
    eq(x:argmax():item(), 6) -- 1-based position in the flattened tensor
    near(x:std():item(), math.sqrt(3.5), 1e-6)
  end)

  it("reduces over one dimension with 1-based indices", function()
    same(x:sum(1):totable(), {5, 7, 9})
    same(x:mean(2):totable(), {3, 4})
    same(x:sum(2, true):shape(), {2, 1})
    local values, indices = x:max(2)
    same(values:totable(), {5, 6})
    same(indices:totable(), {2, 3})
    same(x:argmax(1):totable(), {2, 1, 2})
    same(x:min(1):totable(), {1, 2, 3})
    raises(function() x:sum(3) end, "out of range")
  end)
end)

describe("devices", function()
  it("reports CUDA honestly", function()
    eq(type(lm.cuda.available()), "boolean")
    eq(type(lm.cuda.status()), "string")
    local x = lm.ones(2)
    eq(x:to('cpu'), x)
    if not lm.cuda.available() then
      raises(function() x:to('cuda') end, "CUDA is not available")
    end
    raises(function() x:to('tpu') end, "unknown device")
  end)
end)

describe("printing", function()
  it("prints values with a footer", function()
    local s = tostring(lm.tensor{{1, 2}, {3, 40}})
    eq(s, " 1  2\n 3 40\n[float32 tensor of shape 2x2 on cpu]")
    local f = tostring(lm.tensor{0.5, -1.25})
    eq(f, " 0.5000 -1.2500\n[float32 tensor of shape 2 on cpu]")
    truthy(tostring(lm.zeros(2, 2, 2)):find("(2,.,.) =", 1, true), "slices are labelled")
  end)

  it("summarises big tensors", function()
    local s = tostring(lm.arange(1, 5000):view(50, 100))
    truthy(s:find("...", 1, true), "has an ellipsis")
    truthy(#s < 600, "stays short (" .. #s .. " chars)")
    truthy(s:find("5000", 1, true), "shows the last element")
  end)
end)

-- A @ B in double precision, for matrices as Lua tables of rows.
local function reference_product(A, B)
  local out = {}
  for i = 1, #A do
    out[i] = {}
    for j = 1, #B[1] do
      local s = 0
      for k = 1, #B do s = s + A[i][k] * B[k][j] end
      out[i][j] = s
    end
  end
  return out
end

local function transposed(A)
  local out = {}
  for j = 1, #A[1] do
    out[j] = {}
    for i = 1, #A do out[j][i] = A[i][j] end
  end
  return out
end

describe("matmul over the thread pool", function()
  it("matches a reference for products split by rows and by columns, in every transposition", function()
    local saved = lm.get_num_threads()
    lm.set_num_threads(2)
    lm.manual_seed(9)
    -- big enough to be split (over 2^18 multiply-adds), with ragged edges;
    -- 128 x 200 and 66 x 64 cut the other way than the operands' sizes
    -- suggest, for balance (cpu_matmul.c)
    for _, shape in ipairs{{131, 67, 45}, {37, 150, 61}, {128, 200, 64}, {66, 64, 70}} do
      local M, N, K = shape[1], shape[2], shape[3]
      local a, b = lm.randn(M, K), lm.randn(K, N)
      local want = reference_product(a:totable(), b:totable())
      local variants = {
        lm.matmul(a, b),
        lm.matmul(a:t():contiguous():t(), b),                 -- a transposed in memory
        lm.matmul(a, b:t():contiguous():t()),                 -- b transposed in memory
        lm.matmul(a:t():contiguous():t(), b:t():contiguous():t()),
      }
      for v, got in ipairs(variants) do same(got:totable(), want, 1e-3, M .. "x" .. N .. " variant " .. v) end
      lm.set_num_threads(1)
      local one = lm.matmul(a, b)
      lm.set_num_threads(2)
      same(one:totable(), want, 1e-3, "one thread")
    end
    lm.set_num_threads(saved)
  end)
end)

describe("a Linear layer's two gradients side by side", function()
  it("match a reference loop on 2 and 3 threads, for 2-D and batched inputs", function()
    local saved = lm.get_num_threads()
    lm.manual_seed(12)
    -- 64 x 100 -> 90: each gradient is 576,000 multiply-adds, enough to run
    -- the pair on two threads (cpu_matmul.c); x [2, 32, 100] folds to 64 rows
    local lin = lm.nn.Linear(100, 90)
    local x0, g0 = lm.randn(64, 100), lm.randn(64, 90)
    local gt = g0:totable()
    local want_x = reference_product(gt, lin.weight:totable())      -- g W
    local want_w = reference_product(transposed(gt), x0:totable())  -- g^T x
    for _, threads in ipairs{2, 3, 1} do
      lm.set_num_threads(threads)
      for _, batched in ipairs{false, true} do
        local x = (batched and x0:view(2, 32, 100) or x0):clone():requires_grad(true)
        lin.weight.grad = nil
        lin(x):backward(batched and g0:view(2, 32, 90) or g0)
        local what = threads .. " threads" .. (batched and ", batched" or "")
        same(x.grad:view(64, 100):totable(), want_x, 1e-4, "input gradient, " .. what)
        same(lin.weight.grad:totable(), want_w, 1e-4, "weight gradient, " .. what)
      end
    end
    lm.set_num_threads(saved)
  end)
end)

describe("a Linear layer's bias, added where the product is written", function()
  it("matches x W^T + b on 1, 2 and 3 threads, split by rows and by columns, for any bias view", function()
    local saved = lm.get_num_threads()
    lm.manual_seed(13)
    -- {rows, inputs, outputs}: 131 rows of 67 outputs split by rows, 37 rows
    -- of 150 by columns (cpu_matmul.c), each thread writing its block's bias
    for _, shape in ipairs{{131, 45, 67}, {37, 61, 150}} do
      local M, K, N = shape[1], shape[2], shape[3]
      local x, w = lm.randn(M, K), lm.randn(N, K)
      local biases = {lm.randn(N), lm.randn(N, 2):t()[2]}  -- contiguous, and every other element
      for b, bias in ipairs(biases) do
        local want = reference_product(x:totable(), transposed(w:totable()))
        local bt = bias:totable()
        for i = 1, M do for j = 1, N do want[i][j] = want[i][j] + bt[j] end end
        for _, threads in ipairs{1, 2, 3} do
          lm.set_num_threads(threads)
          local what = M .. "x" .. N .. ", bias " .. b .. ", " .. threads .. " threads"
          same(F.linear(x, w, bias):totable(), want, 1e-3, what)
          local batched = F.linear(x:view(1, M, K):expand(2, M, K), w, bias)
          same(batched[2]:totable(), want, 1e-3, "batched, " .. what)
        end
      end
    end
    lm.set_num_threads(saved)
    -- no inputs: every row is the bias
    same(F.linear(lm.zeros(3, 0), lm.zeros(2, 0), lm.tensor{1.5, -2}):totable(), {{1.5, -2}, {1.5, -2}, {1.5, -2}})
  end)
end)

describe("the thread pool", function()
  it("wakes workers that slept between jobs and survives resizing, with every chunk done", function()
    local saved = lm.get_num_threads()
    for _, threads in ipairs{2, 3, 2} do
      lm.set_num_threads(threads)
      for i = 1, 40 do
        -- every few jobs, a pause longer than the workers' 0.2 ms of spinning
        if i % 4 == 0 then
          local t = lm.clock()
          while lm.clock() - t < 1e-3 do end
        end
        local x = lm.full({100000}, i) * 2 -- split over the threads
        eq(x:sum():item(), 200000 * i, threads .. " threads, job " .. i)
      end
    end
    lm.set_num_threads(saved)
  end)
end)

describe("x ^ 2", function()
  it("is x * x exactly (the fast path), on views too, with the gradient 2x", function()
    lm.manual_seed(4)
    local x = lm.randn(300, 200)
    eq(lm.encode(x ^ 2, "float32"), lm.encode(x * x, "float32"))
    local v = x:t():narrow(1, 3, 50)
    eq(lm.encode(v ^ 2, "float32"), lm.encode(v * v, "float32"), "a transposed, narrowed view")
    local a = lm.tensor{1.5, -2, 3}:requires_grad(true)
    ;(a ^ 2):sum():backward()
    same(a.grad:totable(), {3, -4, 6}, 1e-6)
    same((lm.tensor{2, 3} ^ 3):totable(), {8, 27}, 1e-5) -- other exponents unchanged
  end)
end)

describe("edge cases", function()
  it("makes empty ranges empty, as a numeric for loop runs zero times", function()
    for _, r in ipairs{{0}, {-1}, {5, 1}, {1, 0}, {1, 5, -1}} do
      eq(lm.arange(table.unpack(r)):numel(), 0, "arange(" .. table.concat(r, ", ") .. ")")
    end
    eq(lm.arange(3):numel(), 3)
    same(lm.arange(5, 1, -2):totable(), {5, 3, 1})
    eq(lm.arange(0, 0.3, 0.1):numel(), 4, "the stop within rounding counts")
  end)

  it("writes in place into empty tensors (their strides are torch's, none 0)", function()
    local x = lm.zeros(3, 0)
    same(x:stride(), {1, 1})
    x:add_(1):mul_(2):clamp_(0, 1):copy_(lm.ones(3, 0))
    eq(x:shape_string(), "3x0")
    eq(lm.zeros(2, 3, 0):mul_(2):numel(), 0)
    truthy(x:is_contiguous())
  end)

  it("ranks NaN after every number in topk, with their own indices", function()
    local v, i = lm.tensor{{1, 0 / 0, 2}}:topk(3)
    same(i:totable(), {{1, 3, 2}})
    local row = v:totable()[1]
    eq(row[1], 1); eq(row[2], 2); truthy(row[3] ~= row[3], "NaN last")
    v, i = lm.tensor{{1, 0 / 0, 2}}:topk(3, true)
    same(i:totable(), {{3, 1, 2}})
    eq(v:totable()[1][1], 2)
    local _, nan_i = lm.tensor{{0 / 0, 0 / 0}}:topk(2)
    same(nan_i:totable(), {{1, 2}})
  end)

  it("takes topk along any dimension of any float32 tensor: each line's k best, sorted, by a loop", function()
    lm.manual_seed(23)
    local x = lm.randn(3, 4, 5)
    local X = x:totable()
    local size = {3, 4, 5}
    for dim = 1, 3 do
      for _, largest in ipairs{false, true} do
        local k = size[dim] - 1
        local v, i = x:topk(k, largest, dim)
        local want_shape = {3, 4, 5}
        want_shape[dim] = k
        same(v:shape(), want_shape)
        same(i:shape(), want_shape)
        eq(i:dtype(), "int32")
        local V, I = v:totable(), i:totable()
        -- every line along dim: the loop's ranking of its values
        local a_dims = {}
        for d = 1, 3 do if d ~= dim then a_dims[#a_dims + 1] = d end end
        for p = 1, size[a_dims[1]] do
          for q = 1, size[a_dims[2]] do
            local line = {}
            local at = {}
            for j = 1, size[dim] do
              at[a_dims[1]], at[a_dims[2]], at[dim] = p, q, j
              line[j] = {value = X[at[1]][at[2]][at[3]], index = j}
            end
            table.sort(line, function(a, b)
              if largest then return a.value > b.value end
              return a.value < b.value
            end)
            for r = 1, k do
              at[a_dims[1]], at[a_dims[2]], at[dim] = p, q, r
              eq(V[at[1]][at[2]][at[3]], line[r].value, "value")
              eq(I[at[1]][at[2]][at[3]], line[r].index, "index")
            end
          end
        end
      end
    end
    -- a vector; the default dimension is the last; the errors name the call
    local v, i = lm.tensor{5, 1, 3}:topk(2, true)
    same(v:totable(), {5, 3})
    same(i:totable(), {1, 3})
    same(select(2, x:topk(2)):shape(), {3, 4, 2})
    eq(select(2, pcall(function() return x:topk(2, true, 4) end)):match("topk: .*"),
      "topk: dimension 4 out of range for a 3-D tensor")
    eq(select(2, pcall(function() return lm.tensor(3):topk(1) end)):match("topk: .*"),
      "topk: needs at least one dimension, got a 0-D tensor")
    eq(select(2, pcall(function() return x:topk(6, false, 3) end)):match("topk: .*"),
      "topk: k = 6 out of range for rows of 5")
    same(select(2, lm.zeros(0, 3, 4):topk(2, true, 3)):shape(), {0, 3, 2})
  end)

  it("clamps int32 to whole bounds as int32, to others as float32, and refuses a NaN bound", function()
    local x = lm.tensor({-2, 0, 3}, "int32")
    local a = x:clamp(-1, 1)
    eq(a:dtype(), "int32"); same(a:totable(), {-1, 0, 1})
    local b = x:clamp(-1.5, 1.5)
    eq(b:dtype(), "float32"); same(b:totable(), {-1.5, 0, 1.5})
    raises(function() return lm.tensor{1, 3}:clamp(0 / 0) end, "clamp: min is NaN")
    raises(function() return lm.tensor{1, 3}:clamp(1, 0 / 0) end, "clamp: max is NaN")
    raises(function() return lm.tensor{1, 3}:clamp_(0 / 0) end, "clamp_: min is NaN")
  end)

  it("takes negative dimensions and starts, counting from the end", function()
    local x = lm.arange(1, 6):view(2, 3)
    eq(x:permute(-1, 1):shape_string(), "3x2")
    eq(x:permute({2, -2}):shape_string(), "3x2")
    same(x:narrow(2, -2, 2):totable(), {{2, 3}, {5, 6}})
    raises(function() return x:narrow(2, -4, 1) end, "narrow: start -4 out of range for size 3")
    raises(function() return x:narrow(2, 0, 1) end, "narrow: start 0 (indices start at 1; -1 is the last)")
    raises(function() return x:select(2, -4) end, "index -4 out of range for dimension 2 of size 3")
    raises(function() return x:permute(3, 1) end, "permute: dimension 3 out of range for a 2-D tensor")
  end)

  it("reduces a 0-D tensor over its one dimension, as torch, with gradients", function()
    local x = lm.tensor(5):requires_grad(true)
    eq(x:sum(1):item(), 5)
    eq(x:sum(1):dim(), 0)
    local v, i = x:max(1)
    eq(v:item(), 5); eq(i:item(), 1); eq(i:dim(), 0)
    eq(lm.tensor(4):argmax(1):item(), 1)
    ;(x:mean(1) * 3):backward()
    eq(x.grad:item(), 3)
    raises(function() return x:sum(2) end, "dimension 2 out of range for a 0-D tensor")
  end)

  it("prints NaN as nan whatever its sign bit", function()
    local s = tostring(lm.tensor{0 / 0, 1})
    truthy(s:find("nan") and not s:find("-nan"), s)
    eq(tostring(lm.tensor(-(0 / 0))):match("^[^\n]*"), "nan")
  end)

  it("concatenates and stacks any number of tensors, with gradients", function()
    local xs = {}
    for i = 1, 300 do xs[i] = lm.full({1, 2}, i):requires_grad(true) end
    local c = lm.cat(xs, 1)
    eq(c:shape_string(), "300x2")
    eq(c[300][2], 300)
    ;(c * lm.arange(1, 600):view(300, 2)):sum():backward()
    same(xs[1].grad:totable(), {{1, 2}})
    same(xs[300].grad:totable(), {{599, 600}})
    eq(lm.stack(xs, 1):shape_string(), "300x1x2")
  end)
end)
