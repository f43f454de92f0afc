-- Peak tensor memory of one training step (forward, MSE against one-hot
-- targets, backward), after a warm-up step: the peak of live tensor bytes
-- above what was live before the step (lm.memory_stats), for ResNet-18
-- (CIFAR stem, batch 64), a small ViT (batch 64) or Net1 (batch 128).
--   lumen bench/graph_memory.lua resnet18|vit|net1
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
local F = lm.nn.functional
lm.manual_seed(1)
local which = arg[1] or "resnet18"
local net, x, y
if which == "resnet18" then
  net = lm.models.resnet18{stem = "cifar", num_classes = 10}
  x = lm.rand(64, 3, 32, 32)
elseif which == "net1" then
  net = lm.models.net1(); x = lm.rand(128, 784)
else
  net = lm.models.vit{image_size = 32, patch_size = 4, num_classes = 10, dim = 128, depth = 4, heads = 4, mlp_dim = 256}
  x = lm.rand(64, 3, 32, 32)
end
local labels = {}
for i = 1, x:size(1) do labels[i] = i % 10 + 1 end
y = lm.data.one_hot(lm.tensor(labels, 'int32'), 10):float()
local function step() net:zero_grad(); F.mse(net(x), y):backward() end
step(); collectgarbage(); collectgarbage()
lm.reset_peak_memory()
local base = lm.memory_stats().live_bytes
step()
print(string.format("%s training step: peak %.1f MiB above the %.1f MiB live before", which,
  (lm.memory_stats().peak_bytes - base) / 2^20, base / 2^20))
