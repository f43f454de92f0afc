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
  it("stays under 200 MB over " .. n .. " 1 MB tensors", function()
    if not rss_mb() then return end
    local peak = 0
    for i = 1, n do
      local t = lm.zeros(262144) -- 1 MiB
      if i % 1000 == 0 then peak = math.max(peak, rss_mb()) end
    end
    truthy(peak < 200, string.format("peak resident memory %.0f MB", peak))
  end)
end)
