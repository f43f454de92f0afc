-- What lm.autocast('bfloat16') costs on the CPU, where its products are
-- float32 products of rounded operands (the GPU's reference, not a
-- speed-up): a Net1 training step (batch 128) and a ResNet-18 training step
-- (CIFAR stem, batch 64), each alternated float32 / bfloat16 in one process,
-- best of `rounds`.
--   lumen bench/autocast_cpu.lua [threads] [rounds]
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
local F = lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or 2)
local rounds = tonumber(arg[2]) or 6

local function stepper(net, x, loss)
  local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
  return function(cast)
    opt:zero_grad()
    local l = cast and lm.autocast("bfloat16", function() return loss(net(x)) end) or loss(net(x))
    l:backward()
    opt:step()
  end
end

lm.manual_seed(1)
local labels = {}
for i = 1, 128 do labels[i] = i % 10 + 1 end
local y128 = lm.data.one_hot(lm.tensor(labels, 'int32'), 10):float()
local y64 = lm.tensor({table.unpack(labels, 1, 64)}, 'int32')
local cases = {
  {"Net1 training step, batch 128", stepper(lm.models.net1(), lm.rand(128, 784),
    function(out) return F.mse(out, y128) end), 20},
  {"ResNet-18 training step, batch 64", stepper(lm.models.resnet18{num_classes = 10, stem = "cifar"},
    lm.rand(64, 3, 32, 32), function(out) return F.cross_entropy(out, y64) end), 1},
}
for _, c in ipairs(cases) do
  local name, step, reps = c[1], c[2], c[3]
  step(false)
  step(true)
  local best = {[false] = math.huge, [true] = math.huge}
  for _ = 1, rounds do
    for _, cast in ipairs({false, true}) do
      collectgarbage()
      local t = lm.clock()
      for _ = 1, reps do step(cast) end
      best[cast] = math.min(best[cast], (lm.clock() - t) / reps)
    end
  end
  print(string.format("%s, %d threads: float32 %.2f ms, bfloat16 %.2f ms (x%.3f; best of %d, alternated)", name,
    lm.get_num_threads(), best[false] * 1e3, best[true] * 1e3, best[true] / best[false], rounds))
end
