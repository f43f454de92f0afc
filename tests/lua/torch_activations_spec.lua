-- torch 1.13's activations (tests/torch/activations_reference.py, which
-- defines the cases): each F function's output and input gradient (prelu's
-- weight gradient too, one slope and one a channel) at 1e-5 relative error
-- (max |a - b| / max |b|) on values that include the kinks and large
-- magnitudes; at +-inf and NaN, element by element, every value torch
-- defines (torch's NaN is not required). Each nn module gives its F
-- function's values; torch Sequentials using them load strictly and give
-- torch's output and gradients.
-- LUMEN_SPEC_VERBOSE=1 prints the worst error of each case.
local lm = require 'lumen'
local nn = lm.nn
local F = nn.functional
local json = require 'lumen.json'

local py = dofile("tests/helpers/python.lua")
if not py.can_import("torch") then
  skip("/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed", true)
end

local dir = py.write_reference("tests/torch/activations_reference.py")
local function read_json(name)
  local f = assert(io.open(dir .. "/" .. name))
  local v = json.decode(f:read("a"))
  f:close()
  return v
end
local ref = read_json("cases.json")
local t = lm.load(dir .. "/cases.safetensors")

local TOL = 1e-5
local verbose = os.getenv("LUMEN_SPEC_VERBOSE")

local function close(a, b, what)
  eq(a:shape_string(), b:shape_string(), what .. " shape")
  local err = rel_error(a, b)
  truthy(err <= TOL, string.format("%s: relative error %.3g", what, err))
  return err
end

-- element by element: torch's infinities exactly, its finite values within
-- TOL relative to the larger of 1 and the value; its NaN where `nan_kept`
-- (the outputs: a NaN in gives NaN out), else not required (the gradients:
-- torch's two CPU loops disagree at NaN)
local function close_defined(a, b, what, nan_kept)
  eq(a:shape_string(), b:shape_string(), what .. " shape")
  local av, bv = a:totable(), b:totable()
  for i = 1, #bv do
    local want, got = bv[i], av[i]
    if want ~= want then
      if nan_kept then truthy(got ~= got, string.format("%s at %d: %s, torch NaN", what, i, tostring(got))) end
      goto continue
    end
    if want == math.huge or want == -math.huge then
      eq(got, want, string.format("%s at %d", what, i))
    else
      truthy(math.abs(got - want) <= TOL * math.max(1, math.abs(want)),
        string.format("%s at %d: %s, torch %s", what, i, tostring(got), tostring(want)))
    end
    ::continue::
  end
end

-- the manifest's dim is torch's, 0-based
local function lua_dim(d) return d >= 0 and d + 1 or d end

local function run(case, x, w)
  if case.fn == "prelu" then return F.prelu(x, w) end
  if case.dim ~= nil then return F[case.fn](x, lua_dim(case.dim)) end
  return F[case.fn](x, table.unpack(case.args))
end

-- the module for each F function, built with the case's arguments
local MODULES = {
  hardswish = function() return nn.Hardswish() end,
  hardsigmoid = function() return nn.Hardsigmoid() end,
  mish = function() return nn.Mish() end,
  selu = function() return nn.SELU() end,
  logsigmoid = function() return nn.LogSigmoid() end,
  softsign = function() return nn.Softsign() end,
  tanhshrink = function() return nn.Tanhshrink() end,
  silu = function() return nn.SiLU() end,
  celu = function(c) return nn.CELU(table.unpack(c.args)) end,
  hardshrink = function(c) return nn.Hardshrink(table.unpack(c.args)) end,
  softshrink = function(c) return nn.Softshrink(table.unpack(c.args)) end,
  threshold = function(c) return nn.Threshold(table.unpack(c.args)) end,
  glu = function(c) return nn.GLU(lua_dim(c.dim)) end,
  softmin = function(c) return nn.Softmin(lua_dim(c.dim)) end,
}

describe("activations against torch " .. ref.torch, function()
  local ran = {}
  for _, case in ipairs(ref.cases) do
    it(case.name .. ": output and input gradient" .. (case.weight_grad and ", weight gradient" or ""), function()
      local p = case.name .. "/"
      local x = t[p .. "x"]:clone():requires_grad(true)
      local w = case.weight_grad and t[p .. "w"]:clone():requires_grad(true) or nil
      local y = run(case, x, w)
      local loss = (y * t[p .. "gy"]):sum()
      loss:backward()
      if case.special then
        close_defined(y, t[p .. "y"], case.name .. " output", true)
        close_defined(x.grad, t[p .. "gx"], case.name .. " input gradient")
      else
        local worst = close(y, t[p .. "y"], case.name .. " output")
        worst = math.max(worst, close(x.grad, t[p .. "gx"], case.name .. " input gradient"))
        if w then worst = math.max(worst, close(w.grad, t[p .. "gw"], case.name .. " weight gradient")) end
        if verbose then io.stderr:write(string.format("    %-36s worst %.2g\n", case.name, worst)) end
      end
      ran[case.name] = true
    end)
  end

  it("ran every case, with each function and prelu's shapes", function()
    local missing, fns, names = {}, {}, {}
    for _, case in ipairs(ref.cases) do
      if not ran[case.name] then missing[#missing + 1] = case.name end
      fns[case.fn], names[case.name] = true, true
    end
    eq(table.concat(missing, ", "), "", "reference cases that did not pass")
    for fn in pairs(MODULES) do truthy(fns[fn], fn) end
    for _, name in ipairs{"prelu_4x3_w1", "prelu_4x3_w3", "prelu_2x3x4x5_w1", "prelu_2x3x4x5_w3", "prelu_7_w1"} do
      truthy(names[name], name)
    end
  end)

  it("each module gives its function's values and gradients", function()
    for _, case in ipairs(ref.cases) do
      local make = MODULES[case.fn]
      if make and not case.special then
        local p = case.name .. "/"
        local a, b = t[p .. "x"]:clone():requires_grad(true), t[p .. "x"]:clone():requires_grad(true)
        local ya, yb = make(case)(a), run(case, b)
        eq(rel_error(ya, yb), 0, case.name .. " module output")
        ;(ya * t[p .. "gy"]):sum():backward()
        ;(yb * t[p .. "gy"]):sum():backward()
        eq(rel_error(a.grad, b.grad), 0, case.name .. " module gradient")
      end
    end
  end)

  it("nn.PReLU holds torch's weight and trains it", function()
    local m = nn.PReLU(3)
    eq(tostring(m), "nn.PReLU(num_parameters = 3)")
    local names = {}
    for k in pairs(m:state_dict()) do names[#names + 1] = k end
    eq(table.concat(names, ","), "weight")
    eq(table.concat(m.weight:totable(), " "), "0.25 0.25 0.25")
    eq(m.weight:shape_string(), "3")
    eq(nn.PReLU(1, 0.5).weight:item(), 0.5)
    eq(nn.PReLU().weight:shape_string(), "1")
    local case = "prelu_2x3x4x5_w3/"
    lm.no_grad(function() m.weight:copy_(t[case .. "w"]) end)
    local x = t[case .. "x"]:clone():requires_grad(true)
    ;(m(x) * t[case .. "gy"]):sum():backward()
    close(m.weight.grad, t[case .. "gw"], "nn.PReLU weight gradient")
    close(x.grad, t[case .. "gx"], "nn.PReLU input gradient")
  end)

  local function lumen_net(name)
    if name == "mlp" then
      return nn.Sequential(nn.Linear(6, 8), nn.PReLU(8), nn.Linear(8, 8), nn.SELU(), nn.Linear(8, 8), nn.Mish(),
        nn.Linear(8, 8), nn.CELU(0.7), nn.PReLU(), nn.Linear(8, 8), nn.Softsign(),
        nn.Linear(8, 8), nn.Tanhshrink(), nn.Hardshrink(0.2), nn.Softshrink(0.1),
        nn.Threshold(0.05, -0.5), nn.Linear(8, 8), nn.LogSigmoid(), nn.GLU(), nn.Softmin(2))
    end
    return nn.Sequential(nn.Conv2d(3, 8, 3, {padding = 1}), nn.PReLU(8),
      nn.Conv2d(8, 8, 3, {padding = 1, groups = 8}), nn.Hardswish(), nn.Conv2d(8, 8, 1), nn.Hardsigmoid(),
      nn.Conv2d(8, 4, 1), nn.PReLU(), nn.GLU(2))
  end

  for _, name in ipairs{"mlp", "conv"} do
    it("a torch Sequential (" .. name .. ") loads strictly, gives torch's output and gradients", function()
      local keys = read_json("nets.json")[name]
      local m = lumen_net(name)
      m:load_state_dict(lm.load(dir .. "/" .. name .. ".safetensors"), {strict = true})
      local io_ = lm.load(dir .. "/" .. name .. "_io.safetensors")
      local x = io_.x:clone():requires_grad(true)
      local y = m(x)
      close(y, io_.y, name .. " output")
      ;(y * io_.gy):sum():backward()
      close(x.grad, io_.gx, name .. " input gradient")
      local params = {}
      for _, pair in ipairs(m:named_parameters()) do params[pair[1]] = pair[2] end
      local count = 0
      for _, k in ipairs(keys) do
        if params[k] then
          close(params[k].grad, io_["grad/" .. k], name .. " gradient of " .. k)
          count = count + 1
        end
      end
      eq(count, #keys, "a gradient for every parameter")
    end)
  end
end)

os.execute("rm -rf '" .. dir .. "'")
