-- lm.save / lm.load: safetensors round trips and errors.
local lm = require 'lumen'

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

describe("safetensors", function()
  it("round-trips named tensors and metadata", function()
    local w = lm.randn(3, 4)
    local path = dir .. "/m.safetensors"
    lm.save(path, {w = w, labels = lm.tensor({1, 2, 3}, 'int32'), wt = w:t()}, {note = "hi"})
    local t, meta = lm.load(path)
    same(t.w:totable(), w:totable())
    same(t.wt:totable(), w:t():totable())
    eq(t.labels:dtype(), "int32")
    same(t.labels:totable(), {1, 2, 3})
    eq(meta.note, "hi")
  end)

  it("is readable by Python's safetensors layout (8-byte header length, JSON)", function()
    local path = dir .. "/h.safetensors"
    lm.save(path, {a = lm.ones(2)})
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("a")
    f:close()
    local n = string.unpack("<I8", bytes)
    local header = bytes:sub(9, 8 + n)
    truthy(header:find('"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', 1, true), header)
    eq(#bytes, 8 + n + 8)
    eq(n % 8, 0)
  end)

  it("refuses bad input with clear errors", function()
    raises(function() lm.load(dir .. "/nope.safetensors") end, "cannot open")
    raises(function() lm.save(dir .. "/x.safetensors", {w = 3}) end, "expected a tensor")
    raises(function() lm.save(dir .. "/x.safetensors", {lm.ones(1)}) end, "names must be strings")
    local f = assert(io.open(dir .. "/bad.safetensors", "wb"))
    f:write(string.pack("<I8", 1 << 40), "{}")
    f:close()
    raises(function() lm.load(dir .. "/bad.safetensors") end, "header length")
  end)

  it("writes no header readers would refuse, and says when a header is over the limit", function()
    -- a header over 100,000,000 bytes (the reference reader's limit) used to
    -- save, then fail to load as 'impossible ... or truncated'
    local path = dir .. "/long.safetensors"
    lm.save(path, {a = lm.ones(2)})
    local long = string.rep("v", 100000000)
    raises(function() lm.save(path, {a = lm.ones(3)}, {metadata = {m = long}}) end,
      "save: the header (names, shapes and metadata) would take 100000080 bytes, over the format's limit of "
      .. "100000000; nothing was written")
    raises(function() lm.safetensors_writer(path, {{name = long, shape = {1}}}) end,
      "safetensors writer: the header (names, shapes and metadata) would take 100000056 bytes")
    eq(lm.load(path).a:numel(), 2, "the old file is kept")
    for _, e in ipairs(lm.list_dir(dir)) do truthy(not e.name:find("%.tmp%."), "no temporary file: " .. e.name) end
    long = nil -- luacheck: ignore 311
    collectgarbage()
    -- a complete file with such a header (sparse: nothing is read past the length)
    local f = assert(io.open(path, "wb"))
    f:write(string.pack("<I8", 100000008))
    f:seek("set", 8 + 100000008 - 1)
    f:write("}")
    f:close()
    raises(function() lm.load(path) end, "'" .. path .. "': the header takes 100000008 bytes, over the format's "
      .. "limit of 100000000 (safetensors readers refuse it)")
    os.remove(path)
  end)

  it("reads a header of 80,000 tensors and still finds a name given twice", function()
    -- (comparing every pair of names took 55 s on this file; sorting them, under a second)
    local entry = '"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'
    local function write(path, names)
      local parts = {}
      for i, name in ipairs(names) do parts[i] = entry:format(name) end
      local header = "{" .. table.concat(parts, ",") .. "}"
      local f = assert(io.open(path, "wb"))
      f:write(string.pack("<I8", #header), header)
      f:close()
    end
    local names = {}
    for i = 1, 80000 do names[i] = i end
    local path = dir .. "/many.safetensors"
    write(path, names)
    local t = lm.load(path)
    eq(#t.t80000:shape(), 1)
    names[#names + 1] = 40000
    write(path, names)
    raises(function() lm.load(path) end, "header of '" .. path .. "': invalid JSON: the key 't40000' appears twice "
      .. "in the object at byte 0")
  end)
end)

os.execute("rm -rf " .. dir)
