-- ResNet-18 inference (CIFAR stem, batch 64, evaluation, no gradients) with
-- each batch norm run together with what follows it (the default) against
-- the modules one by one (a no-op forward hook on every batch norm keeps
-- them apart), alternated in one process, best of 8 each.
--   lumen bench/bn_fusion.lua [threads]
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
lm.set_num_threads(tonumber(arg[1]) or 2)
lm.manual_seed(1)
local net = lm.models.resnet18{stem = "cifar", num_classes = 10}:evaluate()
local x = lm.rand(64, 3, 32, 32)
local hooks = {}
local function set_fused(on)
  for _, r in ipairs(hooks) do r.remove() end
  hooks = {}
  if on then return end
  for _, m in ipairs(net:modules()) do
    if getmetatable(m) == lm.nn.BatchNorm2d then hooks[#hooks + 1] = m:register_forward_hook(function() end) end
  end
end
local function run() return lm.no_grad(function() return net(x) end) end
for _ = 1, 2 do run() end
local best = {[true] = math.huge, [false] = math.huge}
for _ = 1, 8 do
  for _, on in ipairs({true, false}) do
    set_fused(on)
    collectgarbage()
    local t = lm.clock()
    run()
    best[on] = math.min(best[on], lm.clock() - t)
  end
end
print(string.format("resnet18 inference, %d threads: fused %.1f ms, apart %.1f ms (best of 8, alternated)",
  lm.get_num_threads(), best[true] * 1e3, best[false] * 1e3))
