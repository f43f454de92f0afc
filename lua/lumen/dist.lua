-- lm.dist: several processes training one model (data parallelism) over MPI.
-- docs/distributed.md.
--
-- Started by `mpirun -n K lumen script.lua` (or a cluster's srun), every
-- process is one rank of K and Lumen starts MPI itself on first use; started
-- without a launcher, a process is a world of one (rank 0 of 1), where every
-- collective is a no-op (all_gather a copy), so the same script runs either
-- way. The collectives run in core/lm_dist.c; this file adds what works on
-- modules.
local lm = require 'lumen'
local C = lm._dist

local dist = {}

--- This process's 0-based rank (0 in a world of one).
dist.rank = C.rank
--- The number of processes (1 in a world of one).
dist.size = C.size
--- Whether this Lumen was built with MPI (-DLUMEN_MPI).
dist.available = C.available
--- What carries the collectives: "mpi (Open MPI v4.1.4), 2 processes" or "world of one (...)".
dist.backend = C.backend
--- Waits until every rank has reached it.
dist.barrier = C.barrier
--- broadcast_(t, root): every rank's t becomes root's t (root 0 by default); returns t.
dist.broadcast_ = C.broadcast_
--- allreduce_(t, op): t becomes the elementwise 'sum' (default), 'mean',
--- 'max' or 'min' over ranks, on every rank; returns t. 'mean' is float32 only.
dist.allreduce_ = C.allreduce_
--- all_gather(t): every rank's t concatenated along dimension 1 in rank
--- order (a new tensor); the first dimension may differ between ranks.
dist.all_gather = C.all_gather

--- Whether this is rank 0, the process that prints and writes files.
function dist.is_main() return C.rank() == 0 end

--- Seconds spent in collectives and bytes this process sent into them so
--- far (for a step's communication share).
function dist.comm_stats()
  local seconds, bytes = C.comm_stats()
  return {seconds = seconds, bytes = bytes}
end

-- The tensors of a module (or a list of tensors) grouped by dtype, in a
-- fixed order (named_parameters and named_buffers are ordered lists).
local function by_dtype(tensors)
  local groups, order = {}, {}
  for _, t in ipairs(tensors) do
    local d = t:dtype()
    if not groups[d] then groups[d] = {} order[#order + 1] = d end
    groups[d][#groups[d] + 1] = t
  end
  return groups, order
end

local function module_tensors(net, what)
  if not (type(net) == "table" and net.named_parameters) then
    if type(net) == "table" then return net end
    error("lm.dist." .. what .. ": expected a module or a list of tensors, got " .. type(net), 3)
  end
  return nil
end

--- Copies root's parameters and buffers (running statistics) into every
--- rank's net (root 0 by default): one flat, bucketed exchange per dtype.
--- Call it once after building the model, before training.
function dist.broadcast_parameters(net, root, opts)
  local list = module_tensors(net, "broadcast_parameters")
  if not list then
    list = {}
    for _, pair in ipairs(net:named_parameters()) do list[#list + 1] = pair[2]:detach() end
    for _, pair in ipairs(net:named_buffers()) do list[#list + 1] = pair[2] end
  end
  local groups, order = by_dtype(list)
  for _, d in ipairs(order) do C.broadcast_list_(groups[d], root or 0, opts and opts.bucket_bytes) end
  return net
end

--- Replaces every parameter's gradient by its mean over the ranks, through
--- one flat buffer exchanged in buckets (opts.bucket_bytes, 16 MiB by
--- default), not one call per parameter. A parameter without a gradient on
--- this rank counts as zeros; one without a gradient on every rank keeps none.
--- Call it between backward() and the optimiser's step().
function dist.average_gradients(net, opts)
  local params = module_tensors(net, "average_gradients") or net:parameters()
  if C.size() == 1 then return net end
  local grads, missing = {}, {}
  local present = lm.zeros(#params)
  for i, p in ipairs(params) do
    local g = p.grad
    if g then
      present[i] = 1
    else
      g = lm.zeros(p:shape(), p:dtype(), p:device())
      missing[#missing + 1] = {i, g}
    end
    grads[i] = g
  end
  grads[#grads + 1] = present -- which ranks have each gradient, in the same exchange
  local groups, order = by_dtype(grads)
  for _, d in ipairs(order) do
    C.allreduce_list_(groups[d], d == "float32" and "mean" or "sum", opts and opts.bucket_bytes)
  end
  local has = present:totable()
  for _, m in ipairs(missing) do
    if has[m[1]] > 0 then params[m[1]].grad = m[2] end
  end
  return net
end

--- The shard option of lm.data.loader for this process:
--- {index = rank, count = size}.
function dist.shard()
  return {index = C.rank(), count = C.size()}
end

return dist
