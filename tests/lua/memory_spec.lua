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

describe("memory", function()
  -- under the sanitizers every block goes through ASan's allocator, which is
  -- about 100 times slower: fewer iterations still show a flat profile
  local n = os.getenv("LUMEN_SANITIZED") and 3000 or 100000
  it("stays under 200 MB over " .. n .. " 1 MB tensors (in a fresh process)", function()
    if not rss_mb() then skip("/proc/self/status is not readable here") end
    local lumen = (os.getenv("LUMEN_BUILD_DIR") or "build") .. "/lumen"
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
    local p = io.popen(lumen .. " -e '" .. script:gsub("'", "'\\''") .. "' 2>&1")
    local out = p:read("a")
    p:close()
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
    truthy(calls > 300, "the steps allocate tensors (" .. calls .. "), so the count means something")
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
end)
