-- Tab completion for the REPL (the host's readline calls repl.complete).
-- Completes globals and keywords, fields of tables (following __index
-- tables, so a module's methods show), tensor methods after `x:` or `x.`,
-- and string methods after `s:`. Values are only looked up, never called.
local lm = require 'lumen'

local repl = {}

local KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
  "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}

-- The fields a value offers: its own string keys and those of the tables its
-- metatables' __index chain leads to.
local function fields(v, methods_only)
  local out, seen = {}, {}
  local function add(k, x)
    if type(k) == "string" and not seen[k] and (not methods_only or type(x) == "function") then
      seen[k] = true
      out[#out + 1] = {k, x}
    end
  end
  if lm.is_tensor(v) then
    for k, x in pairs(lm.Tensor) do add(k, x) end
    if not methods_only then add("grad", nil) end
    return out
  end
  if type(v) == "string" then
    for k, x in pairs(string) do add(k, x) end
    return out
  end
  local depth = 0
  while type(v) == "table" and depth < 8 do
    for k, x in pairs(v) do add(k, x) end
    local mt = getmetatable(v)
    v = mt and rawget(mt, "__index")
    depth = depth + 1
  end
  return out
end

-- The value a dotted path names (`lm.nn`, `net.encoder`), looked up without
-- calling anything; nil when any step is missing.
local function resolve(path, env)
  local v = env
  for name in path:gmatch("[^.:]+") do
    if not name:match("^[%a_][%w_]*$") then return nil end
    if type(v) == "table" then
      local x = rawget(v, name)
      if x == nil then -- an inherited field: follow __index tables only
        for _, f in ipairs(fields(v)) do if f[1] == name then x = f[2] break end end
      end
      v = x
    elseif lm.is_tensor(v) and name == "grad" then
      v = v.grad
    else
      return nil
    end
    if v == nil then return nil end
  end
  return v
end

--- Completions for the text before the cursor: a sorted list of names that
--- complete the word being typed (the part after the last `.` or `:`), and
--- what to append when there is just one: "(" for a function, "." for a
--- table, "" otherwise.
function repl.complete(line, env)
  env = env or _G
  local expr = line:match("[%w_.:]*$") or ""
  local path, sep, partial = expr:match("^(.*)([.:])([%w_]*)$")
  local candidates
  if not path then
    partial = expr
    if partial == "" or partial:match("^%d") then return {}, "" end
    candidates = fields(env)
    for _, k in ipairs(KEYWORDS) do candidates[#candidates + 1] = {k, true} end
  else
    if path == "" or path:match("[.:]$") then return {}, "" end
    local v = resolve(path, env)
    if v == nil then return {}, "" end
    candidates = fields(v, sep == ":")
  end
  local out, values, seen = {}, {}, {}
  for _, c in ipairs(candidates) do
    local k = c[1]
    if k:sub(1, #partial) == partial and not seen[k] and (k:sub(1, 1) ~= "_" or partial:sub(1, 1) == "_") then
      seen[k] = true
      out[#out + 1] = k
      values[k] = c[2]
    end
  end
  table.sort(out)
  local append = ""
  if #out == 1 then
    local v = values[out[1]]
    if type(v) == "function" then append = "("
    elseif type(v) == "table" and not (getmetatable(v) and getmetatable(v).__call) then append = "."
    elseif type(v) == "table" then append = "(" end
  end
  return out, append
end

return repl
