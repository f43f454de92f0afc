-- Command-line options for experiment scripts:
--   local opts = cli.parse(arg, {epochs = 30, data = 'mnist', paper = false}, usage)
-- accepts --name value, --name=value, --flag, --no-flag and --flag false
-- (booleans); --help prints the usage text and the defaults, then exits. A
-- mistake (an unknown option, a value of the wrong kind) is a message on
-- stderr and exit status 2.
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

function cli.parse(args, defaults, usage)
  local opts = {}
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
        print(string.format("  --%-12s (default %s)%s", dashed(k), tostring(defaults[k]), flag))
      end
      os.exit(0)
    end
    local negated = key:match("^no_(.+)$")
    if negated and defaults[key] == nil and type(defaults[negated]) == "boolean" and value == nil then
      key, value = negated, "false" -- --no-flag
    end
    if defaults[key] == nil then
      local names = {}
      for k in pairs(defaults) do names[#names + 1] = k end
      local near = require('lumen.help').closest(key, names)
      for n, k in ipairs(near) do near[n] = "--" .. dashed(k) end
      local hint = #near > 0 and "did you mean " .. table.concat(near, " or ") .. "?" or "try --help"
      usage_error("unknown option --%s (%s)", dashed(key), hint)
    end
    local kind = type(defaults[key])
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
  return opts
end

return cli
