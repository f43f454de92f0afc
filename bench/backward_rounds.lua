-- The timing loop of the convolution-gradient benchmarks, as
-- bench/algorithm_rounds.lua's: under each of `algorithms`, a forward pass
-- (untimed), then its backward pass from the output gradient gy, timed.
-- Returns each algorithm's best time in seconds and the gradient
-- `leaf.grad` it left last. Loaded from the script's own folder:
--   local backward_rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/backward_rounds.lua")
--   local times, grads = backward_rounds({"gemm", "auto"}, function() return F.conv2d(x, w) end, gy, x)
local rounds = dofile((arg[0]:match("^(.*)/") or ".") .. "/algorithm_rounds.lua")

return function(algorithms, forward, gy, leaf)
  return rounds(algorithms, function(y)
    y:backward(gy)
    return leaf.grad
  end, function()
    leaf.grad = nil
    return forward()
  end)
end
