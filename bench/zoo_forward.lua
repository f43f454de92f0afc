-- torchvision's image classifiers on the CPU: one inference batch
-- (evaluation mode, no gradients) of 3 x SIZE x SIZE images through each
-- family Lumen builds with torchvision's layers (1000 classes, ImageNet
-- stems), milliseconds per batch, best of BENCH_REPS (default 5) after two
-- untimed. This is the work of recording a network's activations for its
-- map. The peer is bench/zoo_forward_torch.py (torchvision's own models).
--   lumen bench/zoo_forward.lua [threads] [batch] [size] [name,name,...]
local lm = require 'lumen'
local threads = tonumber(arg[1]) or lm.get_num_threads()
local batch = tonumber(arg[2]) or 8
local size = tonumber(arg[3]) or 224
local names = arg[4] or "resnet50,resnext50_32x4d,wide_resnet50_2,densenet121,vgg11_bn,efficientnet_b0,"
  .. "mobilenet_v3_large,regnet_y_800mf,convnext_tiny"
lm.set_num_threads(threads)
lm.manual_seed(1)

local best_ms = dofile((arg[0]:match("^(.*)/") or ".") .. "/best_ms.lua") -- (BENCH_REPS)

local x = lm.rand(batch, 3, size, size)
for name in names:gmatch("[^,]+") do
  local net = assert(lm.models[name], "no lm.models." .. name){num_classes = 1000}
  net:evaluate()
  local ms = best_ms(function() lm.no_grad(function() return net(x) end) end)
  print(string.format("lumen %-20s %d thread(s), batch %d, %dx%d: inference %8.1f ms (OpenBLAS %s)", name,
    threads, batch, size, size, ms, lm.blas_info().kernel or "?"))
  net = nil
  collectgarbage()
end
