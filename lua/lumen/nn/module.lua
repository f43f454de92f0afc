-- nn.Module: the base of every layer and network.
--
-- A module keeps its parameters, buffers and child modules in ordered lists,
-- so parameters() and checkpoint names are stable. Names are PyTorch's, so
-- state dicts go both ways: a child's parameter is "<child>.<name>", and a
-- child registered under a number (a Sequential's net[1]) is numbered from 0
-- in names ("0.weight", "encoder.1.bias"), as torch.nn numbers it.
-- Subclasses write init(...) and forward(input); backward comes from the tape.
--
--   local Scale = nn.Module:extend('Scale')
--   function Scale:init(n) self:param('gain', lm.ones(n)) end
--   function Scale:forward(x) return x * self.gain end
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

local Module = {__name = "nn.Module", version = 1}
Module.__index = Module

local help -- lumen.help, loaded on first use

-- A name no module class has (the lookup reached nn.Module, the root of every
-- class): nil, unless it looks like a misspelling of a module method (a
-- prefix, or a few edits away: net:eval -> evaluate), which is an error
-- naming them. Optional fields a layer leaves unset (self.bias of a Linear
-- without bias, a custom layer's own) stay nil. (Classes keep table
-- __index chains, which the REPL's completion follows.)
local function missing(k)
  if type(k) ~= "string" or #k < 3 or k:match("^_") or k == "init" then return nil end
  help = help or require 'lumen.help'
  local names = {}
  for name in pairs(Module) do names[#names + 1] = name end
  if #help.closest(k, names) == 0 then return nil end
  error(help.unknown_message("a module", k, names), 3)
end
setmetatable(Module, {__index = function(_, k)
  local v = missing(k) -- not a tail call: missing's error level counts this frame
  return v
end})

-- Where a layer failed: a position inside the library (lua/lumen/...) gives
-- way to the line that called the module, so the message points at the
-- user's code; a message without a position gets that line too.
local function user_position()
  for level = 3, 64 do
    local info = debug.getinfo(level, "Sl")
    if not info then return nil end
    if info.currentline > 0 and not info.source:find("^@lua/lumen/") then
      return info.short_src .. ":" .. info.currentline .. ": "
    end
  end
end

local function relocate(msg)
  if type(msg) ~= "string" then return msg end
  local where = user_position()
  if not where then return msg end
  local moved
  local rest = msg:match("^lua/lumen/[%w_/]+%.lua:%d+: (.*)$")
  if rest then moved = where .. rest
  elseif not msg:match("^[^\n:]+:%d+: ") then moved = where .. msg
  else return msg end
  local reg = debug.getregistry()
  local kept = reg["lumen.error_traceback"]
  if kept and kept.message == msg then -- a container kept the inner traceback: same message
    kept.message = moved
    kept.traceback = moved .. kept.traceback:sub(#msg + 1)
  end
  return moved
end

local function construct(class, ...)
  local self = setmetatable({
    _param_names = {}, _buffer_names = {}, _child_names = {},
    _hooks = {}, training = true,
  }, class)
  if self.init then
    local ok, err = xpcall(self.init, relocate, self, ...)
    if not ok then error(err, 0) end
  end
  return self
end

local run_call -- Module:call's work, defined with it below
local register_child -- Module:child's work, defined with the assignment that uses it

local function call_module(m, ...)
  local call = m.call
  if call == Module.call then call = run_call end -- Module.call would relocate a second time
  local res = table.pack(xpcall(call, relocate, m, ...))
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n) -- every result (attention returns two)
end

-- A module instance (not a class: classes have no lists of their own).
local function is_instance(v)
  return type(v) == "table" and rawget(v, "_child_names") ~= nil
end

-- Module:child's work; errors at level 3 from here (the caller of child,
-- or the line of an assignment self.fc = ...)
function register_child(self, name, module)
  if type(module) ~= "table" or not module.forward then
    error("child: '" .. tostring(name) .. "' must be a module", 3)
  end
  -- a module inside itself would make every walk over the tree endless
  if is_instance(module) then
    for _, m in ipairs(module:modules()) do
      if rawequal(m, self) then
        error("child: '" .. tostring(name) .. "' contains this module itself (a module cannot be its own child)", 3)
      end
    end
  end
  if rawget(self, name) == nil then self._child_names[#self._child_names + 1] = name end
  rawset(self, name, module)
  return module
end

-- self.fc = nn.Linear(...) registers the layer as self:child('fc', ...)
-- does, as torch.nn's attribute assignment does (else its parameters would
-- be missed by the optimiser, the checkpoint and net:to); any other value
-- is a plain field. (Only new fields reach this: a registered child
-- assigned again is replaced in place by rawset.)
local function assign_field(self, k, v)
  if type(k) == "string" and not k:match("^_") and is_instance(v) and is_instance(self) then
    register_child(self, k, v)
  else
    rawset(self, k, v)
  end
end

--- A subclass named `name`; call it to make instances: Class(args...).
function Module:extend(name)
  local class = setmetatable({}, {__index = self, __call = construct})
  class.__index = class
  class.__newindex = assign_field
  class.__name = name
  class.__call = call_module
  class.__tostring = function(m) return m:describe("") end
  return class
end

--- Registers a parameter (a float tensor that will require gradients).
function Module:param(name, tensor)
  checks.string(name, "name", "param")
  if not lm.is_tensor(tensor) then error("param: '" .. name .. "' must be a tensor", 2) end
  if rawget(self, name) == nil then self._param_names[#self._param_names + 1] = name end
  tensor:requires_grad(true)
  rawset(self, name, tensor)
  return tensor
end

--- Registers a buffer: state saved with the module but never trained.
function Module:buffer(name, tensor)
  checks.string(name, "name", "buffer")
  if not lm.is_tensor(tensor) then error("buffer: '" .. name .. "' must be a tensor", 2) end
  if rawget(self, name) == nil then self._buffer_names[#self._buffer_names + 1] = name end
  rawset(self, name, tensor)
  return tensor
end

--- Registers a child module.
function Module:child(name, module)
  local m = register_child(self, name, module) -- (not a tail call: its errors count this frame)
  return m
end

function Module:forward()
  error(self.__name .. ": forward is not implemented", 2)
end

run_call = function(self, input, ...)
  local outputs = table.pack(self:forward(input, ...))
  local hooks = self._hooks
  -- over a copy: a hook that removes itself (or adds one) leaves this call's list as it was
  if #hooks > 0 then hooks = table.move(hooks, 1, #hooks, 1, {}) end
  for _, hook in ipairs(hooks) do
    local replaced = hook(self, input, outputs[1])
    if replaced ~= nil then outputs[1] = replaced end
  end
  return table.unpack(outputs, 1, outputs.n)
end

--- Calls forward, then the forward hooks fn(module, input, output); an
--- error inside Lumen is reported at the line that called the module.
function Module:call(...)
  local res = table.pack(xpcall(run_call, relocate, self, ...))
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- Module:call without its own xpcall: for containers that catch a child's
-- error themselves (its traceback must be the failing frame's, not a rethrow's)
Module._call_in_place = run_call

--- Adds fn(module, input, output) to run after every forward; returns a
--- handle with :remove().
function Module:register_forward_hook(fn)
  checks.callable(fn, "the hook", "register_forward_hook")
  local hooks = self._hooks
  -- a closure of its own per registration: the handle removes this
  -- registration only (the same fn registered twice is two), and once
  local registered = function(...) return fn(...) end
  hooks[#hooks + 1] = registered
  return {remove = function()
    for i, h in ipairs(hooks) do if h == registered then table.remove(hooks, i) return end end
  end}
end

-- m's child `name` for the walks over the tree. Assigning over a child's
-- slot (net[1] = 5, net.fc = nil) is a plain table write Lua does not pass
-- through __newindex: say so here, not as "attempt to index a number" inside
-- a walk.
local function child_of(m, name)
  local c = m[name]
  if not is_instance(c) then
    local slot = math.type(name) == "integer" and "[" .. name .. "]" or "'" .. tostring(name) .. "'"
    error((user_position() or "") .. string.format("%s: its child %s holds %s, not a module: a child's slot was "
      .. "assigned over (assign a module there, or build the model again)", m.__name, slot, checks.shown(c)), 0)
  end
  return c
end
Module._child_of = child_of -- (nn.Sequential's forward checks a slot it has not run before)

--- The child modules in order, as a list.
function Module:children()
  local out = {}
  for _, name in ipairs(self._child_names) do out[#out + 1] = child_of(self, name) end
  return out
end

-- The optional arguments of the walks over the tree (a name prefix, the
-- list the pairs go into), checked at the caller's line: a user may pass a
-- prefix; a wrong one should not fail inside the walk.
local function walk_arguments(prefix, out, method)
  if prefix ~= nil and type(prefix) ~= "string" then
    error(string.format("%s: the prefix must be a string, got %s", method, checks.shown(prefix)), 3)
  end
  if out ~= nil and type(out) ~= "table" then
    error(string.format("%s: the list to append to must be a table, got %s", method, checks.shown(out)), 3)
  end
  return out or {}, prefix or ""
end

-- A child's name in state dicts: numbered children count from 0, as in torch.nn.
local function state_name(child_name)
  if math.type(child_name) == "integer" then return tostring(child_name - 1) end
  return tostring(child_name)
end

-- {name, tensor} pairs of every parameter under every name it has: a
-- tensor two layers share comes once for each (state dicts name both, as
-- torch's do)
local function every_named_parameter(m, prefix, out)
  for _, name in ipairs(m._param_names) do out[#out + 1] = {prefix .. name, m[name]} end
  for _, name in ipairs(m._child_names) do
    every_named_parameter(child_of(m, name), prefix .. state_name(name) .. ".", out)
  end
  return out
end

--- {name, tensor} pairs of every parameter, depth first, in order. A tensor
--- that several layers share is listed once, under its first name (as
--- torch's named_parameters does): an optimiser must update it once a step.
function Module:named_parameters(prefix, out)
  out, prefix = walk_arguments(prefix, out, "named_parameters")
  local seen = {}
  for _, pair in ipairs(every_named_parameter(self, prefix, {})) do
    if not seen[pair[2]] then
      seen[pair[2]] = true
      out[#out + 1] = pair
    end
  end
  return out
end

function Module:named_buffers(prefix, out)
  out, prefix = walk_arguments(prefix, out, "named_buffers")
  for _, name in ipairs(self._buffer_names) do out[#out + 1] = {prefix .. name, self[name]} end
  for _, name in ipairs(self._child_names) do
    child_of(self, name):named_buffers(prefix .. state_name(name) .. ".", out)
  end
  return out
end

--- {name, module} pairs of this module ("") and every descendant, depth
--- first, with PyTorch's names ("layer1.0.conv1", "0").
function Module:named_modules(prefix, out)
  out, prefix = walk_arguments(prefix, out, "named_modules")
  out[#out + 1] = {prefix, self}
  for _, name in ipairs(self._child_names) do
    local child = state_name(name)
    child_of(self, name):named_modules(prefix == "" and child or prefix .. "." .. child, out)
  end
  return out
end

--- The parameters as a list (the optimisers' input).
function Module:parameters()
  local out = {}
  for _, pair in ipairs(self:named_parameters()) do out[#out + 1] = pair[2] end
  return out
end

--- Every module below (and including) this one, depth first.
function Module:modules(out)
  out = walk_arguments(nil, out, "modules")
  out[#out + 1] = self
  for _, name in ipairs(self._child_names) do child_of(self, name):modules(out) end
  return out
end

function Module:train(mode)
  if mode == nil then mode = true end
  if type(mode) ~= "boolean" then error("train: mode must be true or false, got " .. checks.shown(mode), 2) end
  for _, m in ipairs(self:modules()) do m.training = mode end
  return self
end

function Module:evaluate() return self:train(false) end
--- PyTorch's spelling of evaluate().
function Module:eval() return self:train(false) end

function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p.grad = nil end
end

--- Moves parameters and buffers to a device ('cpu' or 'cuda'), in place:
--- each stays the same Lua tensor (an optimiser made before the move goes
--- on updating it, its gradient moves along, a shared tensor stays shared),
--- as torch's module.to. Every copy is made before any tensor changes, so a
--- refused move (a uint8 buffer on a GPU, memory) leaves the module whole.
function Module:to(device)
  if device ~= "cpu" and device ~= "cuda" then
    error("to: the device must be 'cpu' or 'cuda', got " .. checks.shown(device), 2)
  end
  local moving, copies = {}, {}
  local function plan(t)
    if t:device() ~= device and not copies[t] then
      local grad = t.grad
      local ok, copy = pcall(function() return {t:detach():to(device), grad and grad:to(device)} end)
      if not ok then checks.reraise(copy, 3, "to: ") end
      copies[t] = copy
      moving[#moving + 1] = t
    end
  end
  for _, m in ipairs(self:modules()) do
    for _, name in ipairs(m._param_names) do plan(m[name]) end
    for _, name in ipairs(m._buffer_names) do plan(m[name]) end
  end
  for _, t in ipairs(moving) do t:_take_(copies[t][1], copies[t][2]) end
  return self
end

--- name -> tensor of parameters and buffers, with PyTorch's names.
function Module:state_dict()
  local state = {}
  for _, pair in ipairs(every_named_parameter(self, "", {})) do state[pair[1]] = pair[2]:detach() end
  for _, pair in ipairs(self:named_buffers()) do state[pair[1]] = pair[2] end
  return state
end

--- The names of a state written before Lumen used PyTorch's names: buffers
--- under "buffers." and numbered children counted from 1.
function Module._from_legacy_names(state)
  local out = {}
  for name, t in pairs(state) do
    local parts = {}
    for part in (name:gsub("^buffers%.", "")):gmatch("[^.]+") do
      parts[#parts + 1] = part:match("^%d+$") and tostring(tonumber(part) - 1) or part
    end
    out[table.concat(parts, ".")] = t
  end
  return out
end

local function renamed(state, rename)
  if rename == nil then return state end
  local kind = type(rename)
  if kind ~= "table" and kind ~= "function" then
    error("load_state_dict: rename must be a table or a function, got a " .. kind, 4)
  end
  local out, from = {}, {}
  for name, t in pairs(state) do
    local new
    if kind == "function" then
      new = rename(name)
    else
      new = rename[name]
      if new == nil then new = name end
    end
    if new then -- a name mapped to false (or a function's nil or false) is dropped
      if from[new] then
        error(string.format("load_state_dict: rename maps both '%s' and '%s' to '%s'", from[new], name, new), 4)
      end
      out[new], from[new] = t, name
    end
  end
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- Copies a state (name -> tensor) into the module's parameters and
--- buffers. opts.strict (default true): every missing and unexpected name
--- and every shape mismatch is reported at once as one error; with strict =
--- false what matches is loaded and `missing, unexpected` (lists of names)
--- are returned (a shape mismatch is still an error, as in PyTorch).
--- opts.rename maps the state's names to the module's (a table, false
--- dropping a name, or a function returning the new name, or nil or false
--- to drop it). opts.source names
--- the state in messages (a string `opts` is taken as the source).
local load_state

function Module:load_state_dict(state, opts)
  local absent, unexpected = load_state(self, state, opts) -- not a tail call: errors name the caller
  return absent, unexpected
end

-- the body of load_state_dict and load: errors are raised at their caller
-- (level 3: this function, the public method, the user's line)
function load_state(self, state, opts)
  if type(opts) == "string" then opts = {source = opts} end
  if opts ~= nil and type(opts) ~= "table" then
    error("load_state_dict: options must be a table, got " .. checks.shown(opts), 3)
  end
  opts = opts or {}
  checks.opts(opts, "load_state_dict", {"strict", "rename", "source"}, nil, 4)
  if type(state) ~= "table" then error("load_state_dict: expected a table name -> tensor, got a " .. type(state), 3) end
  for name in pairs(state) do
    if type(name) ~= "string" then
      error("load_state_dict: the state's names must be strings, got " .. checks.shown(name), 3)
    end
  end
  local source = opts.source or "the state"
  state = renamed(state, opts.rename)
  local expected, known = {}, {}
  every_named_parameter(self, "", expected)
  for _, pair in ipairs(self:named_buffers()) do expected[#expected + 1] = pair end
  -- buffers a state may lack (a class's optional_state: name -> fill(t),
  -- which sets the buffer as a state without it means; BatchNorm's
  -- num_batches_tracked, which torch's own load_state_dict fills in)
  local optional, fills = {}, {}
  for _, pair in ipairs(self:named_modules()) do
    for key, fill in pairs(pair[2].optional_state or {}) do
      optional[pair[1] == "" and key or pair[1] .. "." .. key] = fill
    end
  end
  local absent, unexpected, mismatched, loads = {}, {}, {}, {}
  for _, pair in ipairs(expected) do
    local name, dst = pair[1], pair[2]
    known[name] = true
    local src = state[name]
    if src == nil then
      if optional[name] then fills[#fills + 1] = {optional[name], dst} else absent[#absent + 1] = name end
    elseif not lm.is_tensor(src) then
      mismatched[#mismatched + 1] = string.format("%s is a %s in %s, not a tensor", name, type(src), source)
    elseif src:shape_string() ~= dst:shape_string() then
      mismatched[#mismatched + 1] = string.format("%s has shape %s in %s but %s in this %s", name,
        src:shape_string(), source, dst:shape_string(), self.__name)
    else
      loads[#loads + 1] = {dst, src}
    end
  end
  for _, name in ipairs(sorted_keys(state)) do
    if not known[name] then unexpected[#unexpected + 1] = name end
  end
  local strict = opts.strict ~= false
  if #mismatched > 0 or (strict and (#absent > 0 or #unexpected > 0)) then
    local lines = {string.format("load_state_dict: %s does not fit this %s:", source, self.__name)}
    if #absent > 0 then
      local shown = {}
      for i, name in ipairs(absent) do
        local dst
        for _, pair in ipairs(expected) do if pair[1] == name then dst = pair[2] end end
        shown[i] = name .. " " .. dst:shape_string()
      end
      lines[#lines + 1] = "  missing (the module has them, the state does not): " .. table.concat(shown, ", ")
    end
    if #unexpected > 0 then
      lines[#lines + 1] = "  unexpected (the state has them, the module does not): " .. table.concat(unexpected, ", ")
    end
    for _, m in ipairs(mismatched) do lines[#lines + 1] = "  shape: " .. m end
    if strict and (#absent > 0 or #unexpected > 0) then
      lines[#lines + 1] = "  (load what matches with {strict = false}; map names with {rename = ...})"
    end
    error(table.concat(lines, "\n"), 3)
  end
  lm.no_grad(function()
    for _, pair in ipairs(loads) do pair[1]:copy_(pair[2]) end
    for _, pair in ipairs(fills) do pair[1](pair[2]) end
  end)
  return absent, unexpected
end

--- Saves parameters and buffers as safetensors (atomic write), with
--- PyTorch's names: torch's load_state_dict reads the file's tensors.
--- opts.dtype = 'float16' | 'bfloat16' stores floats in half precision.
function Module:save(path, opts)
  checks.string(path, "path", "save")
  opts = checks.options(opts, "save")
  checks.opts(opts, "save", {"dtype", "metadata"})
  local meta = {format = "lumen.nn", module = self.__name, version = tostring(self.version), names = "torch"}
  -- the caller's own strings beside them (what a fit chose, say), never in their place
  for k, v in pairs(opts.metadata or {}) do
    if type(k) ~= "string" or type(v) ~= "string" or meta[k] then
      error(string.format("save: metadata must map names to strings, none of format, module, version, names; "
        .. "got %s = %s", checks.shown(k), checks.shown(v)), 2)
    end
    meta[k] = v
  end
  local ok, err = pcall(lm.save, path, self:state_dict(), {dtype = opts.dtype, metadata = meta})
  if not ok then checks.reraise(err, 2) end
end

--- Loads parameters saved by :save, by earlier Lumen versions (recognised
--- by their metadata) or by PyTorch (safetensors of a state_dict); opts as
--- in load_state_dict (strict, rename).
function Module:load(path, opts)
  checks.string(path, "path", "load")
  opts = checks.options(opts, "load")
  checks.opts(opts, "load", {"strict", "rename", "source"})
  -- a file lm.load refuses is the caller's error, reported at its line
  local ok, state, meta = pcall(lm.load, path)
  if not ok then checks.reraise(state, 2) end
  if meta.format == "lumen.nn" and meta.names ~= "torch" then state = Module._from_legacy_names(state) end
  local o = {source = "'" .. path .. "'"}
  for k, v in pairs(opts) do o[k] = v end
  load_state(self, state, o)
  return self
end

--- Architecture as text; layers override extra_repr() for their settings.
function Module:extra_repr() return "" end

function Module:describe(indent)
  indent = indent or ""
  if type(indent) ~= "string" then error("describe: indent must be a string, got " .. checks.shown(indent), 2) end
  local line = self.__name .. (self:extra_repr() ~= "" and "(" .. self:extra_repr() .. ")" or "")
  if #self._child_names == 0 then return line end
  local parts = {line .. " {"}
  for _, name in ipairs(self._child_names) do
    parts[#parts + 1] = indent .. "  (" .. name .. "): " .. child_of(self, name):describe(indent .. "  ")
  end
  parts[#parts + 1] = indent .. "}"
  return table.concat(parts, "\n")
end

return Module
