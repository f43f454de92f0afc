-- lumen.json: the text encode writes (exactly), encode_parts' pieces, and
-- the round trip through decode.
local lm = require 'lumen'
local json = lm.json

local doc = {b = {1, 2.5, "x\n\"y\""}, a = {}, c = {d = true, e = {}}, n = -3}

describe("json", function()
  it("writes compact and indented text with sorted keys", function()
    eq(json.encode(doc), '{"a":[],"b":[1,2.5,"x\\n\\"y\\""],"c":{"d":true,"e":[]},"n":-3}')
    eq(json.encode({b = {1, 2}, a = "s"}, {indent = "  "}), '{\n  "a": "s",\n  "b": [\n    1,\n    2\n  ]\n}')
    eq(json.encode({0 / 0, 1 / 0, 0.1}), "[null,null,0.10000000000000001]")
  end)
  it("gives the same text in pieces, each a whole token", function()
    for _, opts in ipairs{{}, {indent = "  "}} do
      local parts = json.encode_parts(doc, opts)
      eq(table.concat(parts), json.encode(doc, opts))
      truthy(#parts > 10, "a piece per token, not one string (" .. #parts .. " pieces)")
      for _, piece in ipairs(parts) do
        local quotes = select(2, piece:gsub('\\"', ""):gsub('"', ""))
        eq(quotes % 2, 0, "a piece holds whole strings: " .. piece)
      end
    end
  end)
  it("decodes what it encodes", function()
    same(json.decode(json.encode(doc)), {b = {1, 2.5, "x\n\"y\""}, a = {}, c = {d = true, e = {}}, n = -3})
  end)
end)

describe("json edge cases", function()
  it("keeps an array's positions past a null (a NaN written), and a float a float", function()
    local a = json.decode(json.encode({1, 0 / 0, 3}))
    eq(a[1], 1); eq(a[2], nil); eq(a[3], 3)
    eq(json.encode({1.0, -0.0, 3, 0.5}), "[1.0,-0.0,3,0.5]")
    eq(1 / json.decode(json.encode(-0.0)), -math.huge, "-0.0 keeps its sign")
    eq(math.type(json.decode("1.0")), "float")
    eq(math.type(json.decode("1")), "integer")
    eq(json.decode("[1.5e3]")[1], 1500)
  end)

  it("refuses malformed numbers and lone surrogates, and reads a UTF-16 pair as one character", function()
    raises(function() json.decode("[1,2,1-2,3]") end, "json: expected ',' or ']' at byte 7")
    raises(function() json.decode("[1e]") end, "json: malformed number at byte 2")
    raises(function() json.decode("[1.]") end, "json: malformed number at byte 2")
    raises(function() json.decode("01") end, "json: malformed number (a leading zero) at byte 1")
    raises(function() json.decode("[01]") end, "json: malformed number (a leading zero) at byte 2")
    raises(function() json.decode("-01") end, "json: malformed number (a leading zero) at byte 1")
    eq(json.decode("[0, -0, 0.5, 10]")[4], 10)
    raises(function() json.decode('"a\nb"') end, "json: an unescaped control character (byte 10) in a string at byte 3")
    raises(function() json.decode('{"k":"a\tb"}') end,
      "json: an unescaped control character (byte 9) in a string at byte 8")
    eq(json.decode('"a\\nb\\t"'), "a\nb\t", "escaped, they are fine")
    eq(json.decode('"\\ud83d\\ude00"'), "\u{1F600}")
    raises(function() json.decode('"\\ud83d"') end, "a lone UTF-16 surrogate")
    raises(function() json.decode('"\\ude00x"') end, "a lone UTF-16 surrogate")
  end)

  it("writes and reads UTF-8 text only", function()
    eq(json.decode(json.encode({"h\u{e9}\u{20AC}\u{1F600}"}))[1], "h\u{e9}\u{20AC}\u{1F600}")
    raises(function() json.encode({name = "a\xFFb"}) end, 'json: a string is not UTF-8 text (byte 2 of "a\\xFFb")')
    raises(function() json.encode({["\xC0\xAF"] = 1}) end, "json: a string is not UTF-8 text (byte 1")
    raises(function() json.decode('["ok", "\xED\xA0\x80"]') end, "json: a byte that is not UTF-8 text at byte 9")
    raises(function() json.decode('"\xF4\x90\x80\x80"') end, "json: a byte that is not UTF-8 text at byte 2")
  end)

  it("refuses keys that would be one in the text", function()
    raises(function() json.encode({[1] = "a", ["1"] = "b"}) end, 'json: the keys 1 and "1" would be one')
  end)

  it("refuses keys that are neither strings nor integers (they were written as a key with a null)", function()
    local at = "json_spec.lua:" .. debug.getinfo(1, "l").currentline + 1 .. ": "
    local err = raises(function() json.encode({[true] = 1}) end,
      "json: the table at value has the boolean true as a key; JSON's keys are strings (or integers, written "
      .. "as their digits)")
    truthy(err:find(at, 1, true), err)
    raises(function() json.encode({a = {[math.huge] = 2}}) end, "the table at value.a has the float inf as a key")
    raises(function() json.encode({[0.1 + 0.2] = 4}) end, "has the float 0.30000000000000004 as a key")
    raises(function() json.encode({[{}] = 3}) end, "has a table as a key")
    eq(json.encode({[2.0] = "x", [1] = "y"}), '["y","x"]', "a float of integer value is an integer key in Lua")
  end)
end)

describe("safetensors headers", function()
  local function header_file(path, header, data)
    local n = #header
    local len = string.pack("<I8", n)
    lm.write_file(path, len .. header .. (data or ""))
  end

  it("load empty tensors, also beside a tensor that starts where they do", function()
    local path = os.tmpname()
    lm.save(path, {e = lm.zeros(0, 5), a = lm.ones(2), f = lm.zeros(3, 0)})
    local t = lm.load(path)
    eq(t.e:shape_string(), "0x5"); eq(t.f:shape_string(), "3x0")
    same(t.a:totable(), {1, 1})
    local a = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
    local e = '"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'
    for _, h in ipairs{"{" .. a .. "," .. e .. "}", "{" .. e .. "," .. a .. "}"} do
      header_file(path, h, string.pack("<ff", 1, 2))
      local u = lm.load(path)
      eq(u.e:numel(), 0); same(u.a:totable(), {1, 2})
    end
    os.remove(path)
  end)

  it("refuse a NUL in a path or a tensor name (the system would cut it there)", function()
    raises(function() lm.save("/tmp/w_p\0ath.safetensors", {a = lm.ones(1)}) end, "the path contains a NUL byte")
    raises(function() lm.save(os.tmpname(), {["a\0x"] = lm.ones(1)}) end, "save: a tensor name contains a NUL byte")
    raises(function() lm.load("/tmp/w_p\0ath.safetensors") end, "the path contains a NUL byte")
    raises(function() lm.save(3, {a = lm.ones(1)}) end, "lm.save: the path must be a string, got a number")
    raises(function() lm.load(nil) end, "lm.load: the path must be a string, got nil")
    raises(function() lm.safetensors_writer(3, {}) end,
      "lm.safetensors_writer: the path must be a string, got a number")
  end)

  it("widen a signalling F16 NaN to a quiet one, as torch does", function()
    local path = os.tmpname()
    header_file(path, '{"n":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', string.pack("<I2", 0x7C01))
    local v = lm.load(path).n[1]
    os.remove(path)
    eq(string.unpack("<I4", string.pack("<f", v)), 0x7FC02000)
  end)

  it("read a name with a UTF-16 pair as UTF-8", function()
    local path = os.tmpname()
    local entry = ':{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    header_file(path, '{"h\\u00e9\\ud83d\\ude00"' .. entry, string.pack("<f", 7))
    local t = lm.load(path)
    eq(t["h\u{e9}\u{1F600}"]:item(), 7)
    header_file(path, '{"\\ud83d"' .. entry, string.pack("<f", 7))
    raises(function() lm.load(path) end, path)
    header_file(path, '{"h\xE9"' .. entry, string.pack("<f", 7)) -- Latin-1, not UTF-8
    raises(function() lm.load(path) end, "invalid JSON at byte 3: expected well-formed UTF-8 in a string")
    os.remove(path)
  end)

  it("refuse holes and bytes after the last tensor, as the format's reference reader does", function()
    local path = os.tmpname()
    local entry = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    header_file(path, entry, string.pack("<ff", 1, 2))
    raises(function() lm.load(path) end, "4 bytes follow the last tensor's data")
    header_file(path, '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', string.pack("<ff", 1, 2))
    raises(function() lm.load(path) end, "bytes 0 to 4 of the data belong to no tensor (a hole before 'a')")
    raises(function() lm.save(path, {["w\xFF"] = lm.ones(1)}) end, "save: the name of tensor 1 is not UTF-8 text")
    os.remove(path)
  end)
end)
