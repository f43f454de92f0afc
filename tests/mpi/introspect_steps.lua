-- Data-parallel steps of the introspection pipeline against one process
-- (tests/lua/dist_spec.lua):
--   mpirun -n 2 lumen tests/mpi/introspect_steps.lua dist OUT
--   lumen tests/mpi/introspect_steps.lua single OUT
-- 1. lm.train of a net with dropout and input noise, global batch 30 (15 a
--    rank): the masks and the noise of a rank's rows must be those one
--    process draws for the whole batch (layer widths 32 and 33, inputs 7:
--    both the direct draw and the draw of the whole batch are used);
-- 2. an InfoVAE on a recording whose rows the ranks hold interleaved (rank r
--    the rows r, r + K, ...), the MMD on the gathered codes of each batch;
-- 3. the estimator on the latents, the same way.
-- Every process writes the parameters and the loss histories to
-- OUT.<rank>.safetensors.
local I = require 'lumen.introspect'
local mode, out = arg[1], arg[2]
assert(mode == "dist" or mode == "single", "usage: introspect_steps.lua dist|single OUT")
local d = lm.dist
local dist = mode == "dist"
local rank, k = dist and d.rank() or 0, dist and d.size() or 1
local nn = lm.nn
local state = {}
local function keep(prefix, net)
  for name, t in pairs(net:state_dict()) do state[prefix .. name] = t:to("cpu"):clone() end
end

-- 1. classifier with dropout and noise
lm.manual_seed(1)
local n = 300
local x = lm.rand(n, 7)
local y = (x:narrow(2, 1, 1):view(n):gt(0.5):int() * 2 + x:narrow(2, 2, 1):view(n):gt(0.5):int() + 1):int()
lm.manual_seed(2)
local net = nn.Sequential(nn.Linear(7, 32), nn.ELU(), nn.Dropout(0.3), nn.Linear(32, 33), nn.ELU(), nn.Dropout(0.2),
  nn.Linear(33, 4))
local opt = lm.optim.Adam(net:parameters(), {lr = 1e-2})
local history = lm.train{model = net, optimizer = opt, train = {x = x, y = y}, loss = "cross_entropy",
  batch_size = 30 // k, epochs = 2, seed = 3, noise = {sigma_max = 0.3}, clip = {0, 1}, distributed = dist,
  tty = false, quiet = true}
keep("net.", net)
state.net_loss = lm.tensor{history[1].train_loss, history[2].train_loss}

-- 2. InfoVAE on interleaved rows
lm.manual_seed(4)
local N, W = 300, 24
local H = lm.randn(N, W) * 0.5 + lm.randn(N, 1) * lm.randn(1, W) + 1
local T = lm.randn(N) - 2
local rows = dist and lm.arange(rank, N - 1, k):int() or nil
local H_here, T_here = H, T
if rows then H_here, T_here = H:index_select(rows + 1), T:index_select(rows + 1) end
lm.manual_seed(5)
local vae = I.InfoVAE{inputs = W, hidden = 32, depth = 2, mmd_weight = 50, bw = {0.1, 1, 10}}
-- ranks seeded apart: the fit takes rank 0's stream (the MMD's prior draws), as one process draws them
lm.manual_seed(50 + rank)
local vh = I.fit_autoencoder(vae, H_here, {epochs = 3, batch_size = 64, seed = 6, rows = rows, tty = false})
keep("vae.", vae)
state.vae_loss = lm.tensor{vh[1].loss, vh[2].loss, vh[3].loss}

-- 3. the estimator on this rank's latents
local est = I.Estimator{hidden = 16, depth = 2}
local eh = I.fit_estimator(est, vae:encode_all(H_here), T_here, {epochs = 2, batch_size = 50, seed = 7, rows = rows,
  tty = false})
keep("est.", est)
state.est_loss = lm.tensor{eh[1].loss, eh[2].loss}
lm.save(string.format("%s.%d.safetensors", out, rank), state)
print(string.format("introspect steps ok %d/%d", rank, k))
