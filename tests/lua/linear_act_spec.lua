-- A Linear layer with its activation and dropout as one op (F._linear_act,
-- which nn.Sequential runs for Linear -> ELU/ReLU -> Dropout): bit for bit
-- the values, gradients and random stream of the three ops one after the
-- other, on every split of the product over the threads.
local lm = require 'lumen'
local nn, F = lm.nn, lm.nn.functional

-- max |a - b| over every element (0 when bit for bit equal, NaN aside)
local function max_diff(a, b) return (a - b):abs():max():item() end

-- One forward and backward pass, fused or composed; returns the output, the
-- three gradients and the next random numbers (the stream's position).
local function pass(fused, shape, act, alpha, keep)
  local m, k, n = shape[1], shape[2], shape[3]
  lm.manual_seed(7)
  local x = lm.randn(m, k):requires_grad(true)
  local w = (lm.randn(n, k) * 0.3):requires_grad(true)
  local b = lm.randn(n):requires_grad(true)
  local y
  if fused then
    y = F._linear_act(x, w, b, act, alpha, keep)
  else
    y = F.linear(x, w, b)
    if act == "elu" then y = y:elu(alpha) elseif act == "relu" then y = y:relu() end
    y = F.dropout(y, 1 - keep, true)
  end
  local after = lm.rand(6)
  y:backward(lm.randn(m, n))
  return {y, x.grad, w.grad, b.grad, after}
end

describe("F._linear_act", function()
  it("equals linear, activation and dropout bit for bit on 1 and 2 threads", function()
    local threads = lm.get_num_threads()
    -- {rows, inputs, outputs}: Net1's layers, odd sizes (partial Philox blocks
    -- and vector tails), and a wide one the product splits by columns
    local shapes = {{128, 200, 200}, {128, 784, 200}, {127, 33, 50}, {5, 7, 3}, {16, 200, 1000}}
    local acts = {{"elu", 1}, {"elu", 0.5}, {"relu", 1}, {"none", 1}}
    for _, t in ipairs({1, 2}) do
      lm.set_num_threads(t)
      for _, shape in ipairs(shapes) do
        for _, a in ipairs(acts) do
          for _, keep in ipairs({1, 0.9, 0.5}) do
            if a[1] ~= "none" or keep < 1 then
              local want, got = pass(false, shape, a[1], a[2], keep), pass(true, shape, a[1], a[2], keep)
              local what = string.format("%s %s keep %g, %d thread(s)", table.concat(shape, "x"), a[1], keep, t)
              for i, name in ipairs({"output", "x.grad", "w.grad", "b.grad", "random stream"}) do
                eq(max_diff(got[i], want[i]), 0, what .. ": " .. name)
              end
            end
          end
        end
      end
    end
    lm.set_num_threads(threads)
  end)

  it("drops about 1 - keep of the outputs, scaling the rest by 1 / keep", function()
    lm.manual_seed(1)
    local y = F._linear_act(lm.ones(400, 1), lm.ones(500, 1), nil, "none", 1, 0.8)
    local zeros = y:eq(0):float():mean():item()
    near(zeros, 0.2, 0.01)
    near(y:max():item(), 1 / 0.8, 1e-6)
  end)

  it("gives the bias (or zeros) for a layer without inputs, as linear does", function()
    local x, w, b = lm.randn(3, 0), lm.randn(2, 0), lm.tensor({0.5, -2})
    eq(max_diff(F._linear_act(x, w, b, "elu", 1, 1), F.linear(x, w, b):elu()), 0)
    eq(max_diff(F._linear_act(x, w, nil, "relu", 1, 1), lm.zeros(3, 2)), 0)
  end)

  it("records one node and checks its arguments", function()
    local x, w = lm.randn(3, 4), lm.randn(2, 4):requires_grad(true)
    eq(F._linear_act(x, w, nil, "elu", 1, 0.9):grad_fn(), "linear_act")
    raises(function() F._linear_act(lm.randn(2, 3, 4), w, nil, "elu", 1, 1) end,
      "linear_act: input must be [rows, 4], got [2, 3, 4]")
    raises(function() F._linear_act(lm.randn(3, 5), w, nil, "elu", 1, 1) end,
      "linear: input has 5 features, weight expects 4")
    raises(function() F._linear_act(x, w, nil, "elu", -1, 1) end, "linear_act: ELU's alpha must be positive, got -1")
    raises(function() F._linear_act(x, w, nil, "relu", 1, 0) end,
      "linear_act: the keep probability must be in (0, 1], got 0")
    raises(function() F._linear_act(x, w, nil, "tanh", 1, 1) end, "invalid option 'tanh'")
  end)
end)

-- A small Net1: Linear -> ELU -> Dropout blocks, a ReLU block, a sigmoid head.
local function small_net()
  lm.manual_seed(11)
  return nn.Sequential(nn.Linear(20, 16), nn.ELU(), nn.Dropout(0.1), nn.Linear(16, 16), nn.ReLU(),
    nn.Dropout(0.3), nn.Linear(16, 16), nn.ELU(0.7), nn.Linear(16, 8), nn.Dropout(0.2), nn.Linear(8, 3),
    nn.Sigmoid())
end

-- Three Adam steps; returns the last output and the parameters afterwards.
local function train(net, fuse)
  net.fuse = fuse
  local opt = lm.optim.Adam(net:parameters(), {lr = 1e-2})
  lm.manual_seed(5)
  local x, target = lm.randn(32, 20), lm.rand(32, 3)
  local out
  for _ = 1, 3 do
    opt:zero_grad()
    out = net(x)
    F.mse(out, target):backward()
    opt:step()
  end
  return out, net:parameters()
end

describe("nn.Sequential's fused layers", function()
  it("train exactly as the children one by one", function()
    local out_fused, p_fused = train(small_net(), true)
    local out_plain, p_plain = train(small_net(), false)
    eq(max_diff(out_fused, out_plain), 0, "output")
    for i = 1, #p_plain do eq(max_diff(p_fused[i], p_plain[i]), 0, "parameter " .. i) end
  end)

  it("fuse only where nothing would see the steps in between", function()
    local net = small_net()
    net:evaluate() -- no dropout: Linear -> ELU fused, Dropout skipped
    local x = lm.randn(4, 20)
    net.fuse = false
    local want = net(x)
    net.fuse = true
    eq(max_diff(net(x), want), 0, "evaluation")
    -- a hook on the ELU sees its output: that block runs child by child
    local seen
    local handle = net[2]:register_forward_hook(function(_, _, output) seen = output end)
    eq(max_diff(net(x), want), 0, "with a hook")
    eq(max_diff(seen, F.linear(x, net[1].weight, net[1].bias):elu()), 0, "the hook's view")
    handle.remove()
    -- a class whose forward was replaced runs its own forward
    local elu_forward, elu_calls = nn.ELU.forward, 0
    nn.ELU.forward = function(self, input) elu_calls = elu_calls + 1 return elu_forward(self, input) end
    local ok_patched, err_patched = pcall(net, x)
    nn.ELU.forward = elu_forward
    truthy(ok_patched, err_patched)
    eq(elu_calls, 2, "the patched forward ran for both ELUs")
    -- a wrapped F.dropout (as lm.dist wraps it) is called for every Dropout
    net:train()
    local dropout, calls = F.dropout, 0
    F.dropout = function(...) calls = calls + 1 return dropout(...) end
    local ok, err = pcall(net, x)
    F.dropout = dropout
    truthy(ok, err)
    eq(calls, 3, "the wrapper ran for each of the three Dropouts")
    -- inputs of more than two dimensions take the layers one by one
    net:evaluate()
    local x3 = lm.randn(2, 4, 20)
    same(net(x3):shape(), {2, 4, 3})
    eq(max_diff(net(x3):reshape(8, 3), net(x3:reshape(8, 20))), 0, "3-D input")
  end)

  it("names the module that failed", function()
    local net = small_net()
    raises(function() net(lm.randn(4, 21)) end,
      "linear: input has 21 features, weight expects 20 (input shape [4, 21], weight shape [16, 20]) "
      .. "(in module 1 (nn.Linear) of nn.Sequential)")
  end)
end)
