-- Minimal JSON for metrics files and checkpoint metadata: encode Lua tables
-- (arrays when keys are 1..n, objects otherwise, keys sorted for stable
-- output) and decode what encode writes (and ordinary JSON).
local json = {}

local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}

local function encode_string(s)
  local ok, bad = utf8.len(s)
  if not ok then
    local shown = s:sub(1, 40):gsub("[^\32-\126]", function(c) return string.format("\\x%02X", c:byte()) end)
    error(string.format('json: a string is not UTF-8 text (byte %d of "%s")', bad, shown), 0)
  end
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = #t
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

-- A value as an argument error shows it (checks.shown, loaded when needed:
-- json has no other tie to the rest of Lumen).
local function shown(v)
  return require('lumen.nn.checks').shown(v)
end

-- Where the table at depth `depth` sits in the document: "value.a[2]".
local function path_of(keys, depth)
  local parts = {"value"}
  for d = 1, depth do
    local k = keys[d]
    if math.type(k) == "integer" then parts[#parts + 1] = "[" .. k .. "]"
    elseif type(k) == "string" and k:match("^[%a_][%w_]*$") then parts[#parts + 1] = "." .. k
    else parts[#parts + 1] = string.format("[%q]", tostring(k)) end
  end
  return table.concat(parts)
end

-- Appends the JSON text of v to `out` as a flat list of pieces: nothing is
-- joined level by level, so a large document (the atlas' 30 MB of packed
-- data) is copied once, when the pieces are written or joined. `open` holds
-- the tables being written (those from the root to v, each at its depth + 1)
-- and path[d] the key at depth d: a table inside itself is an error, not an
-- endless text.
local function encode(v, indent, depth, out, open, path)
  local t = type(v)
  if t == "nil" then out[#out + 1] = "null"; return end
  if t == "boolean" then out[#out + 1] = tostring(v); return end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    elseif math.type(v) == "integer" then out[#out + 1] = tostring(v)
    else
      local text = string.format("%.17g", v) -- round-trips exactly
      -- a float keeps a mark of one (1.0, -0.0), so it decodes as a float
      out[#out + 1] = text:find("[%.eEn]") and text or text .. ".0"
    end
    return
  end
  if t == "string" then out[#out + 1] = encode_string(v); return end
  if t ~= "table" then error("json: cannot encode a " .. t, 0) end
  if open[v] then
    error(string.format("json: the table at %s contains itself (at %s): JSON has no references, a cycle "
      .. "cannot be written", path_of(path, open[v] - 1), path_of(path, depth)), 0)
  end
  open[v] = depth + 1
  local pad = indent and ("\n" .. string.rep(indent, depth + 1)) or ""
  local close = indent and ("\n" .. string.rep(indent, depth)) or ""
  local sep = indent and ": " or ":"
  if next(v) == nil then out[#out + 1] = is_array(v) and "[]" or "{}"; open[v] = nil; return end
  if is_array(v) then
    out[#out + 1] = "[" .. pad
    for i = 1, #v do
      if i > 1 then out[#out + 1] = "," .. pad end
      path[depth + 1] = i
      encode(v[i], indent, depth + 1, out, open, path)
    end
    out[#out + 1] = close .. "]"
    open[v] = nil
    return
  end
  local keys, seen = {}, {}
  for k in pairs(v) do
    if type(k) ~= "string" and math.type(k) ~= "integer" then -- tostring would make a key of it, and lose its value
      local what = type(k) == "number" and "the float " .. string.format("%.17g", k)
        or type(k) == "boolean" and "the boolean " .. tostring(k) or "a " .. type(k)
      error(string.format("json: the table at %s has %s as a key; JSON's keys are strings (or integers, "
        .. "written as their digits)", path_of(path, depth), what), 0)
    end
    local name = tostring(k)
    if seen[name] then error("json: the keys " .. name .. " and \"" .. name .. "\" would be one", 0) end
    seen[name] = true
    keys[#keys + 1] = name
  end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[tonumber(k)] end
    out[#out + 1] = (i > 1 and "," or "") .. pad .. encode_string(k) .. sep
    path[depth + 1] = k
    encode(val, indent, depth + 1, out, open, path)
  end
  out[#out + 1] = close .. "}"
  open[v] = nil
end

-- The pieces of v's text for the public function fname; an error (a bad
-- option, a value JSON cannot hold) points at the line that called fname.
local function parts_of(v, opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error(string.format("%s: options must be a table, got %s", fname, shown(opts)), 3)
  end
  local indent = opts and opts.indent
  if indent ~= nil and type(indent) ~= "string" then
    error(string.format("%s: indent must be a string (such as \"  \"), got %s", fname, shown(indent)), 3)
  end
  local out = {}
  local ok, err = pcall(encode, v, indent, 0, out, {}, {})
  if not ok then error(err, 3) end
  return out
end

--- JSON text of v; opts.indent (e.g. "  ") pretty-prints.
function json.encode(v, opts)
  local out = parts_of(v, opts, "lm.json.encode")
  return table.concat(out)
end

--- The JSON text of v as a list of strings whose concatenation is
--- json.encode(v, opts): for large documents written piece by piece
--- (lm.write_file takes the list).
function json.encode_parts(v, opts)
  local out = parts_of(v, opts, "lm.json.encode_parts")
  return out
end

local function decode_error(s, pos, what)
  local found = pos > #s and "the end of the text" or string.format("%q", s:sub(pos, pos + 9))
  error(string.format("json: %s at byte %d, found %s", what, pos, found), 0)
end

local decode_value

local function skip(s, pos) return s:find("[^ \t\r\n]", pos) or #s + 1 end

local function decode_string(s, pos)
  local out, i = {}, pos + 1
  while true do
    local c = s:sub(i, i)
    if c == "" then decode_error(s, i, "unterminated string") end
    if c == '"' then return table.concat(out), i + 1 end
    if c == "\\" then
      local e = s:sub(i + 1, i + 1)
      local map = {b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/"}
      if map[e] then
        out[#out + 1] = map[e]
        i = i + 2
      elseif e == "u" then
        local code = s:sub(i + 2, i + 5):match("^%x%x%x%x$") and tonumber(s:sub(i + 2, i + 5), 16)
        if not code then decode_error(s, i, "bad \\u escape") end
        i = i + 6
        if code >= 0xD800 and code <= 0xDBFF then -- a UTF-16 pair: one character, not two
          local low = s:sub(i, i + 1) == "\\u" and s:sub(i + 2, i + 5):match("^%x%x%x%x$")
            and tonumber(s:sub(i + 2, i + 5), 16)
          if not (low and low >= 0xDC00 and low <= 0xDFFF) then
            decode_error(s, i - 6, "a lone UTF-16 surrogate in a \\u escape")
          end
          code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
          i = i + 6
        elseif code >= 0xDC00 and code <= 0xDFFF then
          decode_error(s, i - 6, "a lone UTF-16 surrogate in a \\u escape")
        end
        out[#out + 1] = utf8.char(code)
      else
        decode_error(s, i, "bad escape")
      end
    elseif c < " " then -- JSON escapes them: a raw newline or tab is no string
      decode_error(s, i, string.format("an unescaped control character (byte %d) in a string", c:byte()))
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
end

function decode_value(s, pos)
  pos = skip(s, pos)
  local c = s:sub(pos, pos)
  if c == "{" then
    local obj = {}
    pos = skip(s, pos + 1)
    if s:sub(pos, pos) == "}" then return obj, pos + 1 end
    while true do
      if s:sub(pos, pos) ~= '"' then decode_error(s, pos, "expected a key") end
      local key
      key, pos = decode_string(s, pos)
      pos = skip(s, pos)
      if s:sub(pos, pos) ~= ":" then decode_error(s, pos, "expected ':'") end
      obj[key], pos = decode_value(s, pos + 1)
      pos = skip(s, pos)
      local d = s:sub(pos, pos)
      if d == "}" then return obj, pos + 1 end
      if d ~= "," then decode_error(s, pos, "expected ',' or '}'") end
      pos = skip(s, pos + 1)
    end
  elseif c == "[" then
    local arr, n = {}, 0
    pos = skip(s, pos + 1)
    if s:sub(pos, pos) == "]" then return arr, pos + 1 end
    while true do
      n = n + 1 -- by position: a null is a hole, and what follows keeps its index
      arr[n], pos = decode_value(s, pos)
      pos = skip(s, pos)
      local d = s:sub(pos, pos)
      if d == "]" then return arr, pos + 1 end
      if d ~= "," then decode_error(s, pos, "expected ',' or ']'") end
      pos = pos + 1
    end
  elseif c == '"' then
    return decode_string(s, pos)
  elseif s:sub(pos, pos + 3) == "true" then return true, pos + 4
  elseif s:sub(pos, pos + 4) == "false" then return false, pos + 5
  elseif s:sub(pos, pos + 3) == "null" then return nil, pos + 4
  else
    -- JSON's number grammar: an integer part, then an optional fraction and exponent
    local int = s:match("^-?%d+", pos)
    if not int then decode_error(s, pos, "unexpected character") end
    if int:match("^-?0%d") then decode_error(s, pos, "malformed number (a leading zero)") end
    local num = int .. (s:match("^%.%d+", pos + #int) or "")
    num = num .. (s:match("^[eE][-+]?%d+", pos + #num) or "")
    local v = tonumber(num)
    if not v or s:match("^[%.eE]", pos + #num) then decode_error(s, pos, "malformed number") end
    if num:find("[%.eE]") then return v, pos + #num end -- written as a float: stays one (-0.0 too)
    return math.tointeger(v) or v, pos + #num
  end
end

function json.decode(s)
  if type(s) ~= "string" then error("lm.json.decode: text must be a string, got " .. shown(s), 2) end
  local ok, bad = utf8.len(s) -- JSON text is UTF-8
  if not ok then decode_error(s, bad, "a byte that is not UTF-8 text") end
  local v, pos = decode_value(s, 1)
  pos = skip(s, pos)
  if pos <= #s then decode_error(s, pos, "trailing text") end
  return v
end

--- Writes v as JSON to path atomically (temporary file + rename).
function json.write(path, v)
  if type(path) ~= "string" then error("lm.json.write: path must be a string, got " .. shown(path), 2) end
  local parts = parts_of(v, {indent = "  "}, "lm.json.write")
  parts[#parts + 1] = "\n"
  require('lumen').write_file(path, parts)
end

return json
