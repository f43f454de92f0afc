-- A small vision transformer on the CPU (lm.models.vit: 32x32 images, 4x4
-- patches, dim 96, depth 4, 3 heads, MLP 192, the configuration of
-- docs/training.md's reduced CIFAR-10 run): one inference batch (evaluation
-- mode, no gradients) and one training step (forward, cross-entropy,
-- backward, AdamW), milliseconds per batch, best of BENCH_REPS (default 5)
-- timed repetitions after two untimed. The peer is bench/vit_step_torch.py
-- (torch.nn.TransformerEncoderLayer, the same shapes).
--   lumen bench/vit_step.lua [threads] [batch]
local lm = require 'lumen'
local F = lm.nn.functional
local threads = tonumber(arg[1]) or lm.get_num_threads()
local batch = tonumber(arg[2]) or 128
lm.set_num_threads(threads)
lm.manual_seed(1)

local best_ms = dofile((arg[0]:match("^(.*)/") or ".") .. "/best_ms.lua") -- (BENCH_REPS)

local x = lm.rand(batch, 3, 32, 32)
local labels = {}
for i = 1, batch do labels[i] = (i * 7) % 10 + 1 end
local y = lm.tensor(labels, 'int32')
local net = lm.models.vit{image_size = 32, patch_size = 4, num_classes = 10, dim = 96, depth = 4, heads = 3,
  mlp_dim = 192}
local opt = lm.optim.AdamW(net:parameters(), {lr = 1e-3, weight_decay = 0.05})
net:evaluate()
local infer = best_ms(function() lm.no_grad(function() return net(x) end) end)
net:train()
local train = best_ms(function()
  opt:zero_grad()
  F.cross_entropy(net(x), y):backward()
  opt:step()
  collectgarbage("step")
end)
print(string.format("lumen vit, %d thread(s), batch %d: inference %.1f ms, training step %.1f ms (OpenBLAS %s)",
  threads, batch, infer, train, lm.blas_info().kernel or "?"))
