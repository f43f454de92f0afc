-- Writing your own layers in Lua.
--   lumen experiments/custom_layer.lua
--
-- 1. A layer that only writes forward: autograd gives its backward.
-- 2. An operation with a hand-written backward (lm.autograd.Function),
--    checked against finite differences.
-- Both are trained on a small regression problem.
local lm = require 'lumen'
local nn, F = lm.nn, lm.nn.functional
-- no options: --help says so, anything else is refused (it was ignored)
require('lumen.cli').parse(arg, {}, "Custom layers in Lua: lumen experiments/custom_layer.lua (no options)")
lm.manual_seed(0)

-- 1. A gated linear unit: y = (x W1^T + b1) * sigmoid(x W2^T + b2).
local Gated = nn.Module:extend("Gated")

function Gated:init(inputs, outputs)
  self:child("value", nn.Linear(inputs, outputs))
  self:child("gate", nn.Linear(inputs, outputs))
end

function Gated:forward(x)
  return self.value(x) * self.gate(x):sigmoid()
end

-- 2. Softplus with its own backward: y = log(1 + exp(x)), dy/dx = sigmoid(x).
local Softplus = lm.autograd.Function{
  name = "softplus",
  forward = function(ctx, x)
    ctx:save_for_backward(x)
    return (x:exp() + 1):log()
  end,
  backward = function(ctx, grad)
    local x = ctx.saved[1]
    return grad * x:sigmoid()
  end,
}

local SoftplusLayer = nn.Module:extend("Softplus")
function SoftplusLayer:forward(x) return Softplus(x) end

local ok, msg = lm.autograd.gradcheck(function(x) return Softplus(x) end,
  {lm.randn(6):requires_grad(true)})
print("softplus backward agrees with finite differences:", ok, msg or "")

-- Learn y = sin(3 x) on [-1, 1] with both layers in one network.
local x = lm.arange(-1, 1, 0.01):view(-1, 1)
local targets = {}
for i, v in ipairs(x:view(-1):totable()) do targets[i] = {math.sin(3 * v)} end
local y = lm.tensor(targets)

local net = nn.Sequential(Gated(1, 32), SoftplusLayer(), nn.Linear(32, 1))
print(net)
local opt = lm.optim.Adam(net:parameters(), {lr = 0.01})
for epoch = 1, 1500 do
  opt:zero_grad()
  local loss = F.mse(net(x), y)
  loss:backward()
  opt:step()
  if epoch % 300 == 0 then print(string.format("epoch %4d  loss %.6f", epoch, loss:item())) end
end
local final = F.mse(net(x), y):item()
print(string.format("final loss %.6f (a constant prediction scores %.4f)", final,
  F.mse(lm.zeros(x:size(1), 1), y):item()))
return final -- read by tests/lua/experiments_spec.lua
