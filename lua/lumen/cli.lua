-- Command-line options for experiment scripts:
--   local opts = cli.parse(arg, {epochs = 30, data = 'mnist', paper = false}, usage, about)
-- (about, optional: option -> a line saying what it does, printed by --help)
-- accepts --name value, --name=value, --flag, --no-flag and --flag false
-- (booleans); --help prints the usage text and the defaults, then exits. A
-- mistake (an unknown option, a value of the wrong kind) is a message on
-- stderr and exit status 2. The second result is the set of options the
-- command line gave (a preset may only fill the others).
local cli = {}

-- how a boolean option may be written (case-insensitive)
local TRUTH = {["true"] = true, ["1"] = true, yes = true, on = true,
  ["false"] = false, ["0"] = false, no = false, off = false}

local function dashed(key) return (key:gsub("_", "-")) end

-- A user's mistake on the command line: the message alone on stderr and
-- exit status 2 (as getopt-style tools), not a Lua traceback.
local function usage_error(fmt, ...)
  io.stderr:write(string.format(fmt, ...), " (see --help)\n")
  os.exit(2)
end

function cli.parse(args, defaults, usage, about)
  local opts, given = {}, {}
  for k, v in pairs(defaults) do opts[k] = v end
  local i = 1
  args = args or {}
  while i <= #args do
    local a = args[i]
    local key, value = a:match("^%-%-([%w_-]+)=(.*)$")
    if not key then key = a:match("^%-%-([%w_-]+)$") end
    if not key then usage_error("unexpected argument '%s' (options look like --name value)", a) end
    key = key:gsub("-", "_")
    if key == "help" then
      print(usage or "options:")
      local keys = {}
      for k in pairs(defaults) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do
        local flag = type(defaults[k]) == "boolean" and " (--" .. dashed(k) .. " or --no-" .. dashed(k) .. ")" or ""
        local shown = defaults[k] == "" and "none given" or tostring(defaults[k]) -- "" lets the script choose
        local line = string.format("  --%-12s (default %s)%s", dashed(k), shown, flag)
        if about and about[k] then line = string.format("%-40s %s", line, about[k]) end
        print(line)
      end
      os.exit(0)
    end
    local negated = key:match("^no_(.+)$")
    if negated and defaults[key] == nil and type(defaults[negated]) == "boolean" then
      -- --no-flag, and --no-flag=true (false) or --no-flag=false (true)
      local b = true
      if value ~= nil then
        b = TRUTH[value:lower()]
        if b == nil then usage_error("option --no-%s is true or false, got '%s'", dashed(negated), value) end
      end
      key, value = negated, b and "false" or "true"
    end
    if defaults[key] == nil then
      local names = {}
      for k in pairs(defaults) do names[#names + 1] = k end
      local near = require('lumen.help').closest(key, names)
      for n, k in ipairs(near) do near[n] = "--" .. dashed(k) end
      if #near > 0 then
        usage_error("unknown option --%s (did you mean %s?)", dashed(key), table.concat(near, " or "))
      end
      usage_error("unknown option --%s", dashed(key))
    end
    local kind = type(defaults[key])
    given[key] = true
    if kind == "boolean" and value == nil then
      -- a bare flag, or a flag followed by a boolean word (--resume false)
      local word = args[i + 1] and TRUTH[args[i + 1]:lower()]
      if word ~= nil then
        opts[key] = word
        i = i + 1
      else
        opts[key] = true
      end
    else
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil or value:match("^%-%-%a") then
          usage_error("option --%s needs a value%s", dashed(key),
            value and string.format(", got the option '%s'", value) or "")
        end
      end
      if kind == "number" then
        local n = tonumber(value)
        if not n then usage_error("option --%s needs a number, got '%s'", dashed(key), value) end
        opts[key] = math.tointeger(n) or n
      elseif kind == "boolean" then
        local b = TRUTH[value:lower()]
        if b == nil then
          usage_error("option --%s is true or false (also yes/no, on/off, 1/0), got '%s'", dashed(key), value)
        end
        opts[key] = b
      else
        opts[key] = value
      end
    end
    i = i + 1
  end
  return opts, given
end

-- what each kind of cli.check accepts, and how a mistake names it
local KINDS = {
  count = {"an integer >= 1", function(v) return math.type(v) == "integer" and v >= 1 end},
  count0 = {"an integer >= 0", function(v) return math.type(v) == "integer" and v >= 0 end},
  positive = {"a number > 0", function(v) return v > 0 and v < math.huge end},
  nonnegative = {"a number >= 0", function(v) return v >= 0 and v < math.huge end},
}

--- Checks the ranges of parsed numeric options: kinds maps an option to
--- 'count' (integer >= 1), 'count0' (integer >= 0), 'positive' (> 0) or
--- 'nonnegative' (>= 0), or to a list of the strings it may be. A value out
--- of range is a usage error naming the option, before any work starts.
function cli.check(opts, kinds)
  local keys = {}
  for k in pairs(kinds) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local kind, v = kinds[k], opts[k]
    if type(kind) == "table" then
      local ok = false
      for _, w in ipairs(kind) do ok = ok or v == w end
      if not ok then
        usage_error("option --%s is one of %s, got '%s'", dashed(k), table.concat(kind, ", "), tostring(v))
      end
    else
      local rule = assert(KINDS[kind], "cli.check: unknown kind " .. tostring(kind))
      if type(v) ~= "number" or not rule[2](v) then
        usage_error("option --%s needs %s, got %s", dashed(k), rule[1], tostring(v))
      end
    end
  end
  return opts
end

--- A list of numbers written with commas ("0.1,1,10"), each of `kind` (as
--- cli.check's, optional), or a usage error naming the option.
function cli.numbers(opts, key, kind)
  local rule = kind and assert(KINDS[kind], "cli.numbers: unknown kind " .. tostring(kind))
  local list = {}
  for piece in (opts[key] .. ","):gmatch("([^,]*),") do
    local v = tonumber(piece)
    if not v or rule and not rule[2](v) then
      usage_error("option --%s is numbers separated by commas%s, got '%s'", dashed(key),
        rule and ", each " .. rule[1] or "", opts[key])
    end
    list[#list + 1] = v
  end
  return list
end

--- A usage error (the message, " (see --help)", exit status 2): for a
--- script's own checks of its options.
cli.usage_error = usage_error

return cli
