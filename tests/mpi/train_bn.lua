-- Data-parallel training of a network with BatchNorm (tests/lua/dist_spec.lua):
--   mpirun -n 2 lumen tests/mpi/train_bn.lua OUT
-- Each rank's running statistics move with its own shard; before each
-- validation lm.train gives every rank rank 0's, so validation, early
-- stopping and the final state are one model's on every rank. Every rank
-- writes its state to OUT.<rank>.safetensors and its validation losses to
-- OUT.<rank>.txt, one a line.
local out = arg[1]
local rank = lm.dist.rank()

lm.manual_seed(1) -- the data: the same on every rank
local n = 256
local x = lm.randn(n, 6)
local y = (x:narrow(2, 1, 1):view(n):gt(0):int() + 1):int()
local val = {x = lm.randn(64, 6) * 2 + 1}
val.y = (val.x:narrow(2, 1, 1):view(64):gt(0):int() + 1):int()

lm.manual_seed(30 + rank)
local net = lm.nn.Sequential(lm.nn.Linear(6, 16), lm.nn.BatchNorm1d(16), lm.nn.Tanh(), lm.nn.Linear(16, 2))
local opt = lm.optim.SGD(net:parameters(), {lr = 0.5})
local history = lm.train{
  model = net, optimizer = opt, train = {x = x, y = y}, val = val, loss = "cross_entropy",
  batch_size = 16, epochs = 8, seed = 3, distributed = true, tty = false,
  early_stopping = {patience = 2},
}
local state = {}
for name, t in pairs(net:state_dict()) do state[name] = t:to("cpu") end
lm.save(string.format("%s.%d.safetensors", out, rank), state)
local f = assert(io.open(string.format("%s.%d.txt", out, rank), "w"))
for _, h in ipairs(history) do f:write(string.format("%.9g\n", h.val_loss)) end
f:close()
