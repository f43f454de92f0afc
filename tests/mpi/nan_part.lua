-- A NaN in one rank's part of a sharded recording is refused on every rank
-- (tests/lua/dist_spec.lua): mpirun -n 2 lumen tests/mpi/nan_part.lua
-- Each rank prints what its fit raised; a rank that raised alone would leave
-- the other waiting in the fit's first collective.
local I = require 'lumen.introspect'
local d = lm.dist
local N, W = 8, 3
local rows = lm.arange(d.rank(), N - 1, d.size()):int()
local H = lm.randn(rows:numel(), W)
if d.rank() == 1 then H:narrow(1, 2, 1):fill_(0 / 0) end
local vae = I.InfoVAE{inputs = W, hidden = 4, depth = 1}
local ok, err = pcall(I.fit_autoencoder, vae, H, {rows = rows, epochs = 1, batch_size = 4, tty = false})
print(string.format("rank %d: %s", d.rank(), ok and "trained" or err))
d.barrier()
