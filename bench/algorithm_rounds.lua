-- The timing loop of the convolution-algorithm benchmarks: fn() under each
-- of `algorithms` (lm.set_conv_algorithm), 7 rounds with the algorithms
-- alternated in each (so that the VM's slow phases hit them alike), a
-- collection before each call (the output's block then comes from the
-- allocator's cache, not fresh pages: about 10 us each on our VM). With
-- `prepare`, each call is fn(prepare()), prepare's part untimed (a forward
-- pass whose backward pass fn times). Returns each algorithm's best time in
-- seconds over rounds 3-7 and its last result; the choice is 'auto'
-- afterwards. Loaded from the script's own folder:
--   local rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/algorithm_rounds.lua")
local lm = require 'lumen'

return function(algorithms, fn, prepare)
  local times, out = {}, {}
  for round = 1, 7 do
    for _, algorithm in ipairs(algorithms) do
      lm.set_conv_algorithm(algorithm)
      out[algorithm] = nil
      local input = prepare and prepare()
      collectgarbage()
      local t0 = lm.clock()
      out[algorithm] = fn(input)
      local t = lm.clock() - t0
      if round > 2 then times[algorithm] = math.min(times[algorithm] or math.huge, t) end
    end
  end
  lm.set_conv_algorithm("auto")
  return times, out
end
