-- lm.autocast('bfloat16'): products with operands rounded to bfloat16 and
-- float32 sums. Without torch: the rounding by hand, the mode's scoping and
-- errors, and every product path (matmul, Linear, the fused Linear +
-- activation + dropout, convolutions by Winograd, im2col and 1x1) against
-- the same float32 computation on rounded leaves, bit for bit, forward and
-- backward. With torch (tests/torch/autocast_reference.py): the rounding
-- against torch's own over the whole float range, and the products against
-- float64 products of the rounded operands at 1e-5, where plain float32
-- misses by far more.
local lm = require 'lumen'
local nn = lm.nn
local F = nn.functional

local py = dofile("tests/helpers/python.lua")

local function bits_equal(a, b, what)
  eq((a - b):abs():max():item(), 0, what)
end

describe("autocast without torch", function()
  it("round_bfloat16 rounds to nearest, ties to even, past the range to infinity", function()
    local largest = (2 - 2 ^ -7) * 2 ^ 127 -- bfloat16's; halfway to 2^128 rounds up, to infinity
    local x = lm.tensor({1 + 2 ^ -8, 1 + 3 * 2 ^ -8, 1 + 2 ^ -8 + 2 ^ -20, -(1 + 2 ^ -8), 3.395e38,
      3.397e38, 3.4028234e38, 0, 1 / 0, -1 / 0, 1})
    same(x:round_bfloat16():totable(), {1, 1 + 2 ^ -6, 1 + 2 ^ -7, -1, largest,
      1 / 0, 1 / 0, 0, 1 / 0, -1 / 0, 1})
    -- subnormals (which flush-to-zero would turn into zeros on the way in)
    local was = lm.get_flush_denormal()
    lm.set_flush_denormal(false)
    local sub = lm.tensor({2 ^ -133, 1.5 * 2 ^ -133, 2.5 * 2 ^ -133, 2 ^ -149}):round_bfloat16():totable()
    lm.set_flush_denormal(was)
    same(sub, {2 ^ -133, 2 ^ -132, 2 ^ -132, 0}, 0, "subnormals round on the same grid")
    local neg0 = lm.tensor({-0.0}):round_bfloat16():item()
    eq(1 / neg0, -1 / 0, "-0 keeps its sign")
    local nan = lm.tensor({0 / 0}):round_bfloat16():item()
    truthy(nan ~= nan, "NaN stays NaN")
    local r = lm.randn(1000):round_bfloat16()
    bits_equal(r:round_bfloat16(), r, "rounding twice changes nothing")
    local y = lm.randn(4, 3):requires_grad(true)
    y:round_bfloat16():sum():backward()
    same(y.grad:totable(), lm.ones(4, 3):totable(), 0, "the gradient passes through, as torch's casts")
  end)

  it("scopes the mode, restores it after errors, and names bad arguments", function()
    eq(lm.get_autocast(), nil, "off by default")
    local a, b = lm.autocast("bfloat16", function(p, q) return lm.get_autocast(), p + q end, 2, 3)
    eq(a, "bfloat16")
    eq(b, 5)
    eq(lm.get_autocast(), nil, "restored")
    eq(lm.autocast("bf16", lm.get_autocast), "bfloat16", "'bf16' is the same")
    local err = raises(function() lm.autocast("bfloat16", function() error("inside", 0) end) end)
    eq(err, "inside", "the error passes unchanged")
    eq(lm.get_autocast(), nil, "restored after an error")
    raises(function() lm.autocast("float16") end,
      "autocast: no products in 'float16' (use 'bfloat16', or 'float32' or false to turn autocast off)")
    eq(lm.get_autocast(), nil, "a refused dtype changes nothing")
    raises(function() lm.autocast(3) end, "autocast: the dtype must be 'bfloat16', 'float32' or false, got number")
    raises(function() lm.autocast("bfloat16", 5) end,
      "autocast: the second argument must be a function to run, got number")
    raises(function() lm.autocast("bfloat16", nil) end,
      "autocast: the second argument must be a function to run, got nil")
    eq(lm.get_autocast(), nil)
    -- on for the state (restored whatever happens, so no later spec runs in bfloat16)
    local ok, failure = pcall(function()
      eq(lm.autocast("bfloat16"), nil, "on for the state: returns the previous mode")
      eq(lm.get_autocast(), "bfloat16")
      eq(lm.autocast("float32", lm.get_autocast), nil, "'float32' turns it off inside")
      eq(lm.autocast(false), "bfloat16")
    end)
    lm.autocast(false)
    truthy(ok, failure)
    eq(lm.get_autocast(), nil)
    eq(select("#", lm.autocast("bfloat16", function() return 1, nil, 3 end)), 3, "every result, nils included")
  end)

  it("matmul: the product of the rounded operands, bit for bit, and not the float32 one", function()
    lm.manual_seed(3)
    local cases = {
      {lm.randn(33, 70), lm.randn(70, 20)},
      {lm.randn(3, 8, 20), lm.randn(20, 6)},                -- batch folded into rows
      {lm.randn(4, 1, 9, 12), lm.randn(5, 12, 7)},          -- broadcast batches
      {lm.randn(257, 33), lm.randn(65, 257), true},         -- transposed views (a Linear's weight)
      {lm.randn(25), lm.randn(25, 4)},                      -- a vector
    }
    for i, c in ipairs(cases) do
      -- the leaves rounded; a transposed view stays a view of its rounded
      -- leaf, as it stays transposed in the product (another layout can
      -- round otherwise: SkylakeX's kernels)
      local a, b = c[1], c[2]
      local ra, rb = a:round_bfloat16(), b:round_bfloat16()
      if c[3] then a, b, ra, rb = a:t(), b:t(), ra:t(), rb:t() end
      local got = lm.autocast("bfloat16", function() return a:matmul(b) end)
      bits_equal(got, ra:matmul(rb), "case " .. i)
      truthy(rel_error(got, a:matmul(b)) > 1e-4, "case " .. i .. " differs from float32")
    end
  end)

  -- y = f(x, w) under autocast, backward outside it; against f on rounded
  -- leaves with a rounded upstream gradient, all in float32
  local function check_layer(name, f, x, w, gy)
    local xa, wa = x:clone():requires_grad(true), w:clone():requires_grad(true)
    local ya = lm.autocast("bfloat16", function() return f(xa, wa) end)
    eq(lm.get_autocast(), nil)
    ;(ya * gy):sum():backward() -- outside the scope: the nodes remember their mode
    local xr, wr = x:round_bfloat16():requires_grad(true), w:round_bfloat16():requires_grad(true)
    local yr = f(xr, wr)
    ;(yr * gy:round_bfloat16()):sum():backward()
    bits_equal(ya, yr, name .. " output")
    bits_equal(xa.grad, xr.grad, name .. " input gradient")
    bits_equal(wa.grad, wr.grad, name .. " weight gradient")
    local x32, w32 = x:clone():requires_grad(true), w:clone():requires_grad(true)
    local y32 = f(x32, w32)
    ;(y32 * gy):sum():backward()
    truthy(rel_error(ya, y32) > 1e-4, name .. ": the output differs from float32")
    truthy(rel_error(wa.grad, w32.grad) > 1e-4, name .. ": the weight gradient differs from float32")
  end

  it("convolutions (Winograd, strided im2col, 1x1, a 3-channel stem), forward and backward", function()
    lm.manual_seed(4)
    for _, c in ipairs({{16, 16, 3, 1, 1}, {8, 16, 3, 2, 1}, {16, 32, 1, 1, 0}, {3, 16, 3, 1, 1}}) do
      local C, O, k, stride, pad = table.unpack(c)
      local out = (10 + 2 * pad - k) // stride + 1
      local b = lm.randn(O)
      check_layer(string.format("conv %d->%d %dx%d/%d", C, O, k, k, stride),
        function(x, w) return F.conv2d(x, w, b, {stride = stride, padding = pad}) end,
        lm.randn(4, C, 10, 10), lm.randn(O, C, k, k) * 0.2, lm.randn(4, O, out, out))
    end
  end)

  it("Linear; Linear + ELU + dropout fused as the three ops under autocast", function()
    lm.manual_seed(5)
    local b = lm.randn(40)
    check_layer("linear", function(x, w) return F.linear(x, w, b) end,
      lm.randn(32, 50), lm.randn(40, 50) * 0.2, lm.randn(32, 40))
    -- the fused op rounds the gradient at the product, after the mask and
    -- ELU's slope, as the composed Linear's backward does
    local x, w, gy = lm.randn(32, 50), lm.randn(40, 50) * 0.2, lm.randn(32, 40)
    local function pass(fused)
      local xa, wa = x:clone():requires_grad(true), w:clone():requires_grad(true)
      lm.manual_seed(9)
      local y = lm.autocast("bfloat16", function()
        if fused then return F._linear_act(xa, wa, b, "elu", 1.0, 0.8) end
        return F.dropout(F.linear(xa, wa, b):elu(1.0), 0.2, true)
      end)
      ;(y * gy):sum():backward()
      return y, xa.grad, wa.grad
    end
    local y1, gx1, gw1 = pass(true)
    local y2, gx2, gw2 = pass(false)
    eq(y1:grad_fn(), "linear_act", "the fused op ran")
    bits_equal(y1, y2, "linear_act output")
    bits_equal(gx1, gx2, "linear_act input gradient")
    bits_equal(gw1, gw2, "linear_act weight gradient")
    local xa = x:clone():requires_grad(true)
    lm.manual_seed(9)
    ;(F._linear_act(xa, w, b, "elu", 1.0, 0.8) * gy):sum():backward()
    truthy(rel_error(gx1, xa.grad) > 1e-4, "differs from float32")
  end)

  it("sums stay float32: biases' gradients, Embedding's, squared distances", function()
    lm.manual_seed(8)
    local function grads(cast)
      local x, w = lm.randn(4, 3, 6, 6), lm.randn(5, 3, 3, 3)
      local cb, lb = lm.randn(5):requires_grad(true), lm.randn(7):requires_grad(true)
      local lw, e = lm.randn(7, 20), lm.randn(10, 4):requires_grad(true)
      local f = function()
        local y = F.conv2d(x, w, cb, {padding = 1})
        local z = F.linear(lm.randn(9, 20), lw, lb)
        local emb = F.embedding(lm.tensor({{1, 4, 4}, {10, 2, 1}}, 'int32'), e)
        return y, z, emb
      end
      lm.manual_seed(9)
      local y, z, emb = f()
      if cast then lm.manual_seed(9); y, z, emb = lm.autocast("bfloat16", f) end
      y:backward(lm.randn(y:shape()) * 0.37)
      z:backward(lm.randn(z:shape()) * 0.37)
      emb:backward(lm.randn(emb:shape()) * 0.37)
      return {cb.grad, lb.grad, e.grad}
    end
    lm.manual_seed(10)
    local want = grads(false)
    lm.manual_seed(10)
    local got = grads(true)
    for i, what in ipairs({"conv bias", "linear bias", "embedding"}) do bits_equal(got[i], want[i], what) end
    local a, b = lm.randn(30, 8) * 3, lm.randn(20, 8) * 3
    bits_equal(lm.autocast("bfloat16", F.squared_distances, a, b), F.squared_distances(a, b), "squared distances")
  end)

  it("a graph recorded in float32 keeps float32 in a backward run under autocast", function()
    lm.manual_seed(6)
    local x, w = lm.randn(8, 30), lm.randn(30, 5):requires_grad(true)
    x:matmul(w):sum():backward()
    local want = w.grad:clone()
    w.grad = nil
    local y = x:matmul(w)
    lm.autocast("bfloat16", function() y:sum():backward() end)
    bits_equal(w.grad, want, "float32 gradient")
  end)

  it("trains: a narrow ResNet-18 learns a toy task with bfloat16 products", function()
    lm.manual_seed(4)
    local net = lm.models.resnet18{num_classes = 2, stem = "cifar", width = 4}
    local x = lm.randn(16, 3, 8, 8)
    local labels = lm.tensor({1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, "int32")
    lm.no_grad(function() x:add_(((labels:float() - 1.5) * 2):view(16, 1, 1, 1)) end)
    local opt = lm.optim.SGD(net:parameters(), {lr = 0.05, momentum = 0.9})
    local first, last
    for _ = 1, 15 do
      local loss = lm.autocast("bfloat16", function() return F.cross_entropy(net(x), labels) end)
      opt:zero_grad()
      loss:backward()
      opt:step()
      first = first or loss:item()
      last = loss:item()
    end
    truthy(last < first * 0.5, string.format("loss %.4f -> %.4f", first, last))
    local w = net:parameters()[1]
    truthy(rel_error(w, w:round_bfloat16()) > 0, "master weights stay float32")
  end)
end)

if not py.can_import("torch") then
  skip("/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed", true)
end

local dir = py.write_reference("tests/torch/autocast_reference.py")

describe("autocast against torch", function()
  it("round_bfloat16 gives torch's x.bfloat16().float() bit for bit over the float range", function()
    local f = lm.load(dir .. "/rounding.safetensors")
    local got = f.x:round_bfloat16()
    local finite = f.xr:abs():lt(1 / 0)
    eq(got:abs():lt(1 / 0):ne(finite):sum():item(), 0, "the same infinities")
    local zero = lm.zeros(f.x:shape())
    bits_equal(lm.where(finite, got, zero), lm.where(finite, f.xr, zero), "finite values")
    truthy(f.x:numel() > 6000, "the reference's cases all arrived")
  end)

  local TOL = 1e-5
  local products = {
    linear = function(f, x, w) return F.linear(x, w, f["linear.b"]) end,
    bmm = function(_, x, w) return x:matmul(w) end,
    conv = function(f, x, w) return F.conv2d(x, w, f["conv.b"], {stride = 2, padding = 1}) end,
  }
  local operands = {linear = {"x", "w"}, bmm = {"a", "b"}, conv = {"x", "w"}}
  for _, name in ipairs({"linear", "bmm", "conv"}) do
    it(name .. ": float64 products of the rounded operands at 1e-5, which float32 misses", function()
      local f = lm.load(dir .. "/products.safetensors")
      local ops = operands[name]
      local run = function(cast)
        local x = f[name .. "." .. ops[1]]:clone():requires_grad(true)
        local w = f[name .. "." .. ops[2]]:clone():requires_grad(true)
        local y = cast and lm.autocast("bfloat16", function() return products[name](f, x, w) end)
          or products[name](f, x, w)
        ;(y * f[name .. ".gy"]):sum():backward()
        return y, x.grad, w.grad
      end
      local y, gx, gw = run(true)
      local want = {f[name .. ".y64"], f[name .. ".gx64"], f[name .. ".gw64"]}
      for i, got in ipairs({y, gx, gw}) do
        eq(got:shape_string(), want[i]:shape_string())
        local err = rel_error(got, want[i])
        truthy(err <= TOL, string.format("%s %d: relative error %.3g", name, i, err))
      end
      local y32, gx32, gw32 = run(false)
      for i, got in ipairs({y32, gx32, gw32}) do
        truthy(rel_error(got, want[i]) > 20 * TOL, string.format("%s %d: float32 is far", name, i))
      end
      if name == "linear" then -- torch's CPU autocast rounds its output to bfloat16 too
        truthy(rel_error(y, f["linear.y_amp"]) < 2 ^ -7, "torch's autocast output")
      end
    end)
  end
end)
