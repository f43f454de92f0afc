-- What lm.nn.functional's entry check costs: F.relu(x) (a Lua wrapper that
-- tests lm.is_tensor(x) before x:relu()) against x:relu() itself, on a
-- tensor small enough that the call, not the op, is what is timed.
--   lumen bench/functional_call_cost.lua [calls]
local lm = require 'lumen'
local F = lm.nn.functional
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
lm.set_num_threads(1)
local x = lm.randn(16, 16)
local n = tonumber(arg[1]) or 200000
local function time(f)
  local best = math.huge
  for _ = 1, 5 do
    local t0 = lm.clock()
    for _ = 1, n do f(x) end
    best = math.min(best, lm.clock() - t0)
  end
  return best / n * 1e9
end
local direct = time(function(t) return t:relu() end)
local checked = time(F.relu)
local direct2 = time(function(t) return t:relu() end)
print(string.format("x:relu() %.0f ns, F.relu(x) %.0f ns, x:relu() again %.0f ns (1 thread, best of 5 x %d calls)",
  direct, checked, direct2, n))
