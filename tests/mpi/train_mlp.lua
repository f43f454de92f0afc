-- Data-parallel training against one process (tests/lua/dist_spec.lua):
--   mpirun -n 2 lumen tests/mpi/train_mlp.lua dist OUT [cuda]   (batch 16 per rank)
--   lumen tests/mpi/train_mlp.lua single OUT [cuda]             (batch 32, one process)
-- 20 steps of SGD with momentum and dropout on the same data; every process writes its
-- parameters to OUT.<rank>.safetensors for the spec to compare. The ranks
-- start from different weights: broadcast_parameters must make them equal.
local mode, out, device = arg[1], arg[2], arg[3] or "cpu"
assert(mode == "dist" or mode == "single", "usage: train_mlp.lua dist|single OUT [cpu|cuda]")
local rank = mode == "dist" and lm.dist.rank() or 0

lm.manual_seed(1) -- the data: the same on every rank
local n = 320
local x = lm.randn(n, 8)
local y = (x:narrow(2, 1, 1):view(n):gt(0):int() * 2 + x:narrow(2, 2, 1):view(n):gt(0):int() + 1):int()

lm.manual_seed(100 + rank) -- rank 0 and the single process start from the same weights
local net = lm.nn.Sequential(lm.nn.Linear(8, 32), lm.nn.Tanh(), lm.nn.Dropout(0.2), lm.nn.Linear(32, 4))
if device ~= "cpu" then net:to(device) end
local opt = lm.optim.SGD(net:parameters(), {lr = 0.1, momentum = 0.9})
local history = lm.train{
  model = net, optimizer = opt, train = {x = x, y = y}, loss = "cross_entropy",
  batch_size = mode == "dist" and 32 // lm.dist.size() or 32, epochs = 2, seed = 7,
  distributed = mode == "dist", tty = false,
}
assert(#history == 2 and history[2].iteration == 20, "20 steps in 2 epochs")
local state = {}
for name, t in pairs(net:state_dict()) do state[name] = t:to("cpu") end
lm.save(string.format("%s.%d.safetensors", out, rank), state)
