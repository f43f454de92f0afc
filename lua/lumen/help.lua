-- help(x): the entry of docs/api.md (embedded in the binary) for a function,
-- a method or a module, found by name or by value.
--
--   help(lm.nn.Linear)      help("x:reshape")      help(lm.optim)
--
-- Names follow the reference's conventions: `lm.name`, `lm.nn.functional`'s
-- functions as `F.name`, methods with the receiver the reference uses
-- (`x:` tensors, `net:` modules, `opt:` optimisers, `ax:` axes, ...) and the
-- library modules one requires as `analyses.`, `study.`, `atlas.`.
local lm = require 'lumen'

local help = {}

local doc_text
local function doc()
  doc_text = doc_text or require 'lumen.docs.api'
  return doc_text
end

-- The method tables of the classes users hold, with the receiver name the
-- reference uses. Built on first use (a few tiny objects are made).
local classes
local function class_list()
  if classes then return classes end
  local p = lm.zeros(1):requires_grad(true)
  local opt = lm.optim.SGD({p}, {lr = 0.1})
  local fig = lm.plot.figure{width = 10, height = 10}
  local vae_class = getmetatable(lm.introspect.InfoVAE{inputs = 2, hidden = 2, depth = 1})
  classes = {
    {"x:", lm.Tensor, "tensor"},
    {"net:", lm.nn.Module, "module"},
    {"opt:", getmetatable(opt), "optimiser"},
    {"clr:", getmetatable(lm.optim.CyclicLR(opt, {max = 0.1, period = 2})), "learning-rate schedule"},
    {"es:", getmetatable(lm.optim.EarlyStopping{}), "early stopping"},
    {"fig:", getmetatable(fig), "figure"},
    {"ax:", getmetatable(fig:axes{rect = {0, 0, 10, 10}}), "axes"},
    {"loader:", lm.data.Loader, "data loader"},
    {"rec:", lm.introspect.Recorder_class, "recorder"},
    {"vae:", vae_class, "InfoVAE"},
    {"w:", debug.getregistry()["lumen.SafetensorsWriter"].__index, "safetensors writer"},
  }
  return classes
end

-- Library modules documented by a short name.
local MODULES = {{"analyses.", "lumen.introspect.analyses"}, {"study.", "lumen.introspect.study"},
  {"atlas.", "lumen.introspect.atlas"}, {"figures.", "lumen.introspect.figures"}}

--- Every public name: a list of {name, value}, sorted. Includes lm's
--- functions and tables, one level into lm's tables (lm.nn.Linear), F.*,
--- the library modules and each class's methods (own methods only: a
--- module class lists what it adds to net:).
function help.names()
  local out, seen = {}, {}
  local function add(name, v)
    if not seen[name] then seen[name] = true; out[#out + 1] = {name, v} end
  end
  local function public(k) return type(k) == "string" and not k:match("^_") end
  -- a plain library table one level down (lm.data.transforms): its
  -- functions are names too; classes (an __index), lists and lm.nn.functional
  -- (whose functions are F.*) are not walked
  local function library(t)
    return type(t) == "table" and getmetatable(t) == nil and rawget(t, "__index") == nil and t ~= lm.nn.functional
  end
  for k, v in pairs(lm) do
    if public(k) and k ~= "Tensor" then
      add("lm." .. k, v)
      if type(v) == "table" then
        for k2, v2 in pairs(v) do
          if public(k2) then
            add("lm." .. k .. "." .. k2, v2)
            if library(v2) then
              for k3, v3 in pairs(v2) do
                if public(k3) and type(v3) == "function" then add("lm." .. k .. "." .. k2 .. "." .. k3, v3) end
              end
            end
          end
        end
      end
    end
  end
  for k, v in pairs(lm.nn.functional) do if public(k) then add("F." .. k, v) end end
  for _, m in ipairs(MODULES) do
    for k, v in pairs(require(m[2])) do if public(k) and type(v) == "function" then add(m[1] .. k, v) end end
  end
  for _, c in ipairs(class_list()) do
    local methods = c[2]
    for k, v in pairs(methods) do
      local inherited = c[1] ~= "net:" and rawget(lm.nn.Module, k) == v
      if public(k) and type(v) == "function" and k ~= "new" and not inherited then add(c[1] .. k, v) end
    end
  end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

--- The public name of a value (a function, module table or class), or nil.
function help.name_of(v)
  if v == lm then return "lm" end
  for _, e in ipairs(help.names()) do if rawequal(e[2], v) then return e[1] end end
  return nil
end

-- The start of the line holding position `at`.
local function line_start(text, at)
  local s = at
  while s > 1 and text:sub(s - 1, s - 1) ~= "\n" do s = s - 1 end
  return s
end

-- The section heading (### ...) above position `at`.
local function heading_above(text, at)
  local best
  for pos, h in text:gmatch("()\n(##+ [^\n]*)") do
    if pos < at then best = h else break end
  end
  return best
end

local find_entry

--- The reference entry of a public name: the bullet (or paragraph) of
--- docs/api.md that documents it, and the heading of its section; nil when
--- the name has no entry. A function of a library table documented in its
--- table's bullet (lm.data.transforms.normalize: `normalize(` in the
--- bullet of lm.data.transforms) has that bullet.
function help.entry(name)
  local entry, heading = find_entry(name)
  if entry then return entry, heading end
  local parent, last = name:match("^(.+)%.([%w_]+)$")
  if not parent then return nil end
  local pentry, pheading = find_entry(parent)
  if pentry and (pentry:find("`" .. last .. "(", 1, true) or pentry:find("`" .. last .. "{", 1, true)) then
    return pentry, pheading
  end
  return nil
end

find_entry = function(name)
  local text = doc()
  local at
  -- a bullet that starts with the name is its entry; any other mention
  -- (lm.train named inside autocast's entry) only where there is none
  for _, lead in ipairs{"\n- `", "`"} do
    for _, after in ipairs{"(", "{", "`", " ", "[", "."} do
      at = text:find(lead .. name .. after, 1, true)
      if at then
        at = at + #lead - 1 -- the backtick
        break
      end
    end
    if at then break end
  end
  if not at then return nil end
  local s = line_start(text, at)
  -- back to the line that starts the bullet or paragraph
  while not text:sub(s, s + 1):match("^%- ") and s > 1 do
    local prev = line_start(text, s - 1)
    local line = text:sub(prev, s - 2)
    if line:match("^%s*$") or line:match("^#") then break end
    s = prev
    if line:match("^%- ") then break end
  end
  -- forward to the end: a blank line, a heading or the next bullet
  local e = s
  repeat
    local nl = text:find("\n", e, true) or #text + 1
    e = nl + 1
    local next_line = text:match("^[^\n]*", e) or ""
  until e > #text or next_line:match("^%s*$") or next_line:match("^%- ") or next_line:match("^#")
  return text:sub(s, e - 2), heading_above(text, at)
end

--- What help(x) prints, as a string.
function help.text(...)
  local lines = {}
  local print = function(s) lines[#lines + 1] = s end
  help.write((...), print, select("#", ...) > 0)
  return table.concat(lines, "\n")
end

--- Prints the reference entry of `x` (a value or a name), or the names a
--- module holds; help() says how to use it.
function help.help(...) help.write((...), print, select("#", ...) > 0) end

function help.write(x, print, given)
  if x == nil and given then
    print("help: the value is nil (a misspelt name, or a variable never set?)")
  end
  if x == nil then
    print([[help(x) prints the reference entry of a function, method or module, by value or by name:
  help(lm.nn.Linear)   help(lm.optim)   help("x:reshape")   help("ax:scatter")
The whole reference is docs/api.md; the user guide starts at docs/getting-started.md.]])
    return
  end
  local name = type(x) == "string" and x or help.name_of(x)
  if name then name = name:gsub("^lm%.nn%.functional%.", "F.") end -- (F.relu is the name the reference uses)
  if not name and lm.is_tensor(x) then
    print(tostring(x))
    print('A tensor: its methods are listed by help("x:") and documented as x:name, e.g. help("x:view").')
    return
  end
  if not name then
    print("help: no reference entry for this " .. type(x) .. " (try help(\"name\"))")
    return
  end
  -- a prefix ("x:", "lm.nn.") or a module table lists the names under it
  local v = type(x) == "string" and nil or x
  local mt = type(v) == "table" and getmetatable(v)
  local listing = name:match("[.:]$") or (type(v) == "table" and (not mt or mt.__lumen_library))
  if listing then
    local prefix = name:match("[.:]$") and name or name .. "."
    if prefix == "lm.nn.functional." then prefix = "F." end -- its functions' names
    local found = {}
    for _, e in ipairs(help.names()) do
      if e[1]:sub(1, #prefix) == prefix then found[#found + 1] = e[1] end
    end
    -- the table's own entry (a bullet of its own), else its section's heading
    local own, h = help.entry((name:gsub("[.:]$", "")))
    local own_bullet = own and own:find("^%- `" .. name:gsub("%p", "%%%0") .. "[^%.%w_]")
    if own and (own_bullet or #found == 0) then
      print((h and h .. "\n" or "") .. own)
      if #found == 0 then return end -- (a list of names, a table of constants: the entry says it)
    elseif h then
      print(h)
    end
    if #found == 0 then print("help: nothing is named " .. prefix .. "*") return end
    local line = ""
    for _, f in ipairs(found) do -- wrapped at 96 columns
      if #line > 0 and #line + 2 + #f > 96 then print(line); line = "" end
      line = line == "" and f or line .. "  " .. f
    end
    print(line)
    return
  end
  local entry, heading = help.entry(name)
  if not entry then
    print("help: " .. name .. " has no entry in docs/api.md")
    return
  end
  print((heading and heading .. "\n" or "") .. entry)
end

-- ---- closest names, for errors about a name that does not exist --------------------------------

-- Edit distance between a and b (case-insensitive; a swap of two
-- neighbouring letters is one edit: Adma -> Adam).
local function distance(a, b)
  a, b = a:lower(), b:lower()
  if a == b then return 0 end
  local d = {}
  for i = 0, #a do d[i] = {[0] = i} end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

-- How far `candidate` is from the mistyped `name`: the edit distance, or 1
-- when one starts with the other (eval / evaluate, BatchNorm / BatchNorm2d).
local function score(name, candidate)
  local a, b = name:lower(), candidate:lower()
  if #a >= 3 and #b >= 3 and (b:sub(1, #a) == a or a:sub(1, #b) == b) then return 1 end
  return distance(a, b)
end

--- The names of `candidates` (a list) closest to `name`: those at the
--- smallest distance (up to three), if near (a prefix, or a few edits);
--- any distance with `any`.
function help.closest(name, candidates, any)
  local limit = math.max(1, #name // 3)
  local scored, seen = {}, {}
  for _, c in ipairs(candidates) do
    if type(c) == "string" and c ~= name and not seen[c] and not c:match("^_") then
      seen[c] = true
      local d = score(name, c)
      if any or d <= limit then scored[#scored + 1] = {c, d} end
    end
  end
  table.sort(scored, function(x, y) if x[2] ~= y[2] then return x[2] < y[2] end return x[1] < y[1] end)
  local out = {} -- the nearest ones only (ties, up to three)
  for i = 1, math.min(3, #scored) do
    if scored[i][2] > scored[1][2] then break end
    out[i] = scored[i][1]
  end
  return out
end

--- "X has no 'name'; did you mean a, b or c?" for a name looked up on `what`;
--- `otherwise` (a string) follows when no name is near.
function help.unknown_message(what, name, candidates, otherwise)
  local near = help.closest(name, candidates)
  local msg = string.format("%s has no '%s'", what, name)
  if #near == 0 then return otherwise and msg .. "; " .. otherwise or msg end
  local list = #near == 1 and near[1]
    or table.concat(near, ", ", 1, #near - 1) .. " or " .. near[#near]
  return msg .. "; did you mean " .. list .. "?"
end

-- The public string keys of a table.
local function keys(t, out)
  out = out or {}
  for k in pairs(t) do if type(k) == "string" and not k:match("^_") then out[#out + 1] = k end end
  return out
end

--- Makes a library table (lm, lm.nn, lm.optim) raise an error naming the
--- closest names when a public name it does not have is read; with no name
--- near, the names of the same kind (capitalised: classes and layers) are
--- listed, or help("what.") suggested.
function help.strict(t, what)
  setmetatable(t, {__lumen_library = true, __index = function(_, k)
    if type(k) == "string" and not k:match("^_") then
      local names = keys(t)
      local same = {}
      local upper = k:match("^%u") ~= nil
      for _, n in ipairs(names) do if (n:match("^%u") ~= nil) == upper then same[#same + 1] = n end end
      table.sort(same)
      local otherwise = string.format('help("%s.") lists its names', what)
      if #same > 0 and #same <= 24 then otherwise = "it has " .. table.concat(same, ", ") end
      error(help.unknown_message(what, k, names, otherwise), 2)
    end
  end})
  return t
end

-- A tensor has no field or method `name` (bindings/l_tensor.c calls this).
debug.getregistry()["lumen.unknown_name"] = function(what, name, methods)
  local names = keys(methods)
  names[#names + 1] = "grad"
  error(help.unknown_message(what, name, names, 'help("x:") lists the methods'), 3)
end

return help
