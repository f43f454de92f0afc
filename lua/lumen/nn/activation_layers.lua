-- lm.nn: the activation layers over lua/lumen/nn/activation_functions.lua,
-- with torch.nn's constructor defaults, argument checks and names (PReLU's
-- parameter is 'weight' [num_parameters], so torch's state dicts load
-- strictly). Called by lua/lumen/nn/init.lua with the nn table.
local lm = require 'lumen'
local F = require 'lumen.nn.functional'
local Module = require 'lumen.nn.module'
local checks = require 'lumen.nn.checks'

return function(nn)
  -- the layers without settings: torch's class name, F's function
  for class, fn in pairs{Hardswish = F.hardswish, Hardsigmoid = F.hardsigmoid, Mish = F.mish, SELU = F.selu,
    LogSigmoid = F.logsigmoid, Softsign = F.softsign, Tanhshrink = F.tanhshrink} do
    nn[class] = Module:extend("nn." .. class)
    nn[class].forward = function(_, x) return fn(x) end
  end

  --- nn.CELU([alpha]): F.celu, torch's default alpha 1; alpha 0 is refused here.
  nn.CELU = Module:extend("nn.CELU")
  function nn.CELU:init(alpha)
    if alpha ~= nil then checks.number(alpha, "alpha", "nn.CELU") end
    if alpha == 0 then error("nn.CELU: alpha cannot be 0", 3) end
    self.alpha = alpha or 1
  end
  function nn.CELU:forward(x) return F.celu(x, self.alpha) end
  function nn.CELU:extra_repr() return "alpha = " .. tostring(self.alpha) end

  --- nn.Hardshrink([lambd]) and nn.Softshrink([lambd]): torch's default 0.5;
  --- Softshrink refuses a negative lambd here.
  for _, class in ipairs{"Hardshrink", "Softshrink"} do
    local layer, fname = "nn." .. class, class:lower()
    nn[class] = Module:extend(layer)
    nn[class].init = function(self, lambd)
      if lambd ~= nil then checks.number(lambd, "lambd", layer) end
      if class == "Softshrink" and lambd ~= nil and (lambd ~= lambd or lambd < 0) then
        error(layer .. ": lambd must be greater or equal to 0, got " .. checks.shown(lambd), 3)
      end
      self.lambd = lambd or 0.5
    end
    nn[class].forward = function(self, x) return F[fname](x, self.lambd) end
    nn[class].extra_repr = function(self) return tostring(self.lambd) end
  end

  --- nn.Threshold(threshold, value): F.threshold, both required as in torch.
  nn.Threshold = Module:extend("nn.Threshold")
  function nn.Threshold:init(threshold, value)
    checks.number(threshold, "threshold", "nn.Threshold")
    checks.number(value, "value", "nn.Threshold")
    self.threshold, self.value = threshold, value
  end
  function nn.Threshold:forward(x) return F.threshold(x, self.threshold, self.value) end
  function nn.Threshold:extra_repr()
    return string.format("threshold = %s, value = %s", tostring(self.threshold), tostring(self.value))
  end

  --- nn.PReLU([num_parameters [, init]]): a learnt slope below 0, one for all
  --- (num_parameters = 1, the default) or one per channel (dimension 2 of
  --- the input); torch's initial slope 0.25.
  nn.PReLU = Module:extend("nn.PReLU")
  function nn.PReLU:init(num_parameters, init)
    if num_parameters ~= nil then checks.size(num_parameters, "num_parameters", "nn.PReLU") end
    if init ~= nil then checks.number(init, "init", "nn.PReLU") end
    self.num_parameters = num_parameters or 1
    self:param("weight", lm.full({self.num_parameters}, init or 0.25))
  end
  function nn.PReLU:forward(x) return F.prelu(x, self.weight) end
  function nn.PReLU:extra_repr() return "num_parameters = " .. self.num_parameters end

  --- nn.GLU([dim]): F.glu, torch's default dim -1 (the last).
  nn.GLU = Module:extend("nn.GLU")
  function nn.GLU:init(dim)
    if dim ~= nil and math.type(dim) ~= "integer" then
      error("nn.GLU: dim must be an integer, got " .. checks.shown(dim), 3)
    end
    self.dim = dim or -1
  end
  function nn.GLU:forward(x) return F.glu(x, self.dim) end
  function nn.GLU:extra_repr() return "dim = " .. self.dim end

  --- nn.Softmin([dim]): F.softmin (default: the last dimension, as nn.Softmax).
  nn.Softmin = Module:extend("nn.Softmin")
  function nn.Softmin:init(dim)
    if dim ~= nil and math.type(dim) ~= "integer" then
      error("nn.Softmin: dim must be an integer, got " .. checks.shown(dim), 3)
    end
    self.dim = dim
  end
  function nn.Softmin:forward(x) return F.softmin(x, self.dim) end
  function nn.Softmin:extra_repr() return self.dim and "dim = " .. self.dim or "" end
end
