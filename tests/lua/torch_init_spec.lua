-- lm.nn.init against torch.nn.init (Debian's python3-torch, torch 1.13):
-- tests/torch/init_reference.py records, for each case, the bound (a
-- uniform draw's [lo, hi]) or the std (a normal draw) torch's function
-- passes to its draw, with torch's fans and gain, and calculate_gain's
-- values. Here Lumen's twin of each call fills a tensor of the same shape
-- (large: every case has at least 9000 elements), and its draws must keep
-- exactly inside torch's bound (the float32 nearest it) while reaching
-- 99.5 % of it, with a sample standard deviation within 2 % of torch's;
-- calculate_gain and the fans must equal torch's exactly.
local lm = require 'lumen'
local json = require 'lumen.json'

local py = dofile("tests/helpers/python.lua")

if not py.can_import("torch") then
  skip("/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed", true)
end

-- run the reference; its failure is this file's failure, with its output
local out_path = os.tmpname()
local ran_ok, msg = py.run("tests/torch/init_reference.py", "'" .. out_path .. "'")
if not ran_ok then error("tests/torch/init_reference.py failed:\n" .. msg, 0) end
local f = assert(io.open(out_path))
local ref = json.decode(f:read("a"))
f:close()

local I = lm.nn.init
local STD_TOL, REACH = 0.02, 0.995

-- Lumen's twin of each torch call of the reference, spelled out
local calls = {
  uniform_default = function(t) return I.uniform_(t) end,
  uniform_ab = function(t) return I.uniform_(t, -0.5, 2) end,
  normal_default = function(t) return I.normal_(t) end,
  normal_mean_std = function(t) return I.normal_(t, 3, 0.5) end,
  xavier_uniform_linear = function(t) return I.xavier_uniform_(t) end,
  xavier_uniform_conv_relu_gain = function(t) return I.xavier_uniform_(t, I.calculate_gain("relu")) end,
  xavier_normal_linear = function(t) return I.xavier_normal_(t) end,
  xavier_normal_conv_gain = function(t) return I.xavier_normal_(t, 0.5) end,
  xavier_uniform_conv3d = function(t) return I.xavier_uniform_(t) end,
  kaiming_uniform_default = function(t) return I.kaiming_uniform_(t) end,
  kaiming_uniform_torch_linear = function(t) return I.kaiming_uniform_(t, math.sqrt(5)) end,
  kaiming_uniform_fan_out_relu = function(t)
    return I.kaiming_uniform_(t, {mode = "fan_out", nonlinearity = "relu"})
  end,
  kaiming_uniform_leaky = function(t) return I.kaiming_uniform_(t, {a = 0.2}) end,
  kaiming_uniform_positional = function(t) return I.kaiming_uniform_(t, 0.1, "fan_out", "leaky_relu") end,
  kaiming_uniform_selu = function(t) return I.kaiming_uniform_(t, {nonlinearity = "selu"}) end,
  kaiming_uniform_sigmoid = function(t) return I.kaiming_uniform_(t, {nonlinearity = "sigmoid"}) end,
  kaiming_normal_default = function(t) return I.kaiming_normal_(t) end,
  kaiming_normal_fan_out_relu = function(t)
    return I.kaiming_normal_(t, {mode = "fan_out", nonlinearity = "relu"})
  end,
  kaiming_normal_tanh_upper_mode = function(t)
    return I.kaiming_normal_(t, {mode = "FAN_IN", nonlinearity = "tanh"})
  end,
  kaiming_normal_conv_transpose = function(t) return I.kaiming_normal_(t, {nonlinearity = "conv_transpose2d"}) end,
  trunc_normal_default = function(t) return I.trunc_normal_(t) end,
  trunc_normal_shifted = function(t) return I.trunc_normal_(t, {mean = 1, std = 0.5, a = 0, b = 2}) end,
  trunc_normal_vit = function(t) return I.trunc_normal_(t, {std = 0.02}) end,
  trunc_normal_asymmetric = function(t) return I.trunc_normal_(t, 0, 1, -0.5, 3) end,
}

-- the float32 nearest a number: what a bound becomes in a float32 draw
local function f32(v) return lm.tensor{v}:item() end

local function sample_std(t) return t:std():item() end

local function check_case(case)
  local call = calls[case.name]
  if not call then error("no Lumen call for reference case '" .. case.name .. "'", 0) end
  lm.manual_seed(1)
  local t = lm.zeros(case.shape):requires_grad(true) -- a parameter: initialised in place all the same
  eq(call(t), t, case.name .. " returns its tensor")
  truthy(t:requires_grad(), case.name .. " leaves requires_grad")
  local x = t:detach()
  if case.fan_in then
    local fan_in, fan_out = I._fans(x)
    eq(fan_in, case.fan_in, case.name .. " fan_in")
    eq(fan_out, case.fan_out, case.name .. " fan_out")
  end
  truthy(x:numel() >= 9000, case.name .. ": a large tensor")
  local lo, hi = x:min():item(), x:max():item()
  if case.draw == "uniform" then
    truthy(lo >= f32(case.lo) and hi <= f32(case.hi), string.format("%s: draws in [%.9g, %.9g], torch's bound "
      .. "[%.9g, %.9g]", case.name, lo, hi, case.lo, case.hi))
    local span = case.hi - case.lo
    truthy(lo < case.lo + (1 - REACH) * span / 2 and hi > case.hi - (1 - REACH) * span / 2,
      string.format("%s: draws in [%.9g, %.9g] reach torch's bound [%.9g, %.9g]", case.name, lo, hi, case.lo, case.hi))
    local std = span / math.sqrt(12)
    near(sample_std(x) / std, 1, STD_TOL, case.name .. ": sample std / torch's " .. std)
  elseif case.draw == "normal" then
    near(sample_std(x) / case.std, 1, STD_TOL, case.name .. ": sample std / torch's " .. case.std)
    near((x:mean():item() - case.mean) / case.std, 0, 4 / math.sqrt(x:numel()),
      case.name .. ": (sample mean - torch's mean) / std, within 4 standard errors")
  else -- trunc_normal: inside [a, b], reaching them where the truncation cuts the bulk
    truthy(lo >= f32(case.a) and hi <= f32(case.b),
      string.format("%s: draws in [%.9g, %.9g], torch's [a, b] [%g, %g]", case.name, lo, hi, case.a, case.b))
    if case.lo > -0.999 then truthy(lo < case.a + 0.01 * (case.b - case.a), case.name .. " reaches a: " .. lo) end
    if case.hi < 0.999 then truthy(hi > case.b - 0.01 * (case.b - case.a), case.name .. " reaches b: " .. hi) end
    near(sample_std(x) / case.std, 1, STD_TOL, case.name .. ": sample std / the truncated normal's " .. case.std)
  end
end

describe("lm.nn.init against torch.nn.init " .. ref.torch, function()
  local ran = {}
  for _, case in ipairs(ref.cases) do
    it(case.name .. " (" .. case.fn .. ", " .. table.concat(case.shape, "x") .. ")", function()
      check_case(case)
      ran[case.name] = true
    end)
  end

  it("checked every case of the reference, and the reference has every case here", function()
    local missing = {}
    for _, case in ipairs(ref.cases) do if not ran[case.name] then missing[#missing + 1] = case.name end end
    eq(table.concat(missing, ", "), "", "reference cases that did not pass")
    local names = {}
    for _, case in ipairs(ref.cases) do names[case.name] = true end
    for name in pairs(calls) do truthy(names[name], "Lumen case " .. name .. " is in the reference") end
    truthy(#ref.cases >= 20, "the reference's cases")
  end)

  -- (beyond 0.999, 3.3 std out, the float32 log of 1 - x^2 costs a few 1e-6)
  it("trunc_normal_'s erfinv is torch.erfinv's to 1e-6 in [-0.999, 0.999], 1e-5 beyond", function()
    local x, want = lm.tensor(ref.erfinv.x), lm.tensor(ref.erfinv.y)
    truthy(x:numel() > 2000, "points")
    local rel = (I._erfinv(x) - want):abs() / want:abs():clamp(1e-3)
    local inner = rel:narrow(1, 1, 2001):max():item()
    truthy(inner < 1e-6, "largest relative difference in [-0.999, 0.999] " .. inner)
    truthy(rel:max():item() < 1e-5, "largest relative difference " .. rel:max():item())
  end)

  it("calculate_gain gives torch's values exactly", function()
    truthy(#ref.gains >= 15, "the reference's gains")
    for _, g in ipairs(ref.gains) do
      local got = I.calculate_gain(g.nonlinearity, g.param)
      eq(got, g.gain, string.format("calculate_gain(%s, %s)", g.nonlinearity, tostring(g.param)))
    end
  end)

end)
