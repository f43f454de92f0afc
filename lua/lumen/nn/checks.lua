-- The argument checks Lumen's Lua functions share: sizes, option tables,
-- drop probabilities, and the kinds of value a public function takes
-- (tensors, modules, data sets, functions). Errors name the function and
-- point at the code that called it (level 3: the caller of the function
-- that runs the check), so a wrong argument reads as what it is instead of
-- Lua's "attempt to index a nil value" from inside Lumen.
local lm = require 'lumen'

local checks = {}

-- a value as a message shows it: numbers, strings, booleans and nil as
-- they are, anything else by its kind
local function shown(v)
  local kind = type(v)
  if v ~= v then return "nan" end -- (tostring gives "-nan" or "nan" by platform)
  if kind == "number" or kind == "boolean" or kind == "nil" then return tostring(v) end
  if kind == "string" then
    return #v > 40 and string.format("a string of %d bytes", #v) or string.format("%q", v)
  end
  if lm.is_tensor(v) then return "a tensor" end
  return "a " .. kind
end
checks.shown = shown

local function fail(fname, what, wanted, v, level)
  error(string.format("%s: %s must be %s, got %s", fname, what, wanted, shown(v)), (level or 3) + 1)
end

--- Raises err (from a pcall that failed inside Lumen) again at `level`
--- (as error's, counted from the function calling reraise), without the
--- location it carried, so it reads as the caller's error; `prefix`, if
--- given, goes before it.
function checks.reraise(err, level, prefix)
  error((prefix or "") .. checks.message(err), level + 1)
end

--- The message of an error without the "file:line: " Lua put before it.
function checks.message(err)
  return (tostring(err):gsub("^[^\n]-:%d+: ", ""))
end

--- v must be a tensor.
function checks.tensor(v, what, fname, level)
  if not lm.is_tensor(v) then fail(fname, what, "a tensor", v, level) end
end

--- v must be nil or a tensor.
function checks.optional_tensor(v, what, fname, level)
  if v ~= nil and not lm.is_tensor(v) then fail(fname, what, "a tensor (or nil)", v, level) end
end

--- v must be a table (a list or a record).
function checks.table(v, what, fname, level)
  if type(v) ~= "table" then fail(fname, what, "a table", v, level) end
end

--- v must be nil or a table: an options argument. Returns v or {}.
function checks.options(v, fname, level)
  if v == nil then return {} end
  if type(v) ~= "table" then fail(fname, "options", "a table", v, level) end
  return v
end

--- v must be a module: an lm.nn layer, container or model (a table with a
--- forward method).
function checks.module(v, what, fname, level)
  if type(v) ~= "table" or type(v.forward) ~= "function" then
    fail(fname, what, "a module (an lm.nn layer or model)", v, level)
  end
end

--- v must be a data set: a table {x = tensor, y = tensor}.
function checks.set(v, what, fname, level)
  if type(v) ~= "table" or not lm.is_tensor(v.x) or not lm.is_tensor(v.y) then
    local got = type(v) ~= "table" and shown(v) or not lm.is_tensor(v.x) and "a table without a tensor x"
      or "a table without a tensor y"
    error(string.format("%s: %s must be a data set {x = tensor, y = tensor}, got %s", fname, what, got),
      (level or 3))
  end
  -- one label a sample: a mismatch would fail deep inside an index_select or a narrow
  local nx, ny = v.x:dim() > 0 and v.x:size(1) or nil, v.y:dim() > 0 and v.y:size(1) or nil
  if nx == nil or nx ~= ny then
    error(string.format("%s: %s has inputs %s and labels %s: a data set holds one label a sample (first "
      .. "dimensions equal)", fname, what, v.x:shape_string(), v.y:shape_string()), (level or 3))
  end
end

--- v must be callable: a function, or a table or userdata with __call.
function checks.callable(v, what, fname, level)
  if not checks.is_callable(v) then fail(fname, what, "a function", v, level) end
end

--- Whether v can be called: a function, or a value whose metatable has __call.
function checks.is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

--- v must be nil or a positive integer (a batch size, a count); a whole
--- float (32.0, from a division) is one.
function checks.optional_size(v, what, fname, level)
  if v ~= nil and not (checks.is_whole(v) and v >= 1) then
    fail(fname, what, "a positive integer (or nil)", v, level)
  end
end

--- v must be a recorder (lm.introspect.Recorder: capture, record, model).
function checks.recorder(v, what, fname, level)
  if type(v) ~= "table" or type(v.capture) ~= "function" or type(v.record) ~= "function"
      or type(v.model) ~= "table" then
    fail(fname, what, "a recorder (lm.introspect.Recorder)", v, level)
  end
end

--- v must be an autoencoder whose encode maps a recording to the map
--- (lm.introspect.InfoVAE), with a loss to train on where `trains`.
function checks.autoencoder(v, what, fname, level, trains)
  if type(v) ~= "table" or type(v.forward) ~= "function" or type(v.encode) ~= "function"
      or trains and type(v.loss) ~= "function" then
    local got = type(v) == "table" and type(v.__name) == "string" and "an " .. v.__name or shown(v)
    error(string.format("%s: %s must be an autoencoder (lm.introspect.InfoVAE), got %s", fname, what, got),
      level or 3)
  end
end

--- True for nil or a number (a JSON null reads back as nil where NaN was).
function checks.is_optional_number(v) return v == nil or type(v) == "number" end

--- True for a number that is neither NaN nor infinite.
function checks.is_finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

--- True for a number with an integer's value (3 and 3.0).
function checks.is_whole(v) return type(v) == "number" and math.tointeger(v) ~= nil end

--- v must be a number (NaN included: callers that refuse it say so).
function checks.number(v, what, fname, level)
  if type(v) ~= "number" then fail(fname, what, "a number", v, level) end
end

--- v must be a string.
function checks.string(v, what, fname, level)
  if type(v) ~= "string" then fail(fname, what, "a string", v, level) end
end

--- An on/off option: nil gives `default`, true and false are themselves;
--- anything else (a 0 or 1 from a ported config, "false") is an error, not
--- read as one of them.
function checks.flag(v, default, what, fname, level)
  if v == nil then return default end
  if type(v) ~= "boolean" then fail(fname, what, "true or false", v, level) end
  return v
end

--- A small positive constant such as a norm's eps: nil gives `default`;
--- otherwise a finite number >= 0.
function checks.eps(v, default, what, fname, level)
  if v == nil then return default end
  if not checks.is_finite(v) or v < 0 then fail(fname, what, "a finite number >= 0", v, level) end
  return v
end

--- A 1-based row of a table of `rows` (negative counts from the end: -1 is
--- the last, as torch's negative indices), returned as its row number.
function checks.row(v, rows, what, fname, level)
  local i = checks.is_whole(v) and math.tointeger(v)
  if not i or i == 0 or i > rows or i < -rows then
    fail(fname, what, string.format("a 1-based row in 1..%d (or -%d..-1 from the end)", rows, rows), v, level)
  end
  return i < 0 and rows + 1 + i or i
end

--- v must be a positive integer.
function checks.size(v, what, layer)
  if math.type(v) ~= "integer" or v < 1 then
    error(string.format("%s: %s must be a positive integer, got %s", layer, what, shown(v)), 3)
  end
end

--- opts must be nil or a table whose keys are all in `known` (a set). A
--- misspelt option would otherwise keep its default without a word, and a
--- torch option Lumen lacks would load a checkpoint that computes something
--- else. `unsupported` maps torch's option names to a check of the value
--- (true when the value is the one Lumen computes) and a reason.
--- `known` may also be a list of names. level: as error's, from the caller
--- of the function that runs the check (3, the default).
function checks.opts(opts, layer, known, unsupported, level)
  level = level or 3
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(layer .. ": options must be a table, got a " .. type(opts), level) end
  if known[1] ~= nil then
    local set = {}
    for _, name in ipairs(known) do set[name] = true end
    known = set
  end
  for k, v in pairs(opts) do
    local u = unsupported and unsupported[k]
    if u then
      if not u.accepts(v) then
        error(string.format("%s: option %s = %s is not supported (%s)", layer, tostring(k), shown(v),
          u.reason), level)
      end
    elseif not known[k] then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      local near = type(k) == "string" and require('lumen.help').closest(k, names) or {}
      error(string.format("%s: unknown option '%s'%s (known: %s)", layer, tostring(k),
        #near > 0 and "; did you mean " .. table.concat(near, " or ") .. "?" or "", table.concat(names, ", ")), level)
    end
  end
  return opts
end

--- p must be a drop probability in [0, 1) (or [0, 1] with `one_allowed`).
function checks.p(p, what, layer, one_allowed)
  if type(p) ~= "number" or p ~= p or p < 0 or p > 1 or (p == 1 and not one_allowed) then
    error(string.format("%s: %s (the drop probability) must be in [0, 1%s, got %s", layer, what,
      one_allowed and "]" or ")", shown(p)), 3)
  end
end

return checks
