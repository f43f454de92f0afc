-- Long-run memory: trains Net1 for 20,000 steps (batch 128, MSE, Adam,
-- dropout) on MNIST and samples the process's resident memory every 500
-- steps; the growth after warm-up (the first 2,000 steps) must stay under
-- 5 %. With a GPU (lumen bench/soak.lua cuda) the CUDA allocator's live and
-- cached bytes are sampled too.
--   lumen bench/soak.lua [device] [steps]
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
local F = lm.nn.functional
local device, total = arg[1] or "cpu", tonumber(arg[2] or 20000)
local warmup = math.min(2000, total // 4)
lm.manual_seed(1)

local function rss_mb()
  local f = io.open("/proc/self/status")
  if not f then return 0 / 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) / 1024
end

local d = lm.data.mnist()
local net = lm.models.net1()
net:to(device)
local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
local loader = lm.data.loader(d.train, {batch_size = 128, seed = 1})
local eye = lm.data.one_hot(lm.arange(1, 10, 'int32'), 10):float():to(device)
local samples, after_warmup, peak = {}, nil, 0
local t0 = lm.clock()
local step, it = 0, loader:epoch_iter()
while step < total do
  local x, y = it()
  if not x then it = loader:epoch_iter(); x, y = it() end
  x, y = x:to(device), y:to(device)
  opt:zero_grad()
  local loss = F.mse(net(x), eye:index_select(y))
  loss:backward()
  opt:step()
  collectgarbage("step")
  step = step + 1
  if step % 500 == 0 then
    if device ~= "cpu" then lm.cuda.synchronize() end
    local r = rss_mb()
    samples[#samples + 1] = {step = step, rss_mb = r, lua_mb = collectgarbage("count") / 1024,
      cpu_live_mb = lm.memory_stats().live_bytes / 2 ^ 20,
      gpu_live_mb = device ~= "cpu" and lm.cuda.memory_stats().live_bytes / 2 ^ 20 or nil}
    if step == warmup then after_warmup = r end
    if step > warmup then peak = math.max(peak, r) end
  end
end
local growth = after_warmup and (peak - after_warmup) / after_warmup or 0
print(string.format("soak %s: %d steps in %.0f s; resident memory %.1f MB after %d steps of warm-up, "
  .. "peak %.1f MB after: growth %.2f %% (limit 5 %%), last loss %.5f",
  device, total, lm.clock() - t0, after_warmup or 0, warmup, peak, 100 * growth,
  lm.nn.functional.mse(net(d.test.x:narrow(1, 1, 1000):to(device)),
    eye:index_select(d.test.y:narrow(1, 1, 1000):to(device))):item()))
for _, s in ipairs(samples) do
  io.write(string.format("%d:%.1f(lua %.1f, tensors %.1f)%s ", s.step, s.rss_mb, s.lua_mb, s.cpu_live_mb,
    s.gpu_live_mb and string.format("/%.1f", s.gpu_live_mb) or ""))
end
print()
return {growth = growth, samples = samples}
