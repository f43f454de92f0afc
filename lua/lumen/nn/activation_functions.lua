-- torch.nn.functional's other activations, with torch 1.13's values,
-- defaults and gradients (at the kinks too): hardswish, hardsigmoid, mish,
-- selu, celu, logsigmoid, softsign, tanhshrink, hardshrink, softshrink and
-- threshold are elementwise ops of the core (lm_scalar_ops.h: one pass
-- forward, one fused pass backward, on every device); prelu, glu and
-- softmin are composed from differentiable tensor ops.
-- Called by lua/lumen/nn/functional.lua with the F table, to which it adds them.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

local is_tensor = lm.is_tensor
local activation = lm._functional._activation

-- a 1-based dimension of x (negative counts from the end: -1 is the last),
-- returned as a positive one; a 0-D tensor takes 1 and -1, as F.softmax
local function dim_of(dim, x, fname)
  if math.type(dim) ~= "integer" then
    error(string.format("%s: dim must be an integer, got %s", fname, checks.shown(dim)), 3)
  end
  local n = math.max(x:dim(), 1)
  if dim == 0 or dim > n or dim < -n then
    error(string.format("%s: dimension %d out of range for a %d-D tensor", fname, dim, x:dim()), 3)
  end
  return dim < 0 and n + 1 + dim or dim
end

return function(F)
  -- the activations without parameters: one op each
  for _, name in ipairs{"hardswish", "hardsigmoid", "mish", "selu", "logsigmoid", "softsign", "tanhshrink"} do
    F[name] = function(x)
      if not is_tensor(x) then checks.tensor(x, "input", name) end
      return activation(x, name)
    end
  end

  --- x where x > 0, else alpha (e^(x / alpha) - 1) (torch's default alpha 1;
  --- alpha 0 is refused, as torch refuses it).
  function F.celu(x, alpha)
    if not is_tensor(x) then checks.tensor(x, "input", "celu") end
    if alpha ~= nil then checks.number(alpha, "alpha", "celu") end
    if alpha == 0 then error("celu: alpha cannot be 0", 2) end
    return activation(x, "celu", alpha or 1)
  end

  --- 0 where -lambd <= x <= lambd, else x (torch's default lambd 0.5).
  function F.hardshrink(x, lambd)
    if not is_tensor(x) then checks.tensor(x, "input", "hardshrink") end
    if lambd ~= nil then checks.number(lambd, "lambd", "hardshrink") end
    return activation(x, "hardshrink", lambd or 0.5)
  end

  --- x - lambd above lambd, x + lambd below -lambd, else 0 (torch's default
  --- lambd 0.5; a negative one is refused, as torch refuses it).
  function F.softshrink(x, lambd)
    if not is_tensor(x) then checks.tensor(x, "input", "softshrink") end
    if lambd ~= nil then checks.number(lambd, "lambd", "softshrink") end
    if lambd ~= nil and (lambd ~= lambd or lambd < 0) then -- NaN too
      error("softshrink: lambd must be greater or equal to 0, got " .. checks.shown(lambd), 2)
    end
    return activation(x, "softshrink", lambd or 0.5)
  end

  --- value where x <= threshold, else x (both required, as in torch).
  function F.threshold(x, threshold, value)
    if not is_tensor(x) then checks.tensor(x, "input", "threshold") end
    checks.number(threshold, "threshold", "threshold")
    checks.number(value, "value", "threshold")
    return activation(x, "threshold", threshold, value)
  end

  --- x where x > 0, else weight * x, with weight [1] (one slope for all) or
  --- [C] (one a channel, C = x:size(2), as torch; a 1-D input has one
  --- channel). The weight's gradient sums over every other dimension.
  function F.prelu(x, weight)
    if not is_tensor(x) then checks.tensor(x, "input", "prelu") end
    if not is_tensor(weight) then checks.tensor(weight, "weight", "prelu") end
    if weight:dim() > 1 then
      error("prelu: weight must be 0-D or 1-D ([num_parameters]), got " .. weight:shape_string(), 2)
    end
    local n, channels = weight:numel(), x:dim() >= 2 and x:size(2) or 1
    if n ~= 1 and (x:dim() == 0 or n ~= channels) then
      error(string.format("prelu: weight has %d parameters, the input %s has %d channel%s (its dimension 2): "
        .. "one parameter, or one a channel", n, x:shape_string(), channels, channels == 1 and "" or "s"), 2)
    end
    local shape = {}
    if n > 1 then -- [1, C, 1, ...]: the slopes along dimension 2
      for i = 1, x:dim() do shape[i] = i == 2 and n or 1 end
    end
    -- x * w where x <= 0: at 0 the slope's gradient, as torch
    return lm.where(x:gt(0), x, x * weight:reshape(shape))
  end

  --- The gated linear unit: x split in halves a, b along dim (default -1,
  --- the last), a * sigmoid(b). The size along dim must be even.
  function F.glu(x, dim)
    if not is_tensor(x) then checks.tensor(x, "input", "glu") end
    if x:dim() == 0 then error("glu: a 0-D input has no dimension to halve", 2) end
    local d = dim_of(dim == nil and -1 or dim, x, "glu")
    local n = x:size(d)
    if n % 2 ~= 0 then
      error(string.format("glu: halving dimension must be even, but dimension %d of %s is size %d", d,
        x:shape_string(), n), 2)
    end
    local half = n // 2
    return x:narrow(d, 1, half) * x:narrow(d, half + 1, half):sigmoid()
  end

  --- softmax(-x) along dim (default: the last, as F.softmax).
  function F.softmin(x, dim)
    if not is_tensor(x) then checks.tensor(x, "input", "softmin") end
    if dim ~= nil then dim = dim_of(dim, x, "softmin") end
    return F.softmax(-x, dim)
  end
end
