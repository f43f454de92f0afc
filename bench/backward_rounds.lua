-- The timing loop of the convolution-gradient benchmarks: under each of
-- `algorithms` (lm.set_conv_algorithm), a forward pass (untimed), then its
-- backward pass from the output gradient gy, timed; 7 rounds with the
-- algorithms alternated in each, a collection before each backward pass.
-- Returns each algorithm's best time in seconds over rounds 3-7 and the
-- gradient `leaf.grad` it left last; the choice is 'auto' afterwards.
-- Loaded from the script's own folder:
--   local backward_rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/backward_rounds.lua")
--   local times, grads = backward_rounds({"gemm", "auto"}, function() return F.conv2d(x, w) end, gy, x)
local lm = require 'lumen'

return function(algorithms, forward, gy, leaf)
  local times, grads = {}, {}
  for round = 1, 7 do
    for _, algorithm in ipairs(algorithms) do
      lm.set_conv_algorithm(algorithm)
      leaf.grad = nil
      local y = forward()
      collectgarbage()
      local t0 = lm.clock()
      y:backward(gy)
      local t = lm.clock() - t0
      grads[algorithm] = leaf.grad
      if round > 2 then times[algorithm] = math.min(times[algorithm] or math.huge, t) end
    end
  end
  lm.set_conv_algorithm("auto")
  return times, grads
end
