-- lm.nn.init on the GPU: each initialiser fills a CUDA tensor in place on
-- the device (eye_ and trunc_normal_'s erfinv by device ops, no copy
-- through the host) with the values the CPU draws from the same seed (the
-- counter-based generator gives both devices the same stream), to 1e-5 of
-- the largest value (1e-4 for trunc_normal_'s erfinv: the device's log and
-- sqrt). Skips, saying why, when no GPU answers.
local lm = require 'lumen'

-- LUMEN_GPU_DRY_RUN=1: the CPU stands in for the GPU (checks the spec's code only)
local DEV = dofile("tests/helpers/gpu_device.lua")("init_spec", skip)

local I = lm.nn.init

local cases = {
  {"uniform_", function(t) return I.uniform_(t, -0.5, 2) end, 1e-5},
  {"normal_", function(t) return I.normal_(t, 3, 0.5) end, 1e-5},
  {"xavier_uniform_", function(t) return I.xavier_uniform_(t) end, 1e-5},
  {"xavier_normal_", function(t) return I.xavier_normal_(t, 0.5) end, 1e-5},
  {"kaiming_uniform_", function(t) return I.kaiming_uniform_(t, math.sqrt(5)) end, 1e-5},
  {"kaiming_normal_", function(t) return I.kaiming_normal_(t, {mode = "fan_out", nonlinearity = "relu"}) end, 1e-5},
  {"trunc_normal_", function(t) return I.trunc_normal_(t, {mean = 0.5, std = 1, a = -1, b = 2}) end, 1e-4},
  {"constant_", function(t) return I.constant_(t, 2.5) end, 0},
  {"eye_", function(t) return I.eye_(t) end, 0},
}

describe("lm.nn.init on " .. DEV, function()
  for _, case in ipairs(cases) do
    local name, fn, tol = case[1], case[2], case[3]
    it(name .. " fills a tensor on the device as on the CPU", function()
      for _, shape in ipairs{{64, 48}, {48, 64}, {16, 8, 3, 3}} do
        if name ~= "eye_" or #shape == 2 then
          lm.manual_seed(11)
          local cpu = fn(lm.zeros(shape))
          lm.manual_seed(11)
          local p = lm.zeros(shape, DEV):requires_grad(true) -- a parameter, initialised in place
          eq(fn(p), p)
          eq(p:device(), DEV)
          truthy(p:requires_grad(), "still requires gradients")
          local got = p:detach():to("cpu")
          local err = (got - cpu):abs():max():item() / math.max(cpu:abs():max():item(), 1e-6)
          truthy(err <= tol, string.format("%s %s: relative difference %.3g > %g", name,
            table.concat(shape, "x"), err, tol))
        end
      end
    end)
  end

  it("trunc_normal_ keeps every value in [a, b] on the device", function()
    local t = I.trunc_normal_(lm.zeros(500, 400, DEV), {a = -1, b = 1.5})
    truthy(t:min():item() >= -1 and t:max():item() <= 1.5, "inside [-1, 1.5]")
  end)
end)
