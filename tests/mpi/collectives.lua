-- Run under `mpirun -n K` (tests/lua/dist_spec.lua, K = 2 and 3): every
-- collective, op and dtype against closed forms of what the ranks hold.
-- Rank r contributes values in r; a failure is an error, which ends the job
-- naming the rank. Prints "collectives ok <rank>/<size>".
local d = lm.dist
local r, k = d.rank(), d.size()

local function check(cond, what) if not cond then error("rank " .. r .. ": " .. what, 2) end end
local function same(got, want, what)
  check(#got == #want, what .. ": " .. #got .. " elements, expected " .. #want)
  for i = 1, #want do
    if type(want[i]) == "table" then same(got[i], want[i], what .. "[" .. i .. "]")
    else check(got[i] == want[i], string.format("%s[%d] = %s, expected %s", what, i, got[i], want[i])) end
  end
end
local function all_eq(t, v) return (t:float() - v):abs():max():item() == 0 end
local function sum_over(f) local s = 0 for q = 0, k - 1 do s = s + f(q) end return s end
local function max_over(f) local m = -math.huge for q = 0, k - 1 do m = math.max(m, f(q)) end return m end
local function min_over(f) local m = math.huge for q = 0, k - 1 do m = math.min(m, f(q)) end return m end

-- rank q holds {{q + 1, -2q}, {3 - q, 0.5 * q}}: every entry a closed form in q
local entries = {function(q) return q + 1 end, function(q) return -2 * q end,
  function(q) return 3 - q end, function(q) return 0.5 * q end}
local function mine(dtype)
  local v = {}
  for i, f in ipairs(entries) do v[i] = f(r) end
  if dtype == "int32" then v[4] = r end -- an integer in the last place
  return lm.tensor({{v[1], v[2]}, {v[3], v[4]}}, dtype)
end
local function expect(dtype, reduce)
  local fs = {entries[1], entries[2], entries[3], dtype == "int32" and function(q) return q end or entries[4]}
  local e = {}
  for i, f in ipairs(fs) do e[i] = reduce(f) end
  return {{e[1], e[2]}, {e[3], e[4]}}
end

for _, dtype in ipairs{"float32", "int32"} do
  -- a list, not pairs(): every rank must make the same calls in the same order
  local reductions = {{"sum", sum_over}, {"max", max_over}, {"min", min_over}}
  if dtype == "float32" then reductions[4] = {"mean", function(f) return sum_over(f) / k end} end
  for _, pair in ipairs(reductions) do
    local op, reduce = pair[1], pair[2]
    local t = mine(dtype)
    local back = d.allreduce_(t, op)
    check(back == t, "allreduce_ returns its tensor")
    local want = expect(dtype, reduce)
    if op == "mean" then -- the mean is computed in float32: compare within rounding
      local got = t:totable()
      for i = 1, 2 do for j = 1, 2 do
        check(math.abs(got[i][j] - want[i][j]) < 1e-6, "mean " .. dtype)
      end end
    else
      same(t:totable(), want, "allreduce_ " .. op .. " " .. dtype)
    end
    check(t:dtype() == dtype, "the dtype is kept")
  end
  -- a strided view: a column of a wider tensor; the other column is untouched
  local wide = lm.tensor({{r, 100}, {2 * r, 200}, {3 * r, 300}}, dtype)
  d.allreduce_(wide:narrow(2, 1, 1), "sum")
  local s = sum_over(function(q) return q end)
  same(wide:totable(), {{s, 100}, {2 * s, 200}, {3 * s, 300}}, "allreduce_ of a column " .. dtype)
  -- a transposed (non-contiguous) tensor
  local tr = mine(dtype):t()
  d.allreduce_(tr, "max")
  local m = expect(dtype, max_over)
  same(tr:totable(), {{m[1][1], m[2][1]}, {m[1][2], m[2][2]}}, "allreduce_ of a transpose " .. dtype)
  -- broadcast from the last rank, and from 0 by default
  local b = lm.tensor({r, 10 * r, -r}, dtype)
  d.broadcast_(b, k - 1)
  same(b:totable(), {k - 1, 10 * (k - 1), -(k - 1)}, "broadcast_ from " .. (k - 1) .. " " .. dtype)
  local b0 = lm.tensor({{r + 7}}, dtype):expand(1, 3):contiguous()
  d.broadcast_(b0)
  same(b0:totable(), {{7, 7, 7}}, "broadcast_ from 0 " .. dtype)
  -- all_gather: rank q contributes q + 1 rows {q, row}; rank order, dimension 1
  local rows = {}
  for i = 1, r + 1 do rows[i] = {r, i} end
  local g = d.all_gather(lm.tensor(rows, dtype))
  local want = {}
  for q = 0, k - 1 do for i = 1, q + 1 do want[#want + 1] = {q, i} end end
  same(g:totable(), want, "all_gather " .. dtype)
  check(g:dtype() == dtype, "all_gather keeps the dtype")
  -- equal shapes, 3-D, from a strided view
  local cube = lm.tensor({{{r, r + 0.5}}, {{-r, 1}}}, "float32"):transpose(1, 3)
  local gc = d.all_gather(cube)
  check(gc:size(1) == 2 * k and gc:size(2) == 1 and gc:size(3) == 2, "all_gather of a 3-D view: " .. gc:shape_string())
  for q = 0, k - 1 do
    same(gc:narrow(1, 2 * q + 1, 2):totable(), {{{q, -q}}, {{q + 0.5, 1}}}, "all_gather 3-D block " .. q)
  end
end

-- a scalar (0-D) tensor
local sc = lm.tensor(r + 1)
d.allreduce_(sc, "sum")
check(sc:item() == k * (k + 1) / 2, "allreduce_ of a 0-D tensor")

-- the errors: the same message on every rank, no hang
local ok, err = pcall(d.allreduce_, lm.tensor({1}, "int32"), "mean")
check(not ok and err:find("'mean' of an int32 tensor", 1, true), "int32 mean is refused: " .. tostring(err))
ok, err = pcall(d.allreduce_, lm.zeros(2), "median")
check(not ok and err:find("invalid option 'median'", 1, true), "unknown reduction: " .. tostring(err))
ok, err = pcall(d.broadcast_, lm.zeros(2), k)
check(not ok and err:find("root " .. k .. " is not a rank", 1, true), "bad root: " .. tostring(err))
if k > 1 then
  ok, err = pcall(d.allreduce_, lm.zeros(r + 1), "sum") -- shapes that differ between ranks
  check(not ok and err:find("different tensors", 1, true),
    "a shape mismatch is an error on every rank: " .. tostring(err))
end

-- lists through the flat buffer, with a bucket smaller than one tensor
local list = {lm.full({3, 700}, r + 1), lm.full({5}, 2 * r), lm.full({2, 2}, -r):t()}
lm._dist.allreduce_list_(list, "sum", 4096)
local s1, s2 = sum_over(function(q) return q + 1 end), sum_over(function(q) return 2 * q end)
check(all_eq(list[1], s1) and all_eq(list[2], s2) and all_eq(list[3], -sum_over(function(q) return q end)),
  "allreduce list in 4 KiB buckets")
local blist = {lm.full({1000}, r), lm.full({3}, r, "int32")}
lm._dist.broadcast_list_({blist[1]}, k - 1, 4096)
lm._dist.broadcast_list_({blist[2]}, k - 1)
check(all_eq(blist[1], k - 1) and all_eq(blist[2], k - 1), "broadcast list")

-- modules: broadcast_parameters and average_gradients
lm.manual_seed(10 + r) -- a different initialisation on every rank
local net = lm.nn.Sequential(lm.nn.Linear(4, 3), lm.nn.Tanh(), lm.nn.Linear(3, 2))
d.broadcast_parameters(net, 0)
local w = net[1].weight:clone()
local all_w = d.all_gather(w:view(1, 12))
for q = 1, k - 1 do
  check(all_eq(all_w[q + 1] - all_w[1], 0), "broadcast_parameters: rank " .. q .. " has rank 0's weights")
end
for _, p in ipairs(net:parameters()) do p.grad = lm.full(p:shape(), r + 1) end
net[3].bias.grad = r == 0 and lm.full({2}, 5) or nil -- only rank 0 has this gradient
d.average_gradients(net)
local mean = sum_over(function(q) return q + 1 end) / k
check((net[1].weight.grad - mean):abs():max():item() < 1e-6, "average_gradients: the mean")
check((net[3].bias.grad - 5 / k):abs():max():item() < 1e-6, "a gradient missing on some ranks counts as zeros")
-- arguments one rank refuses: an error on that rank naming them, on every
-- other rank one saying so, and then the ranks go on in step (none waits)
local function refused(what, call, own)
  local fine, err_text = pcall(call)
  check(not fine, what .. ": an error on every rank")
  local want = r == k - 1 and own or "another rank's arguments were refused (its error says why)"
  check(tostring(err_text):find(want, 1, true), what .. ": " .. tostring(err_text))
  d.barrier() -- in step again
end
local last = r == k - 1
refused("dtype", function() d.allreduce_(last and lm.zeros({4}, "uint8") or lm.zeros(4)) end,
  "allreduce_: float32 and int32 tensors only")
refused("root", function() d.broadcast_(lm.zeros(4), last and k or 0) end,
  string.format("broadcast_: root %d is not a rank (0..%d)", k, k - 1))
refused("op", function() d.allreduce_(lm.zeros({4}, "int32"), last and "mean" or "sum") end,
  "'mean' of an int32 tensor")
refused("op name", function() d.allreduce_(lm.zeros(4), last and "avg" or "sum") end, "invalid option 'avg'")
refused("not a tensor", function() d.all_gather(last and {} or lm.zeros(2, 1)) end, "expected a tensor")
-- refusals in the Lua functions and the gather's own root (each left the others waiting)
refused("gather root", function() d.gather(lm.ones(2, 2), last and -1 or 0) end,
  string.format("gather: root -1 is not a rank (0..%d)", k - 1))
refused("a fractional root", function() d.broadcast_(lm.zeros(2), last and 0.5 or 0) end,
  "broadcast_: root must be a rank number, got 0.5")
refused("a root past int", function() d.broadcast_(lm.zeros(2), last and (1 << 32) + 1 or 0) end,
  "root must be a rank number, got 4294967297")
refused("broadcast_parameters root", function() d.broadcast_parameters(lm.nn.Linear(2, 2), last and 7 or 0) end,
  string.format("lm.dist.broadcast_parameters: root must be a rank, an integer in [0, %d), got 7", k))
refused("bucket_bytes", function() d.average_gradients(net, {bucket_bytes = last and 0 or nil}) end,
  "lm.dist.average_gradients: bucket_bytes must be a positive integer, got 0")
refused("a list entry", function() d.broadcast_parameters(last and {lm.ones(1), 3} or {lm.ones(1), lm.ones(1)}) end,
  "entry 2 of the list is 3, expected a tensor")
-- buckets of different sizes would run collectives of different counts (a double free, then a hang)
local wide = lm.nn.Linear(100, 30) -- 3,030 gradients: more than a 4096-byte bucket holds
wide(lm.ones(2, 100)):sum():backward()
if k > 1 then -- (one process has nothing to differ from)
  local mismatch_ok, mismatch = pcall(d.average_gradients, wide, {bucket_bytes = r == 0 and 4096 or nil})
  check(not mismatch_ok and tostring(mismatch):find("reduction or bucket size", 1, true),
    "bucket sizes that differ: " .. tostring(mismatch))
end
d.barrier()
-- a root of 0.0 is rank 0 on every rank (one rank refused it, then broadcast alone)
check(d.broadcast_(lm.tensor{r + 1}, last and 0.0 or 0)[1] == 1, "root 0.0")
d.barrier()
print(string.format("collectives ok %d/%d", r, k))
