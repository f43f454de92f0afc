-- Safe files: a process killed with SIGKILL in the middle of writing a
-- checkpoint leaves the previous checkpoint intact and loadable (every write
-- goes to a temporary file that is renamed into place).
local lm = require 'lumen'

describe("safe files", function()
  it("kill -9 during saves leaves a complete checkpoint", function()
    local lumen = (os.getenv("LUMEN_BUILD_DIR") or "build") .. "/lumen"
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local path = dir .. "/ckpt.safetensors"
    lm.save(path, {w = lm.full({1024, 1024}, 0)}) -- the checkpoint before the child starts
    -- the child rewrites the checkpoint (4 MB each time) as fast as it can,
    -- each version filled with its own number
    local child = string.format([[for i = 1, 100000 do lm.save(%q, {w = lm.full({1024, 1024}, i)}) end]], path)
    local pidfile = dir .. "/pid"
    os.execute(string.format("%s -e '%s' >/dev/null 2>&1 & echo $! > %s", lumen, child, pidfile))
    local f = assert(io.open(pidfile))
    local pid = f:read("l")
    f:close()
    -- read while it writes (every read must see a whole version) until it has
    -- written a few, then kill it mid-stream
    local seen = 0
    for _ = 1, 100 do
      local w = lm.load(path).w
      eq(w:min():item(), w:max():item(), "a whole version while writing")
      seen = w:max():item()
      if seen >= 3 then break end
      os.execute("sleep 0.1")
    end
    truthy(seen >= 3, "the child wrote versions: " .. seen)
    local kill = os.execute("kill -9 " .. pid)
    truthy(kill, "the child was still running and got SIGKILL")
    os.execute("sleep 0.2")
    local t = lm.load(path).w
    eq(table.concat(t:shape(), "x"), "1024x1024")
    local lo, hi = t:min():item(), t:max():item()
    eq(lo, hi, "one whole version, never a mix")
    truthy(lo >= seen, "the newest complete version survives: " .. lo)
    os.execute("rm -rf " .. dir)
  end)
end)

describe("lm.write_file", function()
  it("writes atomically and names the path when it cannot", function()
    local path = os.tmpname()
    lm.write_file(path, "one")
    lm.write_file(path, "two")
    local f = assert(io.open(path))
    eq(f:read("a"), "two")
    f:close()
    eq(io.open(path .. ".tmp"), nil, "no temporary file left behind")
    os.remove(path)
    raises(function() lm.write_file("/nonexistent/dir/report.html", "x") end,
      "write_file: cannot write '/nonexistent/dir/report.html'")
  end)
end)
