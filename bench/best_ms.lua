-- The timing loop the benchmarks share: two warm-up calls, then the best of
-- BENCH_REPS (default 5) timed calls of fn, in milliseconds. Loaded from the
-- script's own folder:
--   local best_ms = dofile((arg[0]:match("^(.*)/") or ".") .. "/best_ms.lua")
local lm = require 'lumen'
local reps = tonumber(os.getenv("BENCH_REPS") or "") or 5

return function(fn)
  fn(); fn()
  local best = math.huge
  for _ = 1, reps do
    local t = lm.clock()
    fn()
    best = math.min(best, lm.clock() - t)
  end
  return best * 1e3
end
