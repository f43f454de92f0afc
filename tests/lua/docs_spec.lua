-- Every exported name has an entry in docs/api.md.
local lm = require 'lumen'

local f = assert(io.open("docs/api.md"))
local doc = f:read("a")
f:close()

local function documented(prefix, tbl)
  local missing = {}
  for name, v in pairs(tbl) do
    if type(name) == "string" and not name:match("^_") then
      if not doc:find("`" .. prefix .. name, 1, true) then missing[#missing + 1] = prefix .. name end
      if type(v) == "table" and prefix == "lm." and name ~= "Tensor" then
        for sub in pairs(v) do
          if not doc:find("`" .. prefix .. name .. "." .. sub, 1, true) then
            missing[#missing + 1] = prefix .. name .. "." .. sub
          end
        end
      end
    end
  end
  table.sort(missing)
  return missing
end

describe("docs/api.md", function()
  it("documents every module function", function()
    local missing = documented("lm.", lm)
    eq(#missing, 0, "undocumented: " .. table.concat(missing, ", "))
  end)
  it("documents every tensor method", function()
    local missing = documented("x:", lm.Tensor)
    eq(#missing, 0, "undocumented: " .. table.concat(missing, ", "))
  end)
end)
