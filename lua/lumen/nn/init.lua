-- lm.nn: modules (layers and containers) over lm.nn.functional.
--
-- Initialisation, per layer type (from the seeded RNG):
--   Linear: Glorot (Xavier) uniform weights, U(-a, a) with
--     a = sqrt(6 / (in + out)), zero biases. docs/design.md: the paper's 12-layer
--     ELU/sigmoid/MSE Net1 does not train with He or PyTorch's default.
--   Conv2d: He (Kaiming) uniform for ELU/ReLU stacks, a = sqrt(6 / fan_in)
--     with fan_in = in / groups * kh * kw (as torch), zero biases.
--   Both accept {init = 'glorot' | 'he' | 'pytorch'} ('pytorch':
--   U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases).
local lm = require 'lumen'
local F = require 'lumen.nn.functional'
local Module = require 'lumen.nn.module'
local checks = require 'lumen.nn.checks'
local initializers = require 'lumen.nn.initializers'

local nn = {Module = Module, functional = F}

-- the weight of a layer with torch.nn.init's initialisers (lm.nn.init: one
-- definition of the fans and bounds): glorot is xavier_uniform_, he is
-- kaiming_uniform_ for ReLU (sqrt(6 / fan_in)), pytorch is torch's own
-- kaiming_uniform_ with a = sqrt(5) (1 / sqrt(fan_in))
local function init_weight(shape, scheme)
  local w = lm.zeros(shape)
  if scheme == "glorot" then return initializers.xavier_uniform_(w) end
  if scheme == "he" then return initializers.kaiming_uniform_(w, {nonlinearity = "relu"}) end
  if scheme == "pytorch" then return initializers.kaiming_uniform_(w, math.sqrt(5)) end
  error("unknown init '" .. tostring(scheme) .. "' (glorot, he or pytorch)", 3)
end

-- torch's bias for its default init: U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))
local function pytorch_bias(weight)
  local bound = 1 / math.sqrt((initializers._fans(weight)))
  return initializers.uniform_(lm.zeros(weight:size(1)), -bound, bound)
end

local check_size = checks.size
local conv_args = require 'lumen.nn.conv_args'

-- ---- containers -------------------------------------------------------------------------------

nn.Sequential = Module:extend("nn.Sequential")

function nn.Sequential:init(...)
  for i, m in ipairs({...}) do self:child(i, m) end
end

--- Appends a module; returns the container.
function nn.Sequential:add(m)
  self:child(#self._child_names + 1, m)
  return self
end

-- Where a child failed: the message gets the module's place, and the
-- traceback from the failing frame is kept in the registry under
-- "lumen.error_traceback" with the message it belongs to. The rethrow starts
-- a new traceback above this container; the lumen host prints the kept one
-- instead (bindings/lumen_host.c), so the frames inside the child survive.
local function child_failed(i, child)
  return function(msg)
    if type(msg) ~= "string" then return msg end
    local reg = debug.getregistry()
    local kept = reg["lumen.error_traceback"]
    if kept and kept.message == msg then return msg end -- an inner container placed it already
    if not msg:find("in module %d+ %(") then
      msg = string.format("%s (in module %d (%s) of nn.Sequential)", msg, i, child.__name)
    end
    reg["lumen.error_traceback"] = {message = msg, traceback = debug.traceback(msg, 2)}
    return msg
  end
end

-- Whether m is an instance of exactly `class`, as lm.nn made it: no hooks, no
-- forward or call of its own (so running it fused changes nothing visible).
local lm_forward = {} -- the forward of each class fused_span covers, as lm.nn defines it
local function plain(m, class)
  return getmetatable(m) == class and #m._hooks == 0 and m.forward == lm_forward[class]
    and m.call == Module.call
end

-- For the layer files' fusions: whether m is a `class` as Lumen defines it
-- (no forward hook, neither forward nor call replaced), which a fusion may
-- then run with its neighbours as one op; and the classes it applies to.
function nn._is_plain(m, class) return plain(m, class) end
function nn._fusable_class(class) lm_forward[class] = class.forward end

-- F.linear and F.dropout as lm.nn.functional defines them: code that wraps
-- them (lm.dist.global_batch_random draws each rank's rows of a global
-- batch's dropout mask) gets its own functions called, unfused.
local plain_linear, plain_dropout = F.linear, F.dropout

-- A Linear at place i followed by ELU (alpha > 0) or ReLU and/or Dropout runs
-- as one op (F._linear_act: bit for bit the same values, gradients and random
-- stream, one pass over the output instead of three). Returns the place of
-- the last child it covers and the op's arguments, or nil.
local function fused_span(self, i, x)
  local names = self._child_names
  if not (plain(self[names[i]], nn.Linear) and F.linear == plain_linear and lm.is_tensor(x)
    and x:dim() == 2) then
    return nil
  end
  local last, act, alpha, keep = i, "none", 1, 1
  local m = self[names[last + 1]]
  if m and plain(m, nn.ELU) and type(m.alpha) == "number" and m.alpha > 0 then
    last, act, alpha = last + 1, "elu", m.alpha
  elseif m and plain(m, nn.ReLU) then
    last, act = last + 1, "relu"
  end
  m = self[names[last + 1]]
  if m and plain(m, nn.Dropout) and F.dropout == plain_dropout then
    last = last + 1
    if m.training and m.p > 0 then keep = 1 - m.p end -- F.dropout's keep probability
  end
  if last == i then return nil end
  return last, act, alpha, keep
end

--- net.fuse = false runs every child on its own (default true: a Linear
--- with the ELU or ReLU and the Dropout after it runs as one op, and so
--- does a batch norm in evaluation with the ReLU after it).
nn.Sequential.fuse = true

function nn.Sequential:forward(x)
  local handlers = self._on_error or {}
  self._on_error = handlers
  local names, i = self._child_names, 1
  while i <= #names do
    local child = self[names[i]]
    local h = handlers[i]
    if not h or h.child ~= child then -- made once per place, not per call
      nn.Module._child_of(self, names[i]) -- a slot assigned over (net[2] = nil): a clear error
      h = {child = child, fn = child_failed(i, child)}
      handlers[i] = h
    end
    local last, act, alpha, keep
    if self.fuse then last, act, alpha, keep = fused_span(self, i, x) end
    local ok, out
    if last then
      ok, out = xpcall(F._linear_act, h.fn, x, child.weight, child.bias, act, alpha, keep)
    elseif self.fuse and names[i + 2] ~= nil
      and nn._conv_bn_fusable(child, self[names[i + 1]], self[names[i + 2]]) then
      -- a convolution, a batch norm in evaluation and its ReLU: one op
      last = i + 2
      ok, out = xpcall(nn._conv_bn_then, h.fn, child, self[names[i + 1]], x, nil, self[names[i + 2]])
    elseif self.fuse and nn._conv_bn_fusable(child, self[names[i + 1]]) then
      -- a convolution and a batch norm in evaluation: one op
      last = i + 1
      ok, out = xpcall(nn._conv_bn_then, h.fn, child, self[names[i + 1]], x, nil, nil)
    elseif self.fuse and nn._bn_fusable(child, self[names[i + 1]]) then
      -- a batch norm and its ReLU: one pass in evaluation, or the ReLU in the
      -- batch norm's passes in training on the CPU (nn._bn_then)
      last = i + 1
      ok, out = xpcall(nn._bn_then, h.fn, child, x, nil, self[names[i + 1]])
    else
      local call = child.call
      if call == Module.call then call = Module._call_in_place end -- (h.fn keeps the failing frame)
      ok, out = xpcall(call, h.fn, child, x)
    end
    if not ok then error(out, 0) end
    x = out
    i = (last or i) + 1
  end
  return x
end

function nn.Sequential:size() return #self._child_names end
function nn.Sequential:get(i) return self[i] end

-- ---- layers with parameters --------------------------------------------------------------------

nn.Linear = Module:extend("nn.Linear")

function nn.Linear:init(inputs, outputs, opts)
  check_size(inputs, "inputs", "nn.Linear")
  check_size(outputs, "outputs", "nn.Linear")
  opts = checks.opts(opts, "nn.Linear", {init = true, bias = true})
  self.inputs, self.outputs = inputs, outputs
  local scheme = opts.init or "glorot"
  self:param("weight", init_weight({outputs, inputs}, scheme))
  if checks.flag(opts.bias, true, "bias", "nn.Linear") then
    self:param("bias", scheme == "pytorch" and pytorch_bias(self.weight) or lm.zeros(outputs))
  end
end

function nn.Linear:forward(x) return F.linear(x, self.weight, self.bias) end
function nn.Linear:extra_repr() return self.inputs .. " -> " .. self.outputs end

nn.Conv2d = Module:extend("nn.Conv2d")

-- torch.nn.Conv2d's options Lumen computes only at their defaults
local CONV_UNSUPPORTED = {
  padding_mode = {accepts = function(v) return v == "zeros" end, reason = "Lumen pads with zeros"},
}

-- torch's padding as F.conv2d takes it: a size or a pair, 'valid' is 0, and
-- 'same' (stride 1) the sizes that keep the output's where both sides get
-- the same, else 'same' itself (F.conv2d pads the odd row or column at the
-- bottom or right, as torch)
local function conv_padding(padding, kernel, stride, dilation)
  if padding == nil or padding == "valid" then return 0 end
  if padding == "same" then
    if stride[1] ~= 1 or stride[2] ~= 1 then
      error("nn.Conv2d: padding 'same' needs stride 1, as in torch, got stride " .. conv_args.shown(
        conv_args.compact(stride)), 4)
    end
    local before, after = conv_args.same_padding(kernel, dilation)
    if before[1] ~= after[1] or before[2] ~= after[2] then return "same" end
    return conv_args.compact(before)
  end
  return conv_args.compact(conv_args.pair(padding, 0, "padding", "nn.Conv2d", 4, ", 'same' or 'valid'"))
end

--- nn.Conv2d(in, out, kernel [, opts]): kernel a size or {kh, kw};
--- opts.stride (1), opts.padding (0, 'same' or 'valid') and opts.dilation
--- (1) a size or {h, w}; opts.groups (1: in and out divisible by it; the
--- weight is [out, in / groups, kh, kw], as torch's), opts.bias (true),
--- opts.init.
function nn.Conv2d:init(inputs, outputs, kernel, opts)
  check_size(inputs, "input channels", "nn.Conv2d")
  check_size(outputs, "output channels", "nn.Conv2d")
  local k = conv_args.pair(kernel, 1, "kernel size", "nn.Conv2d", 3)
  opts = checks.opts(opts, "nn.Conv2d", {stride = true, padding = true, dilation = true, groups = true, init = true,
    bias = true}, CONV_UNSUPPORTED)
  local stride = conv_args.pair(opts.stride or 1, 1, "stride", "nn.Conv2d", 3)
  check_size(opts.groups or 1, "groups", "nn.Conv2d")
  local groups = opts.groups or 1
  if inputs % groups ~= 0 or outputs % groups ~= 0 then
    error(string.format("nn.Conv2d: groups (%d) must divide the input channels (%d) and the output channels (%d)",
      groups, inputs, outputs), 3)
  end
  local dilation = conv_args.pair(opts.dilation or 1, 1, "dilation", "nn.Conv2d", 3)
  -- one number where both dimensions agree (what torch's repr and F.conv2d take)
  self.inputs, self.outputs, self.kernel = inputs, outputs, conv_args.compact(k)
  self.stride, self.dilation, self.groups = conv_args.compact(stride), conv_args.compact(dilation), groups
  self.padding = conv_padding(opts.padding, k, stride, dilation)
  local scheme = opts.init or "he"
  self:param("weight", init_weight({outputs, inputs // groups, k[1], k[2]}, scheme))
  if checks.flag(opts.bias, true, "bias", "nn.Conv2d") then
    self:param("bias", scheme == "pytorch" and pytorch_bias(self.weight) or lm.zeros(outputs))
  end
end

--- The options F.conv2d takes for this layer.
function nn.Conv2d:_conv_opts()
  return {stride = self.stride, padding = self.padding, dilation = self.dilation, groups = self.groups}
end

function nn.Conv2d:forward(x)
  return F.conv2d(x, self.weight, self.bias, self:_conv_opts())
end

nn._fusable_class(nn.Conv2d)

function nn.Conv2d:extra_repr()
  local k = self.kernel
  local s = string.format("%d -> %d, %s, stride %s, padding %s", self.inputs, self.outputs,
    type(k) == "table" and k[1] .. "x" .. k[2] or k .. "x" .. k, conv_args.shown(self.stride),
    conv_args.shown(self.padding))
  if self.dilation ~= 1 then s = s .. ", dilation " .. conv_args.shown(self.dilation) end
  if self.groups ~= 1 then s = s .. ", groups " .. self.groups end
  return s
end

-- ---- parameter-free layers ------------------------------------------------------------------------

local function simple(name, forward, repr)
  local class = Module:extend(name)
  class.forward = forward
  if repr then class.extra_repr = repr end
  return class
end

nn.ELU = simple("nn.ELU", function(self, x) return x:elu(self.alpha) end,
  function(self) return self.alpha ~= 1 and tostring(self.alpha) or "" end)
function nn.ELU:init(alpha) self.alpha = alpha or 1 end
nn.ReLU = simple("nn.ReLU", function(_, x) return x:relu() end)
--- nn.LeakyReLU([negative_slope]): torch's default slope 0.01 and repr (the slope always shown).
nn.LeakyReLU = simple("nn.LeakyReLU", function(self, x) return x:leaky_relu(self.negative_slope) end,
  function(self) return "negative_slope = " .. tostring(self.negative_slope) end)
function nn.LeakyReLU:init(negative_slope)
  if negative_slope ~= nil then checks.number(negative_slope, "negative_slope", "nn.LeakyReLU") end
  self.negative_slope = negative_slope or 0.01
end
--- nn.Softplus([beta [, threshold]]): F.softplus, torch's defaults (1, 20) and repr.
nn.Softplus = simple("nn.Softplus", function(self, x) return F.softplus(x, self.beta, self.threshold) end,
  function(self) return string.format("beta = %s, threshold = %s", tostring(self.beta), tostring(self.threshold)) end)
function nn.Softplus:init(beta, threshold)
  if beta ~= nil then checks.number(beta, "beta", "nn.Softplus") end
  if threshold ~= nil then checks.number(threshold, "threshold", "nn.Softplus") end
  self.beta, self.threshold = beta or 1, threshold or 20
end
--- nn.Hardtanh([min_val [, max_val]]): F.hardtanh, torch's defaults (-1, 1) and gradient.
nn.Hardtanh = simple("nn.Hardtanh", function(self, x) return F.hardtanh(x, self.min_val, self.max_val) end,
  function(self) return string.format("min_val = %s, max_val = %s", tostring(self.min_val), tostring(self.max_val)) end)
function nn.Hardtanh:init(min_val, max_val)
  if min_val ~= nil then checks.number(min_val, "min_val", "nn.Hardtanh") end
  if max_val ~= nil then checks.number(max_val, "max_val", "nn.Hardtanh") end
  self.min_val, self.max_val = min_val or -1, max_val or 1
  local lo, hi = self.min_val, self.max_val
  if lo ~= lo or hi ~= hi or lo >= hi then
    error(string.format("nn.Hardtanh: min_val (%s) must be less than max_val (%s)", tostring(self.min_val),
      tostring(self.max_val)), 3)
  end
end
--- nn.ReLU6(): F.relu6, min(max(x, 0), 6) with torch's gradient.
nn.ReLU6 = simple("nn.ReLU6", function(_, x) return F.relu6(x) end)
nn.Sigmoid = simple("nn.Sigmoid", function(_, x) return x:sigmoid() end)
nn.Tanh = simple("nn.Tanh", function(_, x) return x:tanh() end)
nn.Identity = simple("nn.Identity", function(_, x) return x end)

nn.Softmax = simple("nn.Softmax", function(self, x) return F.softmax(x, self.dim) end)
function nn.Softmax:init(dim) self.dim = dim end
nn.LogSoftmax = simple("nn.LogSoftmax", function(self, x) return F.log_softmax(x, self.dim) end)
function nn.LogSoftmax:init(dim) self.dim = dim end

nn.Dropout = simple("nn.Dropout", function(self, x) return F.dropout(x, self.p, self.training) end,
  function(self) return "p = " .. self.p end)
function nn.Dropout:init(p)
  p = p or 0.5
  checks.p(p, "p", "nn.Dropout")
  self.p = p
end

--- Flattens every dimension after the first (the batch); an empty batch stays empty.
nn.Flatten = simple("nn.Flatten", function(_, x)
  checks.tensor(x, "the input", "nn.Flatten")
  return x:flatten(2)
end)

--- Reshapes every sample: nn.Reshape(1, 28, 28) turns [N, 784] into [N, 1, 28, 28].
nn.Reshape = simple("nn.Reshape", function(self, x)
  local shape = {x:size(1)}
  for _, s in ipairs(self.shape) do shape[#shape + 1] = s end
  return x:reshape(shape)
end, function(self) return table.concat(self.shape, "x") end)
function nn.Reshape:init(...) self.shape = {...} end

--- nn.Unflatten(dim, sizes): dimension `dim` (1-based, negative from the end) of the input becomes
--- `sizes` (a table; one entry may be -1), as torch.nn.Unflatten: nn.Unflatten(2, {1, 28, 28}) turns
--- [N, 784] into [N, 1, 28, 28].
nn.Unflatten = simple("nn.Unflatten", function(self, x)
  checks.tensor(x, "the input", "nn.Unflatten")
  local n = x:dim()
  local d = self.dim < 0 and n + 1 + self.dim or self.dim
  if d < 1 or d > n then
    error(string.format("nn.Unflatten: dimension %d out of range for a %d-D input", self.dim, n), 3)
  end
  local shape, old = {}, x:shape()
  -- the -1 worked out from dimension d alone (reshape's own would divide the
  -- whole tensor's size, 0 in an empty batch, and fail)
  local known = 1
  for _, s in ipairs(self.sizes) do if s ~= -1 then known = known * s end end
  local fits = known > 0 and old[d] % known == 0 or known == 0 and old[d] == 0
  for i = 1, d - 1 do shape[#shape + 1] = old[i] end
  for _, s in ipairs(self.sizes) do shape[#shape + 1] = s == -1 and fits and known > 0 and old[d] // known or s end
  for i = d + 1, n do shape[#shape + 1] = old[i] end
  local ok, out = fits, nil
  if ok then ok, out = pcall(x.reshape, x, shape) end
  if not ok then
    error(string.format("nn.Unflatten: size %d of dimension %d cannot become %s", old[d], d,
      table.concat(self.sizes, "x")), 3)
  end
  return out
end, function(self) return string.format("%d, {%s}", self.dim, table.concat(self.sizes, ", ")) end)
function nn.Unflatten:init(dim, sizes)
  if math.type(dim) ~= "integer" or dim == 0 then
    error("nn.Unflatten: dim must be a nonzero integer (1-based, negative from the end), got "
      .. checks.shown(dim), 3)
  end
  checks.table(sizes, "sizes", "nn.Unflatten")
  if #sizes == 0 then error("nn.Unflatten: sizes must list at least one size", 3) end
  local inferred = 0
  for i, s in ipairs(sizes) do
    if s == -1 then inferred = inferred + 1
    elseif math.type(s) ~= "integer" or s < 0 then
      error(string.format("nn.Unflatten: sizes[%d] must be a non-negative integer or -1, got %s", i,
        checks.shown(s)), 3)
    end
  end
  if inferred > 1 then error("nn.Unflatten: at most one size may be -1", 3) end
  self.dim, self.sizes = dim, {table.unpack(sizes)}
end

local function listed(t)
  local shown = {}
  for i = 1, #t do shown[i] = checks.shown(t[i]) end
  return "{" .. table.concat(shown, ", ") .. "}"
end

--- nn.Permute(dims): x:permute(dims) (a view), torchvision.ops.Permute's
--- twin with 1-based dimensions: nn.Permute{1, 3, 4, 2} turns [N, C, H, W]
--- into [N, H, W, C].
nn.Permute = simple("nn.Permute", function(self, x)
  checks.tensor(x, "the input", "nn.Permute")
  if x:dim() ~= #self.dims then
    error(string.format("nn.Permute: dims %s reorder a %d-D input, got %s", listed(self.dims), #self.dims,
      x:shape_string()), 3)
  end
  return x:permute(self.dims)
end, function(self) return listed(self.dims) end)
function nn.Permute:init(dims)
  checks.table(dims, "dims", "nn.Permute")
  if #dims == 0 then error("nn.Permute: dims must list at least one dimension", 3) end
  local seen = {}
  for i = 1, #dims do
    local d = dims[i]
    if math.type(d) ~= "integer" or d < 1 or d > #dims or seen[d] then
      error(string.format("nn.Permute: dims must reorder 1..%d (each once), got %s", #dims, listed(dims)), 3)
    end
    seen[d] = true
  end
  self.dims = {table.unpack(dims)}
end

local function kernel_shown(k) return type(k) == "table" and k[1] .. "x" .. k[2] or k .. "x" .. k end

local function pool(name, max)
  local class = simple(name, function(self, x)
    local opts = {stride = self.stride, padding = self.padding}
    if self.ceil_mode then opts.ceil_mode = true end
    if self.count_include_pad == false then opts.count_include_pad = false end
    return (max and F.max_pool2d or F.avg_pool2d)(x, self.kernel, opts)
  end, function(self)
    local s = string.format("%s, stride %s", kernel_shown(self.kernel), conv_args.shown(self.stride))
    if self.padding ~= 0 then s = s .. ", padding " .. conv_args.shown(self.padding) end
    if self.ceil_mode then s = s .. ", ceil_mode" end
    if self.count_include_pad == false then s = s .. ", count_include_pad = false" end
    return s
  end)
  local known = max and {ceil_mode = true} or {ceil_mode = true, count_include_pad = true}
  local usage = string.format("%s takes (kernel [, stride [, padding [, {%s}]]])", name,
    max and "ceil_mode" or "ceil_mode, count_include_pad")
  --- (kernel [, stride [, padding [, opts]]]): kernel, stride and padding
  --- each a size or a pair {h, w}, stride the kernel's by default; opts
  --- torch's ceil_mode (false) and, averaging, count_include_pad (true).
  function class:init(kernel, stride, padding, opts, ...)
    -- torch's positional dilation, return_indices, ceil_mode, ... would be misread
    if select("#", ...) > 0 or (opts ~= nil and type(opts) ~= "table") then
      error(usage .. ": torch's dilation and return_indices are computed at their defaults only, "
        .. "and its other options go in the table", 3)
    end
    opts = checks.opts(opts, name, known)
    local k = conv_args.pair(kernel, 1, "kernel size", name, 3)
    local s = stride == nil and k or conv_args.pair(stride, 1, "stride", name, 3)
    local p = conv_args.pair(padding or 0, 0, "padding", name, 3)
    if p[1] > k[1] // 2 or p[2] > k[2] // 2 then -- as torch, per dimension
      error(string.format("%s: padding %s must be at most half the kernel %s", name,
        conv_args.shown(conv_args.compact(p)), conv_args.shown(conv_args.compact(k))), 3)
    end
    self.kernel, self.stride, self.padding = conv_args.compact(k), conv_args.compact(s), conv_args.compact(p)
    self.ceil_mode = checks.flag(opts.ceil_mode, false, "ceil_mode", name)
    if not max then self.count_include_pad = checks.flag(opts.count_include_pad, true, "count_include_pad", name) end
  end
  return class
end
nn.MaxPool2d = pool("nn.MaxPool2d", true)
nn.AvgPool2d = pool("nn.AvgPool2d", false)
nn.GlobalAvgPool2d = simple("nn.GlobalAvgPool2d", function(_, x) return F.global_avg_pool2d(x) end)

for _, class in ipairs({nn.Linear, nn.ELU, nn.ReLU, nn.Dropout}) do lm_forward[class] = class.forward end

-- the layers of modern convolutional networks and of transformers, each
-- file adding its classes to nn
--- Runs fn() with every module of `models` (a module or a list of them) in
--- evaluation mode and returns what it returns; puts each module's own mode
--- back afterwards, also when fn fails (net:train(was) would set every
--- submodule to the top's mode). opts.frozen: the parameters do not require
--- gradients meanwhile (an input's gradient, as FGSM and attributions take
--- it, then leaves none in them).
function nn.evaluating(models, fn, opts)
  checks.table(models, "models", "lm.nn.evaluating")
  if models.modules then models = {models} end
  for i, model in ipairs(models) do checks.module(model, "models[" .. i .. "]", "lm.nn.evaluating") end
  checks.callable(fn, "fn", "lm.nn.evaluating")
  opts = checks.options(opts, "lm.nn.evaluating")
  local frozen = opts and opts.frozen
  local modes, flags = {}, {}
  for _, model in ipairs(models) do
    for _, m in ipairs(model:modules()) do
      if modes[m] == nil then modes[m] = m.training end
    end
    if frozen then
      for _, p in ipairs(model:parameters()) do
        if flags[p] == nil then
          flags[p] = p:requires_grad()
          p:requires_grad(false)
        end
      end
    end
    model:evaluate()
  end
  local results = table.pack(pcall(fn))
  for m, mode in pairs(modes) do m.training = mode end
  for p, flag in pairs(flags) do p:requires_grad(flag) end
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

-- the weight initialisers by scheme name, for the layer files
nn._init_weight = init_weight
require('lumen.nn.conv_layers')(nn)
require('lumen.nn.residual_blocks')(nn)
require('lumen.nn.conv_transpose')(nn)
require('lumen.nn.transformer_layers')(nn)
require('lumen.nn.activation_layers')(nn)
require('lumen.nn.resample_layers')(nn)
require('lumen.nn.containers')(nn)
require('lumen.nn.losses')(nn)
require('lumen.nn.losses_torch')(nn)
nn.utils = require('lumen.nn.utils')
nn.init = initializers

return nn
