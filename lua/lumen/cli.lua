-- Command-line options for experiment scripts:
--   local opts = cli.parse(arg, {epochs = 30, data = 'mnist', paper = false}, usage)
-- accepts --name value, --name=value and --flag (booleans); --help prints
-- the usage text and the defaults, then exits.
local cli = {}

function cli.parse(args, defaults, usage)
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  local i = 1
  args = args or {}
  while i <= #args do
    local a = args[i]
    local key, value = a:match("^%-%-([%w_-]+)=(.*)$")
    if not key then key = a:match("^%-%-([%w_-]+)$") end
    if not key then error(string.format("unexpected argument '%s' (options look like --name value)", a), 2) end
    key = key:gsub("-", "_")
    if key == "help" then
      print(usage or "options:")
      local keys = {}
      for k in pairs(defaults) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do
        print(string.format("  --%-12s (default %s)", k:gsub("_", "-"), tostring(defaults[k])))
      end
      os.exit(0)
    end
    if defaults[key] == nil then
      local names = {}
      for k in pairs(defaults) do names[#names + 1] = k end
      local near = require('lumen.help').closest(key, names)
      for n, k in ipairs(near) do near[n] = "--" .. k:gsub("_", "-") end
      local hint = #near > 0 and "did you mean " .. table.concat(near, " or ") .. "?" or "try --help"
      error(string.format("unknown option --%s (%s)", key:gsub("_", "-"), hint), 2)
    end
    if type(defaults[key]) == "boolean" and value == nil then
      opts[key] = true
    else
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then error("option --" .. key .. " needs a value", 2) end
      end
      if type(defaults[key]) == "number" then
        local n = tonumber(value)
        if not n then error(string.format("option --%s needs a number, got '%s'", key, value), 2) end
        opts[key] = math.tointeger(n) or n
      elseif type(defaults[key]) == "boolean" then
        opts[key] = value == "true" or value == "1" or value == "yes"
      else
        opts[key] = value
      end
    end
    i = i + 1
  end
  return opts
end

return cli
