-- Tensor memory is visible to Lua's collector: a loop that creates and drops
-- 1 MB tensors runs in flat memory without manual collectgarbage().
local lm = require 'lumen'

local function rss_mb()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) / 1024
end

-- Runs `script` with lumen -e in a fresh process: its output (stderr too)
-- and io.popen's close results (ok, "exit" or "signal", code).
local function run_fresh(script)
  local lumen = (os.getenv("LUMEN_BUILD_DIR") or "build") .. "/lumen"
  local p = io.popen(lumen .. " -e '" .. script:gsub("'", "'\\''") .. "' 2>&1")
  local out = p:read("a")
  return out, p:close()
end

describe("memory", function()
  -- under the sanitizers every block goes through ASan's allocator, which is
  -- about 100 times slower: fewer iterations still show a flat profile
  local n = os.getenv("LUMEN_SANITIZED") and 3000 or 100000
  it("stays under 200 MB over " .. n .. " 1 MB tensors (in a fresh process)", function()
    if not rss_mb() then skip("/proc/self/status is not readable here") end
    local script = string.format([[
      local function rss()
        local f = io.open("/proc/self/status"); local s = f:read("a"); f:close()
        return tonumber(s:match("VmRSS:%%s*(%%d+)")) / 1024
      end
      local start, peak = rss(), 0
      for i = 1, %d do
        local t = lm.zeros(262144) -- 1 MiB
        if i %% 1000 == 0 then peak = math.max(peak, rss()) end
      end
      print(string.format("%%.1f %%.1f", start, peak))
    ]], n)
    local out = run_fresh(script)
    local start, peak = out:match("([%d.]+) ([%d.]+)")
    start, peak = tonumber(start), tonumber(peak)
    truthy(peak, "the child printed its memory: " .. out)
    if os.getenv("LUMEN_SANITIZED") then
      -- ASan keeps its own quarantine and shadow memory: check the growth instead
      truthy(peak - start < 100, string.format("resident memory grew by %.0f MB", peak - start))
    else
      truthy(peak < 200, string.format("peak resident memory %.0f MB", peak))
    end
  end)
end)

describe("training-step memory", function()
  it("takes no new memory from the system after Net1's first training step", function()
    if os.getenv("LUMEN_SANITIZED") then
      skip("under ASan the caching allocator is off: every block is new by design")
    end
    local F = lm.nn.functional
    lm.manual_seed(1)
    local net = lm.models.net1()
    local opt = lm.optim.Adam(net:parameters(), {lr = 1e-4})
    local x, y = lm.rand(128, 784), lm.zeros(128, 10)
    local function step()
      opt:zero_grad()
      F.mse(net(x), y):backward()
      opt:step()
      collectgarbage() -- Lua frees a step's temporaries when it collects
    end
    step()
    local before = lm.memory_stats()
    for _ = 1, 3 do step() end
    local after = lm.memory_stats()
    local calls = after.allocations - before.allocations
    local misses = calls - (after.cache_hits - before.cache_hits)
    truthy(calls > 200, "the steps allocate tensors (" .. calls .. "), so the count means something")
    eq(misses, 0, "blocks taken from the system in steps 2-4")
  end)
end)

describe("graph memory", function()
  it("frees a recorded graph that never runs backward", function()
    collectgarbage()
    local before = lm.memory_stats().live_bytes
    do
      local x = lm.randn(500, 500):requires_grad(true)
      local y = ((x:exp() * 2):sigmoid() / (x + 3)) ^ 2 -- ops that save their output
      local z = y:sum() -- luacheck: ignore 211 (the graph is what is measured)
    end
    collectgarbage()
    collectgarbage()
    eq(lm.memory_stats().live_bytes, before, "live bytes after dropping the graph")
  end)

  it("frees the intermediate results no gradient reads before backward runs", function()
    collectgarbage()
    collectgarbage()
    local x = lm.randn(512, 512):requires_grad(true) -- 1 MiB
    local base = lm.memory_stats().live_bytes
    local y = x
    for _ = 1, 20 do y = y * 1.5 + 0.25 end -- neither op's gradient reads a tensor
    collectgarbage()
    collectgarbage()
    local held = lm.memory_stats().live_bytes - base
    -- y itself and the allocator's rounding; 40 intermediates held 40 MiB
    truthy(held <= 2 * (1 << 20), ("the graph holds %.1f MiB"):format(held / 2 ^ 20))
    y:sum():backward()
    local ratio = x.grad / 1.5 ^ 20
    near(ratio:min():item(), 1, 1e-5, "the gradient through the freed results (smallest)")
    near(ratio:max():item(), 1, 1e-5, "the gradient through the freed results (largest)")
  end)

  it("drops a chain of 200,000 recorded ops without backward (in a fresh process)", function()
    -- freeing it recursively overflowed the C stack
    local out, ok, how, code = run_fresh([[
      local x = lm.ones(1):requires_grad(true)
      local y = x
      for _ = 1, 200000 do y = y + 1 end
      y = nil
      collectgarbage()
      collectgarbage()
      local z = x
      for _ = 1, 200000 do z = z * 1 end
      z:sum():backward()
      print("gradient " .. x.grad:item())
    ]])
    truthy(ok, ("the child ended with %s %s: %s"):format(how, code, out))
    eq(out, "gradient 1.0\n")
  end)

  it("keeps what a gradient reads after the user drops it", function()
    local x = lm.tensor({0.5, -1, 2}):requires_grad(true)
    local h = x:exp() -- exp saves its output
    local z = (h * 3):sum()
    h = nil -- luacheck: ignore 311 (dropped on purpose)
    collectgarbage()
    collectgarbage()
    z:backward()
    same(x.grad:totable(), (x:detach():exp() * 3):totable(), 1e-5)
  end)
end)

describe("allocator statistics and garbage", function()
  it("starts a new peak with lm.reset_peak_memory()", function()
    collectgarbage()
    local t = lm.zeros(1 << 20) -- 4 MiB
    t:free()
    local s = lm.memory_stats()
    truthy(s.peak_bytes >= s.live_bytes + (4 << 20), "the freed block is in the peak")
    lm.reset_peak_memory()
    eq(lm.memory_stats().peak_bytes, lm.memory_stats().live_bytes)
    local u = lm.zeros(1 << 18) -- 1 MiB
    eq(lm.memory_stats().peak_bytes, lm.memory_stats().live_bytes, "peak follows live again")
    u:free()
  end)
  it("collects garbage within 64 MiB of what lives, after a script's own collection too", function()
    if os.getenv("LUMEN_SANITIZED") then skip("slow under ASan: 300 MB of tensors") end
    collectgarbage()
    local base = lm.memory_stats().live_bytes
    -- a forced collection while 256 MB live: before, garbage could then grow
    -- to that level again after the script freed them
    do
      local big = {} -- luacheck: ignore 241 (held, not read: it is what lives)
      for i = 1, 32 do big[i] = lm.zeros(2 << 20) end -- 32 x 8 MiB
    end
    collectgarbage()
    lm.reset_peak_memory()
    for _ = 1, 200 do
      local x = lm.ones(1 << 20) -- 4 MiB of garbage a step, two tensors
      x = x * 2 -- luacheck: ignore 311
    end
    local over = (lm.memory_stats().peak_bytes - base) / 2 ^ 20
    truthy(over < 64 + 16, string.format("garbage peaked at %.0f MiB over what lives", over))
  end)
  it("gives a large block's pages back to the system when the cache is emptied", function()
    if os.getenv("LUMEN_SANITIZED") then skip("ASan keeps freed memory in quarantine") end
    if not rss_mb() then skip("/proc/self/status is not readable here") end
    collectgarbage()
    -- a 30 MB block freed first: glibc would then serve blocks below 30 MB
    -- from its heap and keep their pages after free
    lm.ones(30 << 18):free()
    lm.empty_cache()
    local before = rss_mb()
    local blocks = {}
    for i = 1, 16 do blocks[i] = lm.ones(3 << 18) end -- 16 x 3 MiB, each written
    truthy(rss_mb() - before > 40, "the blocks are resident")
    for i = 1, 16 do blocks[i]:free() end
    lm.empty_cache()
    truthy(rss_mb() - before < 12, string.format("%.0f MB still resident after empty_cache", rss_mb() - before))
  end)
  it("gives freed small blocks' pages back too, between blocks that still live", function()
    if os.getenv("LUMEN_SANITIZED") then skip("ASan keeps freed memory in quarantine") end
    if not rss_mb() then skip("/proc/self/status is not readable here") end
    collectgarbage()
    lm.empty_cache()
    local before = rss_mb()
    -- 64 KiB blocks come from glibc's heap; every other one stays alive, so
    -- the freed half lies in holes that only malloc_trim gives back
    local blocks = {}
    for i = 1, 1600 do blocks[i] = lm.ones(1 << 14) end -- 100 MB, each written
    truthy(rss_mb() - before > 80, "the blocks are resident")
    for i = 1, 1600, 2 do blocks[i]:free() end
    lm.empty_cache()
    local left = rss_mb() - before
    truthy(left < 65, string.format("%.0f MB resident for the 50 MB of blocks still alive", left))
    for i = 2, 1600, 2 do blocks[i]:free() end
    lm.empty_cache()
  end)
end)
