-- The sharded loader under `mpirun -n K` (tests/lua/dist_spec.lua): across
-- the ranks every sample comes exactly once per epoch, and rank r's batch i
-- is rows [r b, (r + 1) b) of batch i of one loader with batch K b.
local d = lm.dist
local r, k = d.rank(), d.size()
local function check(cond, what) if not cond then error("rank " .. r .. ": " .. what, 2) end end

local n, b = 103, 8
local set = {x = lm.arange(1, n):view(n, 1), y = lm.arange(1, n, "int32")} -- sample i holds i

-- drop_last = false: every sample exactly once per epoch, the last global batch split
local loader = lm.data.loader(set, {batch_size = b, seed = 3, drop_last = false, shard = d.shard()})
for epoch = 1, 3 do
  local seen = {}
  for xb, yb in loader:epoch_iter() do
    check(xb:size(1) == yb:size(1), "x and y rows")
    for _, v in ipairs(yb:totable()) do seen[#seen + 1] = v end
  end
  local all = d.all_gather(lm.tensor(#seen > 0 and seen or {0}, "int32"):narrow(1, 1, #seen)):totable()
  table.sort(all)
  check(#all == n, string.format("epoch %d: %d samples in all, expected %d", epoch, #all, n))
  for i = 1, n do check(all[i] == i, string.format("epoch %d: sample %d seen %s", epoch, i, tostring(all[i]))) end
end
check(#loader == math.ceil(n / (b * k)), "batches per epoch: " .. #loader)

-- drop_last (the default when shuffling): the batches of one loader with batch K b, cut in K
local sharded = lm.data.loader(set, {batch_size = b, seed = 5, shard = {index = r, count = k}})
local whole = lm.data.loader(set, {batch_size = b * k, seed = 5})
check(#sharded == #whole and #whole == n // (b * k), "the same number of steps")
for _ = 1, 2 do
  local it = whole:epoch_iter()
  for xs, _, i in sharded:epoch_iter() do
    local xw = it()
    check((xs - xw:narrow(1, r * b + 1, b)):abs():max():item() == 0,
      string.format("batch %d is rows %d..%d of the global batch", i, r * b + 1, (r + 1) * b))
  end
end
local ok, err = pcall(lm.data.loader, set, {shard = {index = k, count = k}})
check(not ok and err:find("shard must be", 1, true), "a bad shard is refused")
print(string.format("shard ok %d/%d", r, k))
