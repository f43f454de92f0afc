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
