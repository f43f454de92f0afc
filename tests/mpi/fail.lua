-- A failing rank ends the whole job (tests/lua/dist_spec.lua):
--   mpirun -n 2 lumen tests/mpi/fail.lua error|exit|kill
-- Rank 1 fails while rank 0 waits in a collective that would never finish;
-- the host prints "rank 1: <error>" and calls MPI_Abort, os.exit with a
-- failure code does the same, and a killed process is noticed by mpirun.
local d = lm.dist
local how = arg[1] or "error"
if d.rank() == 1 then
  if how == "error" then error("rank one fails on purpose") end
  if how == "exit" then os.exit(3) end
  if how == "kill" then os.execute("kill -9 $PPID") end -- the shell's parent: this process
end
d.allreduce_(lm.ones(4)) -- rank 0 waits here for rank 1
d.barrier()
print("not reached on rank " .. d.rank())
