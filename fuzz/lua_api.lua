-- Calls every function Lumen gives Lua, with arguments drawn at random
-- (wrong types, empty and odd shapes, views, freed tensors, extreme numbers,
-- foreign userdata, cyclic tables), and requires each call to return or to
-- raise a Lua error: a crash, a sanitizer report or a hang is the failure.
-- Meant for the sanitizer builds (scripts/fuzz.sh, the ASan ctest), where
--   ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=1024
-- turns an absurd allocation into the out-of-memory error Lumen must raise.
--
--   lumen fuzz/lua_api.lua [--seed N] [--calls N] [--seconds S] [--per-function-seconds S]
--                          [--only PATTERN]
--                          [--after NAME] [--skip NAME,NAME] [--log FILE] [--report]
--                          [--strict]
--
-- Each call is written to the log (default lua_api_calls.log in the current
-- directory, which should be a scratch directory: some calls write files)
-- and flushed before it runs, so the last line names a call that crashed;
-- rerun with the same --seed and --only to reproduce it, or go on with the
-- functions after it (--after, in the order of their names). --report prints
-- the errors that are not clear messages (Lua's own "attempt to index ..."
-- from inside Lumen) per function; --strict also fails the run on them.
local lm = require 'lumen'

local opts = {seed = 1, calls = 20, seconds = math.huge, ["per-function-seconds"] = math.huge,
  log = "lua_api_calls.log", after = "", skip = ""}
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--report" or a == "--strict" then
      opts[a:sub(3)] = true
      i = i + 1
    elseif a:match("^%-%-") and arg[i + 1] then
      local key = a:sub(3)
      if opts[key] == nil and key ~= "only" then error("lua_api.lua: unknown option " .. a) end
      local text = key == "only" or key == "log" or key == "after" or key == "skip"
      opts[key] = text and arg[i + 1] or assert(tonumber(arg[i + 1]), a)
      i = i + 2
    else
      error("lua_api.lua: unknown argument " .. a)
    end
  end
end

-- The fuzzer's own choices come from Lua's generator, seeded apart from
-- Lumen's stream (which the calls themselves reseed and draw from).
math.randomseed(opts.seed)
local function pick(list) return list[math.random(#list)] end
local function chance(p) return math.random() < p end

-- ---- values ------------------------------------------------------------------------------------

local NUMBERS = {0, 1, 2, 3, 4, -1, -2, 0.5, -0.5, 1e-30, 7, 16, 1e9, -1e9, 2147483647, 2147483648,
  -2147483649, 4294967297, 2 ^ 31, 2 ^ 53, 1e300, -1e300, math.huge, -math.huge, 0 / 0, math.maxinteger,
  math.mininteger, 0.0, -0.0, 1.5, 10}
local SMALL = {0, 1, 1, 2, 2, 3, 3, 4, -1, 8}
local STRINGS = {"", "cpu", "cuda", "cuda:1", "float32", "float16", "bfloat16", "float64", "int32",
  "uint8", "bool", "mean", "sum", "none", "relu", "gelu", "tanh", "elu", "min", "max", "triangular",
  "sawtooth", "auto", "im2col", "winograd", "direct", "cifar", "imagenet", "x", "weight", "0.weight",
  "missing.safetensors", "out.png", "out.safetensors", "out.json", "sub/dir/x", "a\0b", "%s%s%n",
  string.rep("z", 5000), "fuzzfile", ".", "linear", "nearest"}
local OPTION_KEYS = {"dim", "keepdim", "reduction", "stride", "padding", "device", "dtype", "strict",
  "rename", "lr", "momentum", "weight_decay", "beta1", "beta2", "eps", "batch_size", "shuffle",
  "drop_last", "seed", "epochs", "size", "channels", "transform", "mode", "min", "max", "period",
  "decay", "patience", "latent", "hidden", "depth", "width", "height", "title", "rect", "select",
  "pool", "num_classes", "stem", "image_size", "patch_size", "heads", "mlp_dim", "affine",
  "momentum", "track_running_stats", "bias", "approximate", "batch_first", "dropout", "attn_mask",
  "key_padding_mask", "need_weights", "weights", "sigma", "alpha", "steps", "target", "labels",
  "fraction", "noise", "clip", "normalize", "inplace", "groups", "dilation", "kernel_size",
  "ceil_mode", "count_include_pad", "graph", "progress", "quiet", "out", "model", "data", "loss",
  "optimizer", "scheduler", "validation", "x", "y", "n", "k", "classes", "metadata", "x_label"}

local gen -- forward declaration: values nest

-- Fresh tensors each call: calls change them in place, free them, reshape them.
local TENSORS = {
  function() return lm.zeros(0) end,
  function() return lm.zeros(2, 0, 3) end,
  function() return lm.tensor(2.5) end,
  function() return lm.randn(3) end,
  function() return lm.randn(2, 3) end,
  function() return lm.randn(3, 2):t() end,
  function() return lm.randn(4, 4):narrow(1, 2, 2) end,
  function() return lm.randn(1, 3):expand(4, 3) end,
  function() return lm.randn(2, 3, 4, 5) end,
  function() return lm.randn(1, 1, 8, 8) end,
  function() return lm.randn(2, 3, 8, 8) end,
  function() return lm.randn(4, 10) end,
  function() return lm.randn(5, 784) end,
  function() return lm.randn(2, 4, 4) end,
  function() return lm.tensor({1, 2, 3}):int() end,
  function() return lm.tensor({1, 2, 10}):int() end,
  function() return lm.tensor({0, -1, 2 ^ 30}):int() end,
  function() return lm.tensor({1, 200, 3}):byte() end,
  function() return lm.randn(2, 3):requires_grad(true) end,
  function() return lm.randn(2, 3):requires_grad(true) * 2 end,
  function() return lm.tensor({0 / 0, math.huge, -math.huge, 1}) end,
  function() local t = lm.randn(2, 3); t:free(); return t end,
  function() return lm.randn(3, 4, 5):permute(3, 1, 2) end,
  function() return lm.rand(6, 6):select(1, 2) end,
}

local function gen_tensor()
  local ok, t = pcall(pick(TENSORS))
  return ok and t or lm.zeros(1)
end

local function gen_list(depth)
  local t = {}
  for i = 1, math.random(0, 5) do t[i] = chance(0.8) and pick(SMALL) or gen(depth + 1) end
  return t
end

local function gen_options(depth)
  local t = {}
  for _ = 1, math.random(0, 4) do t[pick(OPTION_KEYS)] = gen(depth + 1) end
  return t
end

local MODULES = {
  function() return lm.nn.Linear(3, 2) end,
  function() return lm.nn.Sequential(lm.nn.Linear(4, 3), lm.nn.ELU(), lm.nn.Linear(3, 2)) end,
  function() return lm.nn.Conv2d(3, 4, 3) end,
  function() return lm.nn.BatchNorm2d(3) end,
  function() return lm.nn.MultiheadAttention(4, 2) end,
  function() return lm.nn.LayerNorm(5) end,
}

local FUNCTIONS = {
  function() end,
  function(...) return ... end,
  function() error("raised by the fuzzer's callback") end,
  function() return lm.randn(2, 3) end,
  function() coroutine.yield() end,
  function(x) return x end,
}

local KINDS = {"nil", "boolean", "number", "number", "small", "string", "string", "list", "options",
  "tensor", "tensor", "tensor", "function", "module", "foreign", "cyclic", "set"}

function gen(depth)
  depth = depth or 0
  local kind = pick(KINDS)
  if depth > 2 and (kind == "list" or kind == "options" or kind == "set") then kind = "small" end
  if kind == "nil" then return nil
  elseif kind == "boolean" then return chance(0.5)
  elseif kind == "number" then return pick(NUMBERS)
  elseif kind == "small" then return pick(SMALL)
  elseif kind == "string" then return pick(STRINGS)
  elseif kind == "list" then return gen_list(depth)
  elseif kind == "options" then return gen_options(depth)
  elseif kind == "tensor" then return gen_tensor()
  elseif kind == "function" then return pick(FUNCTIONS)
  elseif kind == "module" then
    local ok, m = pcall(pick(MODULES))
    return ok and m or nil
  elseif kind == "foreign" then return pick({io.stdout, coroutine.create(function() end), print})
  elseif kind == "cyclic" then
    local t = {1, 2}
    t[3], t.self = t, t
    return t
  else -- a data set, right or nearly
    return {x = gen_tensor(), y = chance(0.5) and lm.tensor({1, 2}):int() or gen_tensor()}
  end
end

local function describe(v, depth)
  depth = depth or 0
  local ty = type(v)
  if ty == "string" then
    return #v > 40 and string.format("<string of %d>", #v) or string.format("%q", v)
  elseif ty == "number" then
    return math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
  elseif lm.is_tensor(v) then
    local ok, s = pcall(function() return v:dtype() .. "[" .. v:shape_string() .. "]" end)
    return "tensor " .. (ok and s or "(freed)")
  elseif ty == "table" then
    if depth > 1 then return "{...}" end
    local parts = {}
    for k, x in pairs(v) do
      if x == v then parts[#parts + 1] = tostring(k) .. "=<self>"
      else parts[#parts + 1] = tostring(k) .. "=" .. describe(x, depth + 1) end
      if #parts > 6 then parts[#parts + 1] = "..."; break end
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return ty
end

-- ---- targets -----------------------------------------------------------------------------------

-- Left out: what ends or takes over the process, waits for input or for
-- other ranks, or changes what later calls depend on for their bounds.
local SKIP = {
  ["lm.help"] = true, -- prints pages; fine, but only noise here
  ["lm._catch_interrupt"] = true, -- installs a SIGINT handler
  ["lm.set_num_threads"] = "bounded", -- fuzzed below with sane and insane counts, then reset
}
-- The largest reference networks: a call without options builds 40 to 130
-- million parameters (seconds, and minutes under ASan); their options are
-- checked by the code of a smaller sibling, fuzzed (resnet50's, ...).
-- So are the middle ones whose code a fuzzed sibling runs with other sizes
-- (resnet50's for ResNeXt-50, efficientnet_b0's for B1-B4 and V2-S): each
-- call without options builds 8 to 25 million parameters, seconds under ASan.
for _, name in ipairs{"resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2",
    "wide_resnet101_2", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_m",
    "efficientnet_v2_l", "resnext50_32x4d", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_v2_s"} do
  SKIP["lm.models." .. name] = true
end
-- The DenseNet presets are lm.models.densenet's code (fuzzed) with fixed
-- sizes, 8 to 29 million parameters each call without options. Every VGG
-- is 130 to 145 million (its classifier alone 120 million) and none is
-- small: their options are checked by tests/lua/models_vgg_densenet_spec.lua.
for _, name in ipairs{"densenet121", "densenet161", "densenet169", "densenet201"} do
  SKIP["lm.models." .. name] = true
end
for _, arch in ipairs{"vgg11", "vgg13", "vgg16", "vgg19"} do
  SKIP["lm.models." .. arch], SKIP["lm.models." .. arch .. "_bn"] = true, true
end
-- torchvision's named ConvNeXts and RegNets beyond the smallest of each
-- family: the same code with other fixed sizes, and a call without options
-- builds 6 to 645 million parameters (minutes and gigabytes under ASan);
-- lm.models.convnext and lm.models.regnet take every option they take
for _, name in ipairs{"convnext_tiny", "convnext_small", "convnext_base", "convnext_large", "regnet_y_800mf",
  "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf", "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf",
  "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf", "regnet_x_16gf", "regnet_x_32gf"} do
  SKIP["lm.models." .. name] = true
end

for name in opts.skip:gmatch("[^,]+") do SKIP[name] = true end

local targets = {}
local seen = {}
local function walk(t, prefix, depth)
  if seen[t] or depth > 3 then return end
  seen[t] = true
  local keys = {}
  for k in pairs(t) do if type(k) == "string" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = rawget(t, k)
    local name = prefix .. k
    if type(v) == "function" and not SKIP[name] then
      -- public: no internal (_) part, and not a class's method reached
      -- through the class (lm.nn.Linear.forward): those are fuzzed on objects
      local public = not name:find("%._") and not name:find("%.%u[%w_]*%.")
      targets[#targets + 1] = {name = name, fn = v, public = public}
    elseif type(v) == "table" then walk(v, name .. ".", depth + 1) end
  end
end
walk(lm, "lm.", 0)

-- Methods of the objects Lumen makes, called on a fresh object each time.
local OBJECTS = {
  optimizer = function() return lm.optim.Adam(lm.nn.Linear(3, 2):parameters(), {lr = 1e-3}) end,
  sgd = function() return lm.optim.SGD(lm.nn.Linear(3, 2):parameters(), {lr = 0.1, momentum = 0.9}) end,
  schedule = function()
    return lm.optim.CyclicLR(lm.optim.SGD(lm.nn.Linear(3, 2):parameters(), {lr = 0.1}), {max = 0.1, period = 4})
  end,
  stopper = function() return lm.optim.EarlyStopping{patience = 2} end,
  figure = function() return lm.plot.figure{width = 64, height = 48} end,
  axes = function() return lm.plot.figure{width = 64, height = 48}:axes{} end,
  loader = function()
    return lm.data.loader({x = lm.randn(10, 4), y = lm.tensor({1, 2, 1, 2, 1, 2, 1, 2, 1, 2}):int()}, {batch_size = 4})
  end,
  writer = function() return lm.safetensors_writer("writer.safetensors", {{name = "a", shape = {2, 3}}}) end,
  recorder = function()
    return lm.introspect.Recorder(lm.nn.Sequential(lm.nn.Linear(4, 3), lm.nn.ELU(), lm.nn.Linear(3, 2)))
  end,
  estimator = function() return lm.introspect.Estimator{latent = 2, hidden = 8, depth = 2} end,
  linear = function() return lm.nn.Linear(3, 2) end,
  sequential = function()
    return lm.nn.Sequential(lm.nn.Linear(4, 3), lm.nn.ELU(), lm.nn.Dropout(0.5), lm.nn.Linear(3, 2))
  end,
  conv = function() return lm.nn.Conv2d(3, 4, 3, {padding = 1}) end,
  batchnorm = function() return lm.nn.BatchNorm2d(3) end,
  layernorm = function() return lm.nn.LayerNorm(5) end,
  attention = function() return lm.nn.MultiheadAttention(4, 2) end,
  encoder_layer = function() return lm.nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 8}) end,
  embedding = function() return lm.nn.Embedding(10, 4) end,
  pool = function() return lm.nn.MaxPool2d(2) end,
  prelu = function() return lm.nn.PReLU(3) end, -- a parameter applied along dimension 2
  net1 = function() return lm.models.net1() end,
  tensor = function() return lm.randn(3, 4) end,
  vae = function() return lm.introspect.InfoVAE{inputs = 6, latent = 2, hidden = 8, depth = 2} end,
}

local object_names = {}
for oname in pairs(OBJECTS) do object_names[#object_names + 1] = oname end
table.sort(object_names)
for _, oname in ipairs(object_names) do
  local make = OBJECTS[oname]
  local ok, obj = pcall(make)
  if ok and obj ~= nil then
    local names = {}
    local function collect(t, d)
      if type(t) ~= "table" or d > 4 then return end
      for k, v in pairs(t) do
        if type(k) == "string" and type(v) == "function" and k ~= "__gc" then names[k] = true end
      end
      local mt = getmetatable(t)
      if mt and type(mt.__index) == "table" then collect(mt.__index, d + 1) end
    end
    if lm.is_tensor(obj) then
      collect(lm.Tensor, 0) -- a tensor's __index is a function
    else
      collect(obj, 0)
      local mt = getmetatable(obj)
      if mt and type(mt.__index) == "table" then collect(mt.__index, 0) end
    end
    local sorted = {}
    for k in pairs(names) do sorted[#sorted + 1] = k end
    table.sort(sorted)
    for _, k in ipairs(sorted) do
      targets[#targets + 1] = {name = oname .. ":" .. k, method = k, make = make, public = k:sub(1, 1) ~= "_"}
    end
  elseif not ok then
    io.stderr:write(string.format("lua_api.lua: could not make a %s: %s\n", oname, tostring(obj)))
  end
end
table.sort(targets, function(a, b) return a.name < b.name end)

-- ---- the calls ---------------------------------------------------------------------------------

local log = assert(io.open(opts.log, "w"))
local INSTRUCTION_LIMIT = 20000000 -- a call that runs this many Lua instructions is stopped
local function call_limited(fn, args, n)
  local count = 0
  debug.sethook(function()
    count = count + 1
    if count > INSTRUCTION_LIMIT / 100000 then error("fuzz: the call ran too long", 2) end
  end, "", 100000)
  local res = table.pack(pcall(fn, table.unpack(args, 1, n)))
  debug.sethook()
  return res
end

-- Errors that are Lua's own rather than Lumen's, raised inside Lumen's Lua
-- code: they do not say what the caller did wrong. (A C function's "bad
-- argument #2 to '?'" names the function in real use, t:clamp{} says
-- 'clamp'; here it is called through a variable.) Counted for public
-- functions, and for methods called on their own object.
local UNCLEAR = {"attempt to index", "attempt to call", "attempt to perform arithmetic",
  "attempt to compare", "attempt to concatenate", "attempt to get length", "stack overflow"}

local unclear = {}
local calls, errors, started = 0, 0, os.clock()
local real_threads = lm.get_num_threads()
local real_max_pixels = lm.image.max_pixels()

for _, target in ipairs(targets) do
  if (not opts.only or target.name:find(opts.only, 1, true)) and target.name > opts.after then
    -- each function's calls from its own seed, so --only and --after draw the same calls
    local h = 0
    for i = 1, #target.name do h = (h * 31 + target.name:byte(i)) % 2147483647 end
    math.randomseed(opts.seed, h)
    lm.manual_seed(h)
    local target_started = os.clock()
    for _ = 1, opts.calls do
      if os.clock() - started > opts.seconds then break end
      if os.clock() - target_started > opts["per-function-seconds"] then break end
      local fn, args, n = target.fn, {}, math.random(0, 4)
      local self_desc, reported = "", target.public
      if target.method then
        local ok, obj = pcall(target.make)
        if not ok or obj == nil then break end
        fn = obj[target.method]
        local self = chance(0.85) and obj or gen()
        reported = reported and self == obj
        args[1] = self
        self_desc = "self=" .. (self == obj and "object" or describe(self)) .. ", "
        for i = 2, n + 1 do args[i] = gen() end
        n = n + 1
      else
        for i = 1, n do args[i] = gen() end
      end
      if type(fn) ~= "function" then break end
      local parts = {}
      for i = target.method and 2 or 1, n do parts[#parts + 1] = describe(args[i]) end
      log:write(string.format("%d %s(%s%s)\n", calls + 1, target.name, self_desc, table.concat(parts, ", ")))
      log:flush()
      local res = call_limited(fn, args, n)
      calls = calls + 1
      if not res[1] then
        errors = errors + 1
        local msg = res[2]
        if type(msg) ~= "string" then
          msg = "a non-string error: " .. tostring(msg)
        end
        for _, pattern in ipairs(reported and UNCLEAR or {}) do
          if msg:find(pattern) and not msg:find("raised by the fuzzer", 1, true)
              and not msg:find("fuzz: the call ran too long", 1, true) then
            unclear[target.name] = unclear[target.name] or {}
            table.insert(unclear[target.name], msg)
            break
          end
        end
      end
      if lm.get_num_threads() ~= real_threads then pcall(lm.set_num_threads, real_threads) end
      if lm.image.max_pixels() ~= real_max_pixels then lm.image.set_max_pixels(real_max_pixels) end
      if lm.is_grad_enabled and not lm.is_grad_enabled() then lm.set_grad_enabled(true) end
      if lm.get_autocast and lm.get_autocast() then pcall(lm._set_autocast, nil) end
    end
    collectgarbage()
  end
end

-- set_num_threads on its own: refused or honoured, never a crash
for _, n in ipairs({0, -1, 1, 3, 2 ^ 31, 0 / 0, "2", 1e9}) do
  log:write("set_num_threads(" .. describe(n) .. ")\n")
  log:flush()
  pcall(lm.set_num_threads, n)
  calls = calls + 1
end
lm.set_num_threads(real_threads)
log:close()

local n_unclear = 0
for _ in pairs(unclear) do n_unclear = n_unclear + 1 end
print(string.format("lua_api: %d functions, %d calls, %d errors raised, %d functions with an unclear error, %.1f s",
  #targets, calls, errors, n_unclear, os.clock() - started))
if opts.report or opts.strict then
  local names = {}
  for k in pairs(unclear) do names[#names + 1] = k end
  table.sort(names)
  for _, name in ipairs(names) do
    local msgs, seen_msg = {}, {}
    for _, m in ipairs(unclear[name]) do
      if not seen_msg[m] then seen_msg[m] = true; msgs[#msgs + 1] = m end
    end
    print(name .. ": " .. #unclear[name] .. " x, e.g. " .. msgs[1]:gsub("\n.*", ""))
  end
end
if calls == 0 then
  print("lua_api: no call was made")
  os.exit(1)
end
if opts.strict and n_unclear > 0 then
  print("lua_api: the functions above raised Lua's own errors instead of saying what was wrong")
  os.exit(1)
end
