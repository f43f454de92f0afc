-- Net1 training steps with nn.Sequential's fused Linear -> ELU -> Dropout
-- (net.fuse = true, the default) against the modules one by one, alternated
-- every 150 steps in one process on the same data (best of 8), then the
-- step against its GEMM-only floor (bench/net1_gemm_floor.lua's products for
-- one step), alternated the same way.
--   lumen bench/net1_fusion.lua [threads]
local lm = require 'lumen'
local F = lm.nn.functional
local threads = tonumber(arg[1]) or lm.get_num_threads()
lm.set_num_threads(threads)
lm.manual_seed(1)
local d = lm.data.mnist()
local net = lm.models.net1()
local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
local eye = lm.data.one_hot(lm.arange(1, 10, 'int32'), 10):float()
local loader = lm.data.loader(d.train, {batch_size = 128, seed = 1})
local it = loader:epoch_iter()
local function step()
  local x, y = it()
  if not x then
    it = loader:epoch_iter()
    x, y = it()
  end
  opt:zero_grad()
  F.mse(net(x), eye:index_select(y)):backward()
  opt:step()
  collectgarbage("step")
end
local function best_of(rounds, steps, fn)
  local best = math.huge
  for _ = 1, rounds do
    local t = lm.clock()
    for _ = 1, steps do fn() end
    best = math.min(best, (lm.clock() - t) / steps)
  end
  return best
end
for _ = 1, 100 do step() end
local fused, plain = math.huge, math.huge
for _ = 1, 8 do
  net.fuse = true
  fused = math.min(fused, best_of(1, 150, step))
  net.fuse = false
  plain = math.min(plain, best_of(1, 150, step))
end
net.fuse = true
print(string.format("lumen net1 step, %d thread(s), OpenBLAS %s: fused %.1f us, one module at a time %.1f us",
  threads, lm.blas_info().kernel or "?", fused * 1e6, plain * 1e6))

local sizes = {784}
for _ = 1, 12 do sizes[#sizes + 1] = 200 end
sizes[#sizes + 1] = 10
local W, X, DY = {}, {}, {}
for l = 1, #sizes - 1 do
  W[l] = lm.randn(sizes[l + 1], sizes[l]) * 0.01
  X[l] = lm.randn(128, sizes[l])
  DY[l] = lm.randn(128, sizes[l + 1])
end
local function floor_step()
  for l = 1, #W do
    local _ = lm.matmul(X[l], W[l]:t())
    local _ = lm.matmul(DY[l]:t(), X[l])
    if l > 1 then local _ = lm.matmul(DY[l], W[l]) end
  end
end
local f, s = math.huge, math.huge
for _ = 1, 8 do
  f = math.min(f, best_of(1, 150, floor_step))
  s = math.min(s, best_of(1, 150, step))
end
print(string.format("GEMM-only floor %.1f us, step %.1f us, ratio %.2f", f * 1e6, s * 1e6, s / f))
