-- One training epoch of Net1 (MNIST-shaped), Net2 or ResNet-18 with the
-- CIFAR stem (CIFAR-10-shaped) on a device, timed the way bench/gpu_epoch_torch.py times PyTorch: data on the
-- host, a shuffled batch of 128 uploaded each step, MSE against one-hot
-- targets, Adam, no host synchronisation inside the epoch. The images are
-- uniform noise of the real sets' shapes (the time does not depend on the
-- pixels; the device machine has no data sets). With precision bfloat16
-- the forward pass runs under lm.autocast('bfloat16') (the peer:
-- gpu_epoch_torch.py --amp). With `graph` every step after the warm-up is
-- a replay of one CUDA graph (lm.cuda.graph) with the batch copied into its
-- inputs (the peer: gpu_epoch_torch.py's graph variant). Prints one line:
--   lumen[-graph] <model> <device> epoch_s <seconds> steps <n> loss <last loss> [bfloat16]
-- Usage: lumen bench/gpu_epoch.lua net1|net2|resnet18 [device] [epochs] [float32|bfloat16] [graph]
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))
local F = lm.nn.functional

local model_name, device, epochs = arg[1] or "net1", arg[2] or "cuda", tonumber(arg[3] or 2)
local precision = arg[4] or "float32"
local usage = "usage: lumen bench/gpu_epoch.lua net1|net2|resnet18 [device] [epochs] [float32|bfloat16] [graph]"
if precision ~= "float32" and precision ~= "bfloat16" then error(usage) end
local use_graph = arg[5] == "graph"
if arg[5] and not use_graph then error(usage) end
lm.manual_seed(1)
local n, net, xshape
if model_name == "net1" then
  n, net, xshape = 60000, lm.models.net1(), {60000, 784}
elseif model_name == "net2" then
  n, net, xshape = 50000, lm.models.net2(), {50000, 3, 32, 32}
elseif model_name == "resnet18" then
  n, net, xshape = 50000, lm.models.resnet18{num_classes = 10, stem = "cifar"}, {50000, 3, 32, 32}
else
  error(usage)
end
local forward = net
if precision == "bfloat16" then forward = function(x) return lm.autocast("bfloat16", net, x) end end
local set = {x = lm.rand(xshape), y = lm.tensor((function()
  local t = {} for i = 1, n do t[i] = (i * 7919) % 10 + 1 end return t end)(), 'int32')}
net:to(device)
net:train()
local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
local loader = lm.data.loader(set, {batch_size = 128, seed = 1})

local function sync() if device == "cuda" then lm.cuda.synchronize() end end

local last, graph, gx, gy
local function step(x, y)
  opt:zero_grad()
  local loss = F.mse(forward(x), lm.data.one_hot(y, 10):float())
  loss:backward()
  opt:step()
  return loss
end
local function run_epoch(max_steps)
  local steps = 0
  for x, y in loader:epoch_iter() do
    if use_graph and graph and x:size(1) == gx:size(1) then
      gx:copy_(x)
      gy:copy_(y)
      graph:replay()
    elseif use_graph and not graph and steps > 0 then -- captured at the second step, then run
      gx, gy = x:to(device), y:to(device)
      graph, last = lm.cuda.graph(step, gx, gy)
      graph:replay()
    else
      last = step(x:to(device), y:to(device))
    end
    steps = steps + 1
    if max_steps and steps >= max_steps then break end
  end
  return steps
end

run_epoch(20) -- warm-up: cuDNN algorithm search, allocator, first launches
sync()
local best = math.huge
local steps
for _ = 1, epochs do
  collectgarbage()
  local t0 = lm.clock()
  steps = run_epoch()
  sync()
  best = math.min(best, lm.clock() - t0)
end
print(string.format("lumen%s %s %s epoch_s %.3f steps %d loss %.5f%s", use_graph and "-graph" or "", model_name,
  device, best, steps,
  last:item(), precision == "bfloat16" and " bfloat16" or ""))
