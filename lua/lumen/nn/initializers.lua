-- lm.nn.init: torch.nn.init's weight initialisers, with torch 1.13's names,
-- defaults and formulas (fans, gains, bounds and standard deviations).
-- Every function writes the tensor in place under lm.no_grad (so a
-- parameter that requires gradients can be initialised), returns it, draws
-- from Lumen's seeded generator (lm.manual_seed) and works on the tensor's
-- own device. Lua has no keyword arguments: kaiming_* and trunc_normal_ take
-- an options table, or torch's arguments in torch's positional order.
-- lm.nn's Linear and Conv2d initialise their weights with these functions
-- (one definition of the fans and bounds).
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

local init = {}

-- a value as these messages show it: strings in single quotes, as torch's
-- names are written in the reference
local shown = checks.shown

-- raises "lm.nn.init.fname: msg"; level as error's, counted from the
-- function calling fail
local function fail(fname, msg, level)
  error("lm.nn.init." .. fname .. ": " .. msg, level + 1)
end

-- the tensor argument; `random`: its values come from a random draw, which
-- Lumen makes in float32 only
local function check_tensor(t, fname, random, level)
  if not lm.is_tensor(t) then fail(fname, "tensor must be a tensor, got " .. shown(t), level + 1) end
  if random and t:dtype() ~= "float32" then
    fail(fname, "tensor must be float32 (a random draw), got " .. t:dtype(), level + 1)
  end
end

local function check_number(v, what, fname, level)
  if not checks.is_finite(v) then fail(fname, what .. " must be a finite number, got " .. shown(v), level + 1) end
end

local LINEAR = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
local NONLINEARITIES = {"sigmoid", "tanh", "relu", "leaky_relu", "selu"}
for i, name in ipairs(LINEAR) do NONLINEARITIES[#NONLINEARITIES + 1], LINEAR[name] = name, i end

-- torch's calculate_gain, its errors naming fname
local function gain(nonlinearity, param, fname, level)
  if type(nonlinearity) ~= "string" then
    fail(fname, "nonlinearity must be a string, got " .. shown(nonlinearity), level + 1)
  end
  if LINEAR[nonlinearity] or nonlinearity == "sigmoid" then return 1 end
  if nonlinearity == "tanh" then return 5.0 / 3 end
  if nonlinearity == "relu" then return math.sqrt(2.0) end
  if nonlinearity == "selu" then return 3.0 / 4 end -- torch's empirical value (pytorch PR 50664)
  if nonlinearity == "leaky_relu" then
    local slope = param == nil and 0.01 or param
    if not checks.is_finite(slope) then
      fail(fname, "the negative slope of leaky_relu must be a finite number, got " .. shown(param), level + 1)
    end
    return math.sqrt(2.0 / (1 + slope ^ 2))
  end
  local near = require('lumen.help').closest(nonlinearity, NONLINEARITIES)
  fail(fname, string.format("unknown nonlinearity '%s'%s (known: %s)", nonlinearity,
    #near > 0 and "; did you mean '" .. table.concat(near, "' or '") .. "'?" or "",
    table.concat(NONLINEARITIES, ", ")), level + 1)
end

--- torch's _calculate_fan_in_and_fan_out: for a weight [out, in, k1, k2,
--- ...], fan_in = in * k1 * k2 * ... and fan_out = out * k1 * k2 * ...
--- (Linear's [out, in]: in and out). Fewer than 2 dimensions is an error.
local function fans(t, fname, level)
  if t:dim() < 2 then
    fail(fname, "fan in and fan out can not be computed for a tensor with fewer than 2 dimensions, got shape "
      .. t:shape_string(), level + 1)
  end
  local receptive = 1
  for d = 3, t:dim() do receptive = receptive * t:size(d) end
  return t:size(2) * receptive, t:size(1) * receptive
end

-- runs fn(t, ...) without recording gradients (a tensor with no elements
-- is left as it is); returns t
local function in_place(t, fn, ...)
  if t:numel() > 0 then lm.no_grad(fn, t, ...) end
  return t
end

local function fill(t, v) t:fill_(v) end
local function draw_uniform(t, a, b) t:uniform_(a, b) end
local function draw_normal(t, mean, std) t:normal_(mean, std) end

--- calculate_gain(nonlinearity [, param]): torch's recommended gain for a
--- nonlinearity: 1 for 'linear', the conv and conv_transpose names and
--- 'sigmoid'; 5/3 for 'tanh'; sqrt(2) for 'relu'; sqrt(2 / (1 + slope^2))
--- for 'leaky_relu' (param: the negative slope, default 0.01); 3/4 for
--- 'selu'. Another name is an error.
function init.calculate_gain(nonlinearity, param)
  local g = gain(nonlinearity, param, "calculate_gain", 2) -- (not a tail call: the error levels count this frame)
  return g
end

--- uniform_(tensor [, a = 0 [, b = 1]]): fills tensor with U(a, b) draws.
function init.uniform_(t, a, b)
  check_tensor(t, "uniform_", true, 2)
  a, b = a == nil and 0 or a, b == nil and 1 or b
  check_number(a, "a", "uniform_", 2)
  check_number(b, "b", "uniform_", 2)
  if a > b then fail("uniform_", string.format("a (%s) must not be above b (%s)", a, b), 2) end
  return in_place(t, draw_uniform, a, b)
end

--- normal_(tensor [, mean = 0 [, std = 1]]): fills tensor with N(mean, std^2) draws.
function init.normal_(t, mean, std)
  check_tensor(t, "normal_", true, 2)
  mean, std = mean == nil and 0 or mean, std == nil and 1 or std
  check_number(mean, "mean", "normal_", 2)
  check_number(std, "std", "normal_", 2)
  if std < 0 then fail("normal_", "std must be >= 0, got " .. shown(std), 2) end
  return in_place(t, draw_normal, mean, std)
end

--- constant_(tensor, val): fills tensor with val.
function init.constant_(t, val)
  check_tensor(t, "constant_", false, 2)
  if type(val) ~= "number" then fail("constant_", "val must be a number, got " .. shown(val), 2) end
  return in_place(t, fill, val)
end

--- ones_(tensor): fills tensor with ones.
function init.ones_(t)
  check_tensor(t, "ones_", false, 2)
  return in_place(t, fill, 1)
end

--- zeros_(tensor): fills tensor with zeros.
function init.zeros_(t)
  check_tensor(t, "zeros_", false, 2)
  return in_place(t, fill, 0)
end

-- writes the identity into the 2-D t: ones at (i, i) for i up to min(rows,
-- columns). Built on t's device without indices: a [k, m + 1] tensor whose
-- first column is one, read flat, has its ones every m + 1 elements, which
-- are the diagonal of its first k * m elements read as [k, m].
local function write_eye(t)
  local n, m = t:size(1), t:size(2)
  local k = math.min(n, m)
  t:zero_()
  if k == 0 then return end
  local ones = lm.zeros(k, m + 1, t:device())
  ones:narrow(2, 1, 1):fill_(1)
  t:narrow(1, 1, k):copy_(ones:view(k * (m + 1)):narrow(1, 1, k * m):view(k, m))
end

--- eye_(tensor): the 2-D tensor becomes the identity (ones on the diagonal,
--- zeros elsewhere; a rectangular one as torch.eye(n, m)).
function init.eye_(t)
  check_tensor(t, "eye_", false, 2)
  if t:dim() ~= 2 then
    fail("eye_", "only tensors with 2 dimensions are supported, got shape " .. t:shape_string(), 2)
  end
  return in_place(t, write_eye)
end

-- the gain argument of xavier_*: a finite number >= 0, default 1
local function xavier_gain(g, fname, level)
  return checks.eps(g, 1, "gain", "lm.nn.init." .. fname, level + 1)
end

--- The standard deviation xavier_* uses: gain * sqrt(2 / (fan_in + fan_out)).
local function xavier_std(t, g, fname, level)
  local fan_in, fan_out = fans(t, fname, level + 1)
  return xavier_gain(g, fname, level + 1) * math.sqrt(2.0 / (fan_in + fan_out))
end

--- xavier_uniform_(tensor [, gain = 1]): Glorot uniform, U(-b, b) with
--- b = gain * sqrt(6 / (fan_in + fan_out)) (as torch: sqrt(3) times the std).
function init.xavier_uniform_(t, g)
  check_tensor(t, "xavier_uniform_", true, 2)
  local bound = math.sqrt(3.0) * xavier_std(t, g, "xavier_uniform_", 2)
  return in_place(t, draw_uniform, -bound, bound)
end

--- xavier_normal_(tensor [, gain = 1]): Glorot normal, N(0, std^2) with
--- std = gain * sqrt(2 / (fan_in + fan_out)).
function init.xavier_normal_(t, g)
  check_tensor(t, "xavier_normal_", true, 2)
  return in_place(t, draw_normal, 0, xavier_std(t, g, "xavier_normal_", 2))
end

-- kaiming_*'s arguments: an options table {a, mode, nonlinearity} or torch's
-- positional (a, mode, nonlinearity); returns the std gain / sqrt(fan)
local function kaiming_std(t, fname, level, a, ...)
  local mode, nonlinearity = ...
  if type(a) == "table" then
    if select("#", ...) > 0 then
      fail(fname, "takes (tensor [, {a, mode, nonlinearity}]) or torch's positional (tensor, a, mode, "
        .. "nonlinearity), not an options table followed by more arguments", level + 1)
    end
    local o = checks.opts(a, "lm.nn.init." .. fname, {"a", "mode", "nonlinearity"}, nil, level + 2)
    a, mode, nonlinearity = o.a, o.mode, o.nonlinearity
  elseif a ~= nil and type(a) ~= "number" then
    fail(fname, "the second argument must be an options table {a, mode, nonlinearity} or torch's a "
      .. "(a number), got " .. shown(a), level + 1)
  end
  if a == nil then a = 0 end
  check_number(a, "a", fname, level + 1)
  mode = mode == nil and "fan_in" or mode
  local m = type(mode) == "string" and mode:lower() -- (torch lowers it)
  if m ~= "fan_in" and m ~= "fan_out" then
    fail(fname, "mode must be 'fan_in' or 'fan_out', got " .. shown(mode), level + 1)
  end
  local g = gain(nonlinearity == nil and "leaky_relu" or nonlinearity, a, fname, level + 1)
  local fan_in, fan_out = fans(t, fname, level + 1)
  return g / math.sqrt(m == "fan_in" and fan_in or fan_out)
end

--- kaiming_uniform_(tensor [, {a = 0, mode = 'fan_in', nonlinearity =
--- 'leaky_relu'}]): He uniform, U(-b, b) with b = sqrt(3) * gain / sqrt(fan),
--- gain = calculate_gain(nonlinearity, a), fan the fan_in or fan_out of
--- mode. A number as second argument is torch's positional a (then mode,
--- nonlinearity): kaiming_uniform_(w, math.sqrt(5)) is torch's nn.Linear
--- default. A tensor with no elements is left as it is (torch: a warning).
function init.kaiming_uniform_(t, ...)
  check_tensor(t, "kaiming_uniform_", true, 2)
  local std = kaiming_std(t, "kaiming_uniform_", 2, ...)
  local bound = math.sqrt(3.0) * std
  return in_place(t, draw_uniform, -bound, bound)
end

--- kaiming_normal_(tensor [, {a = 0, mode = 'fan_in', nonlinearity =
--- 'leaky_relu'}]): He normal, N(0, std^2) with std = gain / sqrt(fan), the
--- arguments as kaiming_uniform_'s.
function init.kaiming_normal_(t, ...)
  check_tensor(t, "kaiming_normal_", true, 2)
  local std = kaiming_std(t, "kaiming_normal_", 2, ...)
  return in_place(t, draw_normal, 0, std)
end

-- the inverse error function of x in (-1, 1), elementwise, in float32:
-- M. Giles' single-precision approximation ("Approximating the erfinv
-- function", GPU Computing Gems, 2011), relative error below 4e-7
local CENTRAL = {2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
  -0.00125372503, -0.00417768164, 0.246640727, 1.50140941}
local TAIL = {-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
  -0.0076224613, 0.00943887047, 1.00167406, 2.83297682}
local function horner(coefficients, w)
  local p = w * 0 + coefficients[1]
  for i = 2, #coefficients do p = p * w + coefficients[i] end
  return p
end
local function erfinv(x)
  local w = -((1 - x) * (1 + x)):log()
  local central = horner(CENTRAL, w - 2.5)
  local tail = horner(TAIL, w:sqrt() - 3)
  return lm.where(w:lt(5), central, tail) * x
end

-- the error function of a number, in double: its Taylor series up to 3,
-- beyond that 1 - erfc(x) with erfc's continued fraction (both to about
-- 1e-15 absolute)
local function erf(x)
  local z = math.abs(x)
  local value
  if z <= 3 then
    local term, sum, n = z, z, 0
    repeat
      n = n + 1
      term = -term * z * z / n
      sum = sum + term / (2 * n + 1)
    until math.abs(term / (2 * n + 1)) < 1e-17 * math.abs(sum)
    value = 2 / math.sqrt(math.pi) * sum
  else
    local f = z
    for k = 60, 1, -1 do f = z + (k / 2) / f end
    value = 1 - math.exp(-z * z) / math.sqrt(math.pi) / f
  end
  return x < 0 and -value or value
end

-- below this expected count of plain normal draws outside [a, b], a
-- truncated draw tries a plain one first (see draw_trunc_normal)
local FEW_OUTSIDE = 0.01

local function draw_trunc_normal(t, mean, std, a, b)
  local function erf_at(v) return erf((v - mean) / std / math.sqrt(2.0)) end
  local lo, hi = erf_at(a), erf_at(b)
  -- Where [a, b] leaves out almost no mass (ConvNeXt's std 0.02 in [-2, 2]:
  -- 100 std), a plain normal draw whose values all land inside is a draw
  -- of the truncated normal (the normal conditioned on [a, b], each value
  -- on its own), three times faster on ConvNeXt-Tiny's weights; when one
  -- lands outside, a fresh draw by the inverse CDF is one from the same
  -- distribution, so the result's distribution is exactly the truncated one.
  if (1 - (hi - lo) / 2) * t:numel() < FEW_OUTSIDE then
    t:normal_(mean, std)
    if t:min():item() >= a and t:max():item() <= b then return end
  end
  -- torch's method: U(2 l - 1, 2 u - 1) for the normal CDF's l and u at a
  -- and b (2 cdf(v) - 1 = erf((v - mean) / (std sqrt 2))), the inverse CDF,
  -- then a clamp to [a, b] against rounding
  t:uniform_(lo, hi)
  -- a draw of exactly -1 or 1 (a or b more than about 5.4 std away from the
  -- mean) would be an infinite erfinv that the clamp puts at a or b, far out
  -- in the tail (torch does so): the float32 nearest inside is 5.4 std away
  t:clamp_(-(1 - 2 ^ -24), 1 - 2 ^ -24)
  t:copy_(erfinv(t) * (std * math.sqrt(2.0)) + mean)
  t:clamp_(a, b)
end

--- trunc_normal_(tensor [, {mean = 0, std = 1, a = -2, b = 2}]): draws
--- from N(mean, std^2) truncated to [a, b] (a and b are values, not
--- multiples of std), by torch's inverse-CDF method (or, where [a, b] holds
--- nearly all the mass, a plain normal draw kept when every value lands
--- inside: the same distribution, faster), so every value lies in [a, b].
--- Numbers instead of the table are torch's positional (mean, std, a, b).
function init.trunc_normal_(t, mean, ...)
  check_tensor(t, "trunc_normal_", true, 2)
  local std, a, b = ...
  if type(mean) == "table" then
    if select("#", ...) > 0 then
      fail("trunc_normal_", "takes (tensor [, {mean, std, a, b}]) or torch's positional (tensor, mean, std, "
        .. "a, b), not an options table followed by more arguments", 2)
    end
    local o = checks.opts(mean, "lm.nn.init.trunc_normal_", {"mean", "std", "a", "b"}, nil, 3)
    mean, std, a, b = o.mean, o.std, o.a, o.b
  end
  mean, std = mean == nil and 0 or mean, std == nil and 1 or std
  a, b = a == nil and -2 or a, b == nil and 2 or b
  for _, arg in ipairs{{"mean", mean}, {"std", std}, {"a", a}, {"b", b}} do
    check_number(arg[2], arg[1], "trunc_normal_", 2)
  end
  if std <= 0 then fail("trunc_normal_", "std must be > 0, got " .. shown(std), 2) end
  if a >= b then fail("trunc_normal_", string.format("a (%s) must be below b (%s)", a, b), 2) end
  return in_place(t, draw_trunc_normal, mean, std, a, b)
end

init._fans = fans
init._erfinv = erfinv

return init
