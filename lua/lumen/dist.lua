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
local checks = require 'lumen.nn.checks'

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

--- gather(t, root): every rank's t concatenated along dimension 1 in rank
--- order on root (0 by default), a tensor of 0 rows on the other ranks: for
--- results only root writes, without a copy on every rank.
dist.gather = C.gather

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

-- A wrong argument of a collective, refused on this rank: the other ranks
-- are told first (in their own call they fail too), so that none waits
-- for this one and the ranks stay in step for a pcall around the call.
-- level: as error's, from the function that checks.
local function refused(fname, message, level)
  if C.size() > 1 then C.refuse(fname) end
  error(message, level + 1)
end

local function module_tensors(net, what)
  if not (type(net) == "table" and net.named_parameters) then
    if type(net) == "table" then
      for i, t in ipairs(net) do
        if not lm.is_tensor(t) then
          refused(what, string.format("lm.dist.%s: entry %d of the list is %s, expected a tensor", what, i,
            checks.shown(t)), 3)
        end
      end
      return net
    end
    refused(what, "lm.dist." .. what .. ": expected a module or a list of tensors, got " .. type(net), 3)
  end
  return nil
end

-- a root rank (nil: 0) and the options {bucket_bytes = n} of a collective
local function check_root(root, fname)
  if root ~= nil and (type(root) ~= "number" or not math.tointeger(root) or root < 0 or root >= C.size()) then
    refused(fname, string.format("%s: root must be a rank, an integer in [0, %d), got %s", fname, C.size(),
      checks.shown(root)), 3)
  end
end
local function bucket_bytes(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    refused(fname, string.format("%s: options must be a table, got %s", fname, checks.shown(opts)), 3)
  end
  local b = opts and opts.bucket_bytes
  if b ~= nil and (type(b) ~= "number" or not math.tointeger(b) or b < 1) then
    refused(fname, string.format("%s: bucket_bytes must be a positive integer, got %s", fname, checks.shown(b)), 3)
  end
  return b
end

--- Copies root's parameters and buffers (running statistics) into every
--- rank's net (root 0 by default): one flat, bucketed exchange per dtype.
--- Call it once after building the model, before training.
function dist.broadcast_parameters(net, root, opts)
  local list = module_tensors(net, "broadcast_parameters")
  check_root(root, "lm.dist.broadcast_parameters")
  local bucket = bucket_bytes(opts, "lm.dist.broadcast_parameters")
  if not list then
    list = {}
    for _, pair in ipairs(net:named_parameters()) do list[#list + 1] = pair[2]:detach() end
    for _, pair in ipairs(net:named_buffers()) do list[#list + 1] = pair[2] end
  end
  local groups, order = by_dtype(list)
  for _, d in ipairs(order) do C.broadcast_list_(groups[d], root or 0, bucket) end
  return net
end

--- Copies root's buffers (BatchNorm's running statistics) into every
--- rank's net (root 0 by default): each rank's moved with its own shard of
--- the data; lm.train calls it before each validation and checkpoint, as
--- torch's DDP broadcasts buffers, so that every rank evaluates one model.
function dist.broadcast_buffers(net, root, opts)
  if type(net) ~= "table" or type(net.named_buffers) ~= "function" then
    refused("broadcast_buffers",
      "lm.dist.broadcast_buffers: net must be a module (an lm.nn layer or model), got " .. checks.shown(net), 2)
  end
  check_root(root, "lm.dist.broadcast_buffers")
  local bucket = bucket_bytes(opts, "lm.dist.broadcast_buffers")
  local list = {}
  for _, pair in ipairs(net:named_buffers()) do list[#list + 1] = pair[2] end
  local groups, order = by_dtype(list)
  for _, d in ipairs(order) do C.broadcast_list_(groups[d], root or 0, bucket) end
  return net
end

--- Sets every rank's random stream (lm.rng_state) to root's (0 by default),
--- sent as 16-bit pieces of the seed and offset in one int32 exchange.
function dist.broadcast_rng_state(root)
  check_root(root, "lm.dist.broadcast_rng_state")
  local pieces = {}
  local seed, offset = lm.rng_state()
  for _, v in ipairs{seed, offset} do
    for k = 0, 3 do pieces[#pieces + 1] = (v >> (16 * k)) & 0xFFFF end
  end
  local t = lm.tensor(pieces, 'int32')
  C.broadcast_list_({t}, root or 0)
  local got = t:totable()
  local function whole(first)
    local v = 0
    for k = 0, 3 do v = v | (math.tointeger(got[first + k]) << (16 * k)) end
    return v
  end
  lm.set_rng_state(whole(1), whole(5))
end

--- Replaces every parameter's gradient by its mean over the ranks, through
--- one flat buffer exchanged in buckets (opts.bucket_bytes, 16 MiB by
--- default), not one call per parameter. A parameter without a gradient on
--- this rank counts as zeros; one without a gradient on every rank keeps none.
--- Call it between backward() and the optimiser's step().
function dist.average_gradients(net, opts)
  local params = module_tensors(net, "average_gradients") or net:parameters()
  local bucket = bucket_bytes(opts, "lm.dist.average_gradients")
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
    C.allreduce_list_(groups[d], d == "float32" and "mean" or "sum", bucket)
  end
  local has = present:totable()
  for _, m in ipairs(missing) do
    if has[m[1]] > 0 then params[m[1]].grad = m[2] end
  end
  return net
end

--- This rank's part of n rows cut into size() contiguous parts as evenly as
--- possible: its 0-based rows [lo, hi) (all of them in a world of one).
function dist.part(n, rank, size)
  rank, size = rank or C.rank(), size or C.size()
  for _, a in ipairs{{n, "n", 0}, {size, "size", 1}, {rank, "rank", 0}} do
    local v = a[1]
    if type(v) ~= "number" or not math.tointeger(v) or v < a[3] then
      error(string.format("lm.dist.part: %s must be an integer >= %d, got %s", a[2], a[3], checks.shown(v)), 2)
    end
  end
  if rank >= size then error(string.format("lm.dist.part: rank %d of %d ranks (ranks are 0-based)", rank, size), 2) end
  return rank * n // size, (rank + 1) * n // size
end

local RowOwners = {}
RowOwners.__index = RowOwners

--- Where the rows of a set spread over the ranks are: `rows` (int32) lists
--- the set's rows (0-based) that this rank holds, one per local row, every
--- row of the set on exactly one rank (one all_gather). Returns a table with
--- n (the set's rows), size, and part(idx): for a batch of the set's rows
--- (0-based, int32) the local rows (0-based) of those this rank holds and
--- their 1-based positions in the batch, so that every rank takes its part
--- of the batch one process takes from the whole set.
function dist.row_owners(rows)
  checks.tensor(rows, "rows", "lm.dist.row_owners")
  if rows:dim() ~= 1 then
    error("lm.dist.row_owners: rows must be a list of row numbers [n], got a tensor [" .. rows:shape_string() .. "]", 2)
  end
  local counts = C.all_gather(lm.tensor({rows:size(1)}, "int32")):totable()
  local all = C.all_gather(rows:int()):totable()
  local owner, local_of, me, k = {}, {}, C.rank(), 0
  for r = 1, #counts do
    for i = 1, counts[r] do
      k = k + 1
      local g = all[k] + 1
      if g < 1 or g > #all then error(string.format("lm.dist.row_owners: row %d of a set of %d", all[k], #all), 2) end
      if owner[g] then error("lm.dist.row_owners: row " .. all[k] .. " is on two ranks", 2) end
      owner[g] = r - 1
      if r - 1 == me then local_of[g] = i - 1 end
    end
  end
  return setmetatable({n = k, size = #counts, owner = owner, local_of = local_of, me = me}, RowOwners)
end

function RowOwners:part(idx)
  checks.tensor(idx, "idx", "owners:part")
  local rows, positions, by_rank = {}, {}, {}
  for r = 1, self.size do by_rank[r] = {} end
  for p, g in ipairs(idx:totable()) do
    local o = self.owner[g + 1]
    local list = by_rank[o + 1]
    list[#list + 1] = p
    if o == self.me then rows[#rows + 1], positions[#positions + 1] = self.local_of[g + 1], p end
  end
  -- all_gather_rows's layout, known here without an exchange: the gathered
  -- rows come in rank order, each rank's in batch order
  local order, at = {}, 0
  for r = 1, self.size do
    for _, p in ipairs(by_rank[r]) do at = at + 1; order[p] = at end
  end
  return lm.tensor(rows, "int32"), {positions = lm.tensor(positions, "int32"), order = lm.tensor(order, "int32")}
end

-- all_gather with a backward: every rank computes the same function of the
-- gathered rows, so the gradient of a rank's own rows is its slice of the
-- gradient, taken without any exchange; o.order (optional, 1-based) reorders
-- the gathered rows (gathered:index_select(o.order)), o.first and o.rows
-- locate this rank's rows among them.
local GatherRows = lm.autograd.Function{
  name = "dist.all_gather_rows",
  forward = function(ctx, t, o)
    ctx.o = o
    local all = C.all_gather(t)
    if o.order then all = all:index_select(o.order:to(all:device())) end
    return all
  end,
  backward = function(ctx, g)
    local o = ctx.o
    if o.positions then return g:index_select(o.positions:to(g:device())) end
    return g:narrow(1, o.first + 1, o.rows)
  end,
}

--- all_gather(t) that autograd follows: every rank's rows in rank order,
--- or with `layout` (RowOwners:part gives it) in the order of a batch:
--- layout.positions (int32, 1-based) says where each of this rank's rows
--- goes, layout.order (optional: otherwise gathered too) which gathered row
--- each position takes. Its backward hands this rank the gradient of its
--- own rows only, not summed over ranks: right when every rank computes the
--- same loss from the gathered rows (the MMD of a global batch), each rank's
--- backward then gives its rows' part of that loss's gradient, and the parts
--- add up over ranks; after average_gradients (a mean) that loss's gradient
--- is 1/size of the whole, so scale it by size() first. In a world of one:
--- t itself.
function dist.all_gather_rows(t, layout)
  checks.tensor(t, "t", "lm.dist.all_gather_rows")
  if layout ~= nil and (type(layout) ~= "table" or not lm.is_tensor(layout.positions)) then
    error("lm.dist.all_gather_rows: layout must be {positions = tensor, order = tensor} (RowOwners:part gives it), got "
      .. checks.shown(layout), 2)
  end
  if C.size() == 1 then return t end
  local o = {rows = t:size(1)}
  if layout then
    local positions = layout.positions
    if positions:size(1) ~= t:size(1) then
      error(string.format("lm.dist.all_gather_rows: %d positions for %d rows", positions:size(1), t:size(1)), 2)
    end
    o.positions, o.order = positions:int(), layout.order
    if not o.order then
      local all = C.all_gather(o.positions):totable()
      local order = {}
      for i, p in ipairs(all) do order[p] = i end
      for p = 1, #all do
        if not order[p] then error("lm.dist.all_gather_rows: the positions are not 1.." .. #all .. " once each", 2) end
      end
      o.order = lm.tensor(order, "int32")
    end
  else
    local counts = C.all_gather(lm.tensor({t:size(1)}, "int32")):totable()
    o.first = 0
    for r = 1, C.rank() do o.first = o.first + counts[r] end
  end
  return GatherRows(t, o)
end

-- ---- random draws of a global batch ------------------------------------------------------------

-- Dropout of this rank's rows of a global batch as one process draws it for
-- the whole batch. F.dropout's element e of a draw uses word e % 4 of Philox
-- block offset + e // 4 (core/cpu_random.c), so when this rank's first
-- element is a multiple of 4 it draws its rows alone from the right block;
-- otherwise (and for dropout2d, one draw per channel) it draws the whole
-- batch's mask (dropout of ones) and takes its rows.
-- Either way the stream then stands where the whole batch's draw leaves it.
local function row_dropout(orig, first, total, per_element, my_rows)
  return function(x, p, training, ...)
    if not training or p == 0 or x:dim() == 0 then return orig(x, p, training, ...) end
    local rows = x:size(1)
    if my_rows and rows ~= my_rows then
      error(string.format("lm.dist.global_batch_random: dropout of a tensor with %d rows in dimension 1 where "
        .. "this rank has %d rows of the batch: the batch must be dimension 1 (batch_first)", rows, my_rows), 3)
    end
    local inner = 1 -- the size of a row, from the shape (a rank may have no rows)
    for d = 2, x:dim() do inner = inner * x:size(d) end
    local seed, offset = lm.rng_state()
    local whole = (total * inner + 3) // 4
    if per_element and (first * inner) % 4 == 0 then
      lm.set_rng_state(seed, offset + first * inner // 4)
      local y = orig(x, p, training, ...)
      lm.set_rng_state(seed, offset + whole)
      return y
    end
    local shape = x:shape()
    shape[1] = total
    local mask = lm.no_grad(function()
      return orig(lm.ones(shape, x:dtype(), x:device()), p, true):narrow(1, first + 1, rows)
    end)
    return x * mask
  end
end

--- Runs fn() (a forward pass on this rank's rows [first, first + rows) of a
--- global batch of `total` rows) with F.dropout and F.dropout2d drawing the
--- masks one process would draw for those rows of the whole batch, and the
--- random stream advancing as that process's does: data-parallel training
--- with dropout then takes the steps of one process with the global batch.
--- Other random draws inside fn are not arranged so. With `rows` (this
--- rank's rows of the batch), a dropout whose input does not have them in
--- dimension 1 (a sequence-first layout, flattened tokens) is an error
--- rather than masks one process would not draw. Returns fn's results.
function dist.global_batch_random(first, total, fn, rows)
  for _, a in ipairs{{first, "first", 0}, {total, "total", 1}} do
    if type(a[1]) ~= "number" or not math.tointeger(a[1]) or a[1] < a[3] then
      error(string.format("lm.dist.global_batch_random: %s must be an integer >= %d, got %s", a[2], a[3],
        checks.shown(a[1])), 2)
    end
  end
  checks.callable(fn, "fn", "lm.dist.global_batch_random")
  if rows ~= nil and (type(rows) ~= "number" or not math.tointeger(rows) or rows < 0) then
    error("lm.dist.global_batch_random: rows must be an integer >= 0, got " .. checks.shown(rows), 2)
  end
  if C.size() == 1 then return fn() end
  local F = lm.nn.functional
  local dropout, dropout2d = F.dropout, F.dropout2d
  F.dropout, F.dropout2d = row_dropout(dropout, first, total, true, rows),
    row_dropout(dropout2d, first, total, false, rows) -- one draw per channel: the whole batch's
  local results = table.pack(pcall(fn))
  F.dropout, F.dropout2d = dropout, dropout2d
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

--- The shard option of lm.data.loader for this process:
--- {index = rank, count = size}.
function dist.shard()
  return {index = C.rank(), count = C.size()}
end

return dist
