-- Net1 training steps from fresh weights against steps from a trained
-- checkpoint (late in training, where saturated sigmoids once made
-- gradients subnormal and steps slow), alternated, same data and code.
--   lumen bench/net1_late.lua CHECKPOINT [threads] [steps]
-- e.g. CHECKPOINT = results/introspect_mnist/classifier.safetensors
local lm = require 'lumen'
local F = lm.nn.functional
local path = arg[1] or error("usage: lumen bench/net1_late.lua CHECKPOINT [threads] [steps]", 0)
lm.set_num_threads(tonumber(arg[2]) or lm.get_num_threads())
local steps = tonumber(arg[3]) or 300
lm.manual_seed(1)
local d = lm.data.mnist()
local eye = lm.data.one_hot(lm.arange(1, 10, 'int32'), 10):float()

-- ms per step over `steps` steps after 20 warm-up steps
local function time_steps(net)
  local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
  local loader = lm.data.loader(d.train, {batch_size = 128, seed = 1})
  local n, t0 = 0, nil
  for x, y in loader:epoch_iter() do
    if n == 20 then t0 = lm.clock() end
    opt:zero_grad()
    F.mse(net(x), eye:index_select(y)):backward()
    opt:step()
    collectgarbage("step")
    n = n + 1
    if n == steps + 20 then break end
  end
  return (lm.clock() - t0) / steps * 1000
end

local fresh, late = lm.models.net1(), lm.models.net1()
late:load(path)
print(string.format("# %d thread(s), %d steps of batch 128, flush denormal %s, %s", lm.get_num_threads(), steps,
  tostring(lm.get_flush_denormal()), "OpenBLAS " .. tostring(lm.blas_info().kernel)))
for round = 1, 2 do
  print(string.format("round %d: fresh %.2f ms/step, late %.2f ms/step", round, time_steps(fresh), time_steps(late)))
end
