-- Convolutional networks on the CPU: Net2 and ResNet-18 (CIFAR stem, 3x3
-- stride-1 first convolution, no max pooling) on 3 x 32 x 32 inputs, one
-- inference batch (evaluation mode, no gradients) and one training step
-- (forward, MSE against one-hot targets, backward, Adam), milliseconds per
-- batch, best of BENCH_REPS (default 5) timed repetitions after two untimed.
-- The peer is bench/conv_nets_torch.py (the same layers).
--   lumen bench/conv_nets.lua [threads] [batch] [auto|gemm|winograd]
-- The third argument sets lm.set_conv_algorithm (default auto);
-- BENCH_WIDTH sets ResNet-18's first-stage channels (default 64,
-- torchvision's; the reduced CPU runs of docs/training.md use 16).
local lm = require 'lumen'
local F = lm.nn.functional
local threads = tonumber(arg[1]) or lm.get_num_threads()
local batch = tonumber(arg[2]) or 64
lm.set_conv_algorithm(arg[3] or "auto")
local width = tonumber(os.getenv("BENCH_WIDTH") or "") or 64
lm.set_num_threads(threads)
lm.manual_seed(1)

local best_ms = dofile((arg[0]:match("^(.*)/") or ".") .. "/best_ms.lua") -- (BENCH_REPS)

local x = lm.rand(batch, 3, 32, 32)
local labels = {}
for i = 1, batch do labels[i] = (i * 7) % 10 + 1 end
local target = lm.data.one_hot(lm.tensor(labels, 'int32'), 10):float()
for _, name in ipairs({"net2", "resnet18"}) do
  local net = name == "net2" and lm.models.net2() or lm.models.resnet18{stem = "cifar", num_classes = 10, width = width}
  local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
  net:evaluate()
  local infer = best_ms(function() lm.no_grad(function() return net(x) end) end)
  net:train()
  local train = best_ms(function()
    opt:zero_grad()
    local out = net(x)
    if name == "resnet18" then out = out:sigmoid() end
    F.mse(out, target):backward()
    opt:step()
    collectgarbage("step")
  end)
  local label = name == "resnet18" and width ~= 64 and name .. " width " .. width or name
  print(string.format("lumen %s, %d thread(s), batch %d: inference %.1f ms, training step %.1f ms "
    .. "(OpenBLAS %s, convolutions %s)", label, threads, batch, infer, train, lm.blas_info().kernel or "?",
    lm.get_conv_algorithm()))
end
