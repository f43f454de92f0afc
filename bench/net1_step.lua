-- One training step of the paper's Net1 (784 -> 12 x [Linear(200) + ELU +
-- Dropout(0.1)] -> Linear(10) + Sigmoid, MSE loss, Adam), batch 128, timed.
--   lumen bench/net1_step.lua [threads] [steps]
-- Prints ms per step and how many blocks the allocator had to take from the
-- system after the first step (0 means every tensor came from the cache).
-- Lua frees a step's temporaries only when its collector runs, so the loop
-- collects once per step (as lm.train does); pass 'nocollect' as the third
-- argument to leave it to the collector's own pace.
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
local F = lm.nn.functional

local threads = tonumber(arg[1]) or lm.get_num_threads()
local steps = tonumber(arg[2]) or 200
local collect = arg[3] ~= 'nocollect'
lm.set_num_threads(threads)
lm.manual_seed(1)

local net = lm.models.net1()
local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
local x = lm.rand(128, 784)
local y = lm.zeros(128, 10)
for i = 1, 128 do y[i][(i % 10) + 1] = 1 end

local function step()
  opt:zero_grad()
  F.mse(net(x), y):backward()
  opt:step()
  if collect then collectgarbage('step') end
end

step() -- first step: the allocator fills its cache
collectgarbage()
local before = lm.memory_stats()
local t0 = lm.clock()
for _ = 1, steps do step() end
local dt = (lm.clock() - t0) / steps
local after = lm.memory_stats()
local misses = (after.allocations - before.allocations) - (after.cache_hits - before.cache_hits)
print(string.format("net1 step, batch 128, %d thread(s): %.3f ms/step; new system blocks after step 1: %d",
  threads, dt * 1e3, misses))
return {ms = dt * 1e3, misses = misses}
