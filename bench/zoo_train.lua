-- torchvision's image classifiers on the CPU: one training step (training
-- mode: forward, cross-entropy against fixed labels, backward, SGD with
-- momentum 0.9) on a batch of 3 x SIZE x SIZE images through each family
-- Lumen builds with torchvision's layers (1000 classes, ImageNet stems),
-- milliseconds per step, best of BENCH_REPS (default 5) after two untimed.
-- The peer is bench/zoo_train_torch.py (torchvision's own models).
--   lumen bench/zoo_train.lua [threads] [batch] [size] [name,name,...]
local lm = require 'lumen'
local F = lm.nn.functional
local threads = tonumber(arg[1]) or lm.get_num_threads()
local batch = tonumber(arg[2]) or 8
local size = tonumber(arg[3]) or 224
local names = arg[4] or "resnet50,resnext50_32x4d,densenet121,vgg11_bn,efficientnet_b0,"
  .. "mobilenet_v3_large,regnet_y_800mf,convnext_tiny"
lm.set_num_threads(threads)
lm.manual_seed(1)

local best_ms = dofile((arg[0]:match("^(.*)/") or ".") .. "/best_ms.lua") -- (BENCH_REPS)

local x = lm.rand(batch, 3, size, size)
local labels = {}
for i = 1, batch do labels[i] = (i * 37) % 1000 + 1 end
labels = lm.tensor(labels, 'int32')
for name in names:gmatch("[^,]+") do
  local net = assert(lm.models[name], "no lm.models." .. name){num_classes = 1000}
  net:train()
  local opt = lm.optim.SGD(net:parameters(), {lr = 1e-3, momentum = 0.9})
  local ms = best_ms(function()
    opt:zero_grad()
    F.cross_entropy(net(x), labels):backward()
    opt:step()
    collectgarbage()
  end)
  print(string.format("lumen %-20s %d thread(s), batch %d, %dx%d: training step %8.1f ms (OpenBLAS %s)", name,
    threads, batch, size, size, ms, lm.blas_info().kernel or "?"))
  net, opt = nil, nil
  collectgarbage()
end
