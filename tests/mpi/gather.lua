-- gather to one rank, all_gather_rows (with its backward), part and
-- global_batch_random (tests/lua/dist_spec.lua), under `mpirun -n K` or as a
-- world of one:
--   mpirun -n K lumen tests/mpi/gather.lua
local d = lm.dist
local r, k = d.rank(), d.size()
local function check(cond, what) if not cond then error("rank " .. r .. ": " .. what, 2) end end

-- part: contiguous, in rank order, every row once, sizes within one
local lo, hi = d.part(10)
check(lo == r * 10 // k and hi == (r + 1) * 10 // k, "part(10)")
local a0, b0 = d.part(7, 0, 3)
local a2, b2 = d.part(7, 2, 3)
check(a0 == 0 and b0 == 2 and a2 == 4 and b2 == 7, "part(7) of rank 0 and 2 of 3")

-- gather: rank r gives r + 1 rows holding r; root 0 (then root k - 1) gets them in rank order
local mine = lm.full({r + 1, 2}, r)
for _, root in ipairs{0, k - 1} do
  local g = d.gather(mine, root)
  if r == root then
    check(g:size(1) == k * (k + 1) // 2 and g:size(2) == 2, "gather's shape on root: " .. g:shape_string())
    local at = 0
    for q = 0, k - 1 do
      for _ = 1, q + 1 do
        at = at + 1
        check(g[at][1] == q and g[at][2] == q, string.format("row %d comes from rank %d", at, q))
      end
    end
  else
    check(g:size(1) == 0 and g:size(2) == 2, "0 rows off root: " .. g:shape_string())
  end
end
local ok, err = pcall(d.gather, mine, k)
check(not ok and tostring(err):find("gather: root " .. k .. " is not a rank", 1, true), "a bad root: " .. tostring(err))

-- all_gather_rows: rank r's rows go to positions r + 1, r + 1 + k, ... (interleaved);
-- every rank takes the same loss of the gathered rows, and its backward
-- gives each rank the gradient of its own rows only
local n = 2 * k
local x = lm.tensor{{r + 1, 10 * (r + 1)}, {-(r + 1), 0.5}}:requires_grad(true)
local positions = lm.tensor({r + 1, r + 1 + k}, "int32")
local all = d.all_gather_rows(x, {positions = positions})
check(all:size(1) == n, "gathered rows")
for p = 1, n do
  local q, second = (p - 1) % k, p > k
  check(all[p][1] == (second and -(q + 1) or q + 1), "row " .. p .. " in position order")
end
local w = lm.arange(1, n):view(n, 1)
;(all * all * w):sum():backward()                -- d/dx = 2 x w(position)
local expect = {{2 * (r + 1) * (r + 1), 20 * (r + 1) * (r + 1)}, {-2 * (r + 1) * (r + 1 + k), (r + 1 + k)}}
local grad = x.grad:totable()
for i = 1, 2 do
  for j = 1, 2 do check(math.abs(grad[i][j] - expect[i][j]) < 1e-4, string.format("gradient [%d][%d]", i, j)) end
end
-- without positions: rank order
local plain = d.all_gather_rows(lm.full({1, 1}, r):requires_grad(true))
check(plain:size(1) == k and plain[k][1] == k - 1, "rank order")
if k > 1 then
  ok, err = pcall(d.all_gather_rows, x, {positions = lm.tensor({1}, "int32")})
  check(not ok and tostring(err):find("1 positions for 2 rows", 1, true), "position count: " .. tostring(err))
end

-- row_owners: rank r holds rows r and r + k of 2k; a batch's part is its
-- rows of the batch in batch order, with their positions
local owners = d.row_owners(lm.tensor({r, r + k}, "int32"))
check(owners.n == 2 * k and owners.size == k, "a set of 2k rows on k ranks")
local batch = k > 1 and {2 * k - 1, 0, k} or {1, 0}
local expect_rows, expect_at = {}, {}
for p, g in ipairs(batch) do -- row g is on rank g % k, its local row g // k
  if g % k == r then expect_rows[#expect_rows + 1], expect_at[#expect_at + 1] = g // k, p end
end
local rows_here, where = owners:part(lm.tensor(batch, "int32"))
check(table.concat(rows_here:totable(), ",") == table.concat(expect_rows, ","), "local rows of the batch: "
  .. table.concat(rows_here:totable(), ","))
check(table.concat(where.positions:totable(), ",") == table.concat(expect_at, ","), "their positions")
-- the layout's order puts the gathered rows (rank order) back in batch order
local values = lm.zeros(#expect_rows, 1)
for i, v in ipairs(expect_rows) do values[i][1] = v + 100 * r end
local gathered = d.all_gather_rows(values, where)
for p, g in ipairs(batch) do
  check(gathered[p][1] == g // k + 100 * (g % k), "row " .. p .. " of the batch, gathered")
end
if k > 1 then
  ok, err = pcall(d.row_owners, lm.tensor({0}, "int32"))
  check(not ok and tostring(err):find("row 0 is on two ranks", 1, true), "a row on two ranks: " .. tostring(err))
end

-- global_batch_random: this rank's rows of a dropout over a global batch of
-- 3k rows equal those of one process's draw (width 8: each rank starts at a
-- multiple of 4 elements and draws its rows alone; widths 6 and 5: some do
-- not and take the whole batch's draw; dropout2d: one draw per channel)
local function same_rows(what, draw, shape)
  local rows = 3 * k
  shape[1] = rows
  lm.manual_seed(11)
  local whole = draw(lm.ones(shape))
  local after = lm.rand(3)
  shape[1] = 3
  lm.manual_seed(11)
  local part = d.global_batch_random(3 * r, rows, function() return draw(lm.ones(shape)) end)
  check((part - whole:narrow(1, 3 * r + 1, 3)):abs():max():item() == 0, "the rows of the whole batch's mask: " .. what)
  check((lm.rand(3) - after):abs():max():item() == 0, "the stream continues as after the whole draw: " .. what)
end
for _, width in ipairs{8, 6, 5} do
  same_rows("dropout, width " .. width, function(t) return lm.nn.functional.dropout(t, 0.4, true) end, {0, width})
end
same_rows("dropout2d", function(t) return lm.nn.functional.dropout2d(t, 0.5, true) end, {0, 3, 2, 2})
print(string.format("gather ok %d/%d", r, k))
