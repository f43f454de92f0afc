-- The argument checks every lm.nn layer shares: sizes, option tables and
-- drop probabilities. Errors name the layer and point at the code that built
-- it (level 3: the caller of the layer's init).
local checks = {}

-- a value as a message shows it: numbers, strings, booleans and nil as
-- they are, anything else by its type
local function shown(v)
  local kind = type(v)
  if kind == "number" or kind == "boolean" or kind == "nil" then return tostring(v) end
  if kind == "string" then return string.format("%q", v) end
  return "a " .. kind
end
checks.shown = shown

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
function checks.opts(opts, layer, known, unsupported)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(layer .. ": options must be a table, got a " .. type(opts), 3) end
  for k, v in pairs(opts) do
    local u = unsupported and unsupported[k]
    if u then
      if not u.accepts(v) then
        error(string.format("%s: option %s = %s is not supported (%s)", layer, tostring(k), shown(v),
          u.reason), 3)
      end
    elseif not known[k] then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (known: %s)", layer, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  return opts
end

--- p must be a drop probability in [0, 1) (or [0, 1] with `one_allowed`).
function checks.p(p, what, layer, one_allowed)
  if type(p) ~= "number" or p < 0 or p > 1 or (p == 1 and not one_allowed) then
    error(string.format("%s: %s (the drop probability) must be in [0, 1%s, got %s", layer, what,
      one_allowed and "]" or ")", shown(p)), 3)
  end
end

return checks
