-- The gradient an adversarial step follows (lumen.introspect.analyses'
-- targeted FGSM paths, lumen.introspect.detection's untargeted FGSM), in one
-- place: for a net ending in nn.Sigmoid it is taken at the logits, where a
-- saturated output still has one.
local lm = require 'lumen'
local F = lm.nn.functional

local Adv = {}

-- The logits of a net ending in nn.Sigmoid (every module but the last), or
-- nil for any other net.
function Adv.logits_of(net)
  if net.__name ~= "nn.Sequential" or net:size() < 2 or net[net:size()].__name ~= "nn.Sigmoid" then return nil end
  return function(x)
    for i = 1, net:size() - 1 do x = net[i](x) end
    return x
  end
end

-- grad_x of E_adv = 1/2 ||goal - sigmoid(l)||^2 up to a positive factor,
-- which the sign ignores. Through the sigmoid in float32 a confident output
-- rounds to exactly 0 or 1, s (1 - s) is 0 and the step sign(0) = 0: a
-- confidently classified input never moves. At the logits the same
-- gradient is dE/dl_j = (s_j - t_j) sigma(l_j) sigma(-l_j), |s_j - t_j| being
-- sigma(l_j) for t_j = 0 and sigma(-l_j) for t_j = 1: taken in logs and
-- scaled by the largest of a row, it stays finite; sum(l * g) then has g's
-- pull-back as its gradient.
function Adv.gradient(net, logits, xin, goal)
  if not logits then
    F.mse(net(xin), goal):backward()
    return xin.grad
  end
  local l = logits(xin)
  local g = lm.no_grad(function()
    local d = l:detach()
    local soft = ((d:abs() * -1):exp() + 1):log()               -- log(1 + exp(-|l|))
    local lsp = d:clamp(-math.huge, 0) - soft                   -- log sigma(l)
    local lsn = (d * -1):clamp(-math.huge, 0) - soft            -- log sigma(-l)
    local other = goal * -1 + 1
    local logg = (lsp * 2 + lsn) * other + (lsp + lsn * 2) * goal
    return (other - goal) * (logg - logg:max(2, true)):exp()
  end)
  local pull = (l * g):sum()
  pull:backward()
  return xin.grad
end

return Adv
