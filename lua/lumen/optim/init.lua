-- lm.optim: optimisers (each update one fused C loop per parameter), cyclic
-- learning rates, torch's closed-form schedules (lumen.optim.schedules) and
-- early stopping. An optimiser's state is plain tensors
-- and numbers: state_dict() / load_state_dict() checkpoint it.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'
local schedules = require 'lumen.optim.schedules'

local optim = {}

local Optimizer = {}
Optimizer.__index = Optimizer

-- The settings' ranges (torch's; the learning rate also finite): a value
-- outside them gives NaN weights or an ignored setting, never an error
-- later. Raised at `level`, counted from this function (1).
local function check_settings(kind, s, level)
  local function check(key, ok, range)
    local v = s[key]
    if v ~= nil and not (type(v) == "number" and ok(v)) then
      error(string.format("%s: %s must be a number %s, got %s", kind, key, range, checks.shown(v)), level + 1)
    end
  end
  check("lr", function(v) return v >= 0 and v < math.huge end, ">= 0 (finite)")
  for _, key in ipairs{"eps", "weight_decay", "momentum", "alpha"} do
    check(key, function(v) return v >= 0 end, ">= 0")
  end
  for _, key in ipairs{"beta1", "beta2"} do
    check(key, function(v) return v >= 0 and v < 1 end, "in [0, 1)")
  end
  if s.nesterov ~= nil and type(s.nesterov) ~= "boolean" then
    error(string.format("%s: nesterov must be true or false, got %s", kind, checks.shown(s.nesterov)), level)
  end
end

local function new_optimizer(kind, params, settings, defaults, nstates)
  if type(params) ~= "table" or #params == 0 then
    error(kind .. ": needs a non-empty list of parameters (net:parameters())", 3)
  end
  -- parameters that do not require gradients (frozen) are kept and skipped
  -- at each step, as torch's optimisers do: they never have a gradient
  local first = {}
  for i, p in ipairs(params) do
    if not lm.is_tensor(p) then error(string.format("%s: parameter %d is not a tensor", kind, i), 3) end
    if first[p] then
      error(string.format("%s: parameter %d is parameter %d again (list a shared tensor once: "
        .. "net:parameters() does)", kind, i, first[p]), 3)
    end
    first[p] = i
  end
  local s = {kind = kind:lower(), step = 0}
  for k, v in pairs(defaults) do s[k] = v end
  local names = {}
  for k in pairs(defaults) do names[#names + 1] = k end
  checks.opts(checks.options(settings, kind, 4), kind, names, nil, 4)
  for k, v in pairs(settings or {}) do s[k] = v end
  check_settings(kind, s, 4)
  -- each parameter's own count of updates: Adam's bias correction starts at
  -- a parameter's first gradient, as torch's per-parameter state does
  s.param_steps = {}
  for i = 1, #params do s.param_steps[i] = 0 end
  return setmetatable({params = params, settings = s, state = {}, nstates = nstates, moves = lm._moves()},
    Optimizer)
end

-- State tensors are made up front (not at the first step) so a training
-- loop's memory is laid out once and later steps only reuse cached blocks.
local function init_state(o)
  for i, p in ipairs(o.params) do
    local st = {}
    for k = 1, o.nstates do st[k] = lm.zeros(p:shape(), p:device()) end
    o.state[i] = st
  end
  return o
end

--- The learning rate in use (a schedule sets it).
function Optimizer:lr() return self.settings.lr end
function Optimizer:set_lr(lr) self.settings.lr = lr end

--- Clears every parameter's gradient.
function Optimizer:zero_grad()
  for _, p in ipairs(self.params) do p.grad = nil end
end

--- One update of every parameter that has a gradient.
function Optimizer:step()
  local s = self.settings
  if type(s.lr) ~= "number" or not (s.lr >= 0 and s.lr < math.huge) then
    error(string.format("step: lr must be a number >= 0 (finite), got %s", checks.shown(s.lr)), 2)
  end
  -- one call for all parameters (one launch on a GPU): it reads each
  -- gradient (a Lua read of p.grad would keep it alive after zero_grad),
  -- skips the parameters without one, and counts each parameter's updates
  -- in s.param_steps. A refused step changes nothing.
  -- parameters moved since the last step (net:to): their states follow them
  if self.moves ~= lm._moves() then
    for i, p in ipairs(self.params) do
      for _, st in ipairs(self.state[i] or {}) do
        if st:device() ~= p:device() then st:_take_(st:to(p:device())) end
      end
    end
    self.moves = lm._moves()
  end
  if lm.cuda.capturing() then require('lumen.cuda_graph').captured_step(self) end
  local ok, err = pcall(lm._optim_step_all, s, self.params, self.state, s.param_steps)
  if not ok then error(err, 2) end
  s.step = s.step + 1
end

--- Settings and state tensors, for checkpoints (names "state.<param>.<k>").
function Optimizer:state_dict()
  local tensors, settings = {}, {}
  for k, v in pairs(self.settings) do settings[k] = v end
  settings.param_steps = table.move(self.settings.param_steps, 1, #self.params, 1, {})
  for i, st in pairs(self.state) do
    for k, t in ipairs(st) do tensors[string.format("state.%d.%d", i, k)] = t end
  end
  return {settings = settings, tensors = tensors}
end

-- Checks a state_dict() result against optimiser o without changing it;
-- errors are raised at `level`, counted from here (3: the caller of the
-- method calling this). Returns what to copy ({param, state index, tensor}
-- each) and the per-parameter counts.
local function check_state(o, sd, level)
  local kind = o.settings.kind
  if type(sd) ~= "table" or type(sd.settings) ~= "table" or type(sd.tensors) ~= "table" then
    error("load_state_dict: expected {settings = {...}, tensors = {...}} as state_dict() gives", level)
  end
  if sd.settings.kind ~= kind then
    error(string.format("load_state_dict: the state is of a%s %s optimiser, this one is %s",
      tostring(sd.settings.kind):match("^[aeiou]") and "n" or "", tostring(sd.settings.kind), kind), level)
  end
  for i, st in ipairs(o.state) do
    for k = 1, #st do
      if sd.tensors[string.format("state.%d.%d", i, k)] == nil then
        error(string.format("load_state_dict: state 'state.%d.%d' (parameter %d) is missing", i, k, i), level)
      end
    end
  end
  local merged = {}
  for k, v in pairs(o.settings) do merged[k] = v end
  for k, v in pairs(sd.settings) do merged[k] = v end
  check_settings("load_state_dict", merged, level + 1)
  local steps = sd.settings.param_steps
  if steps ~= nil and (type(steps) ~= "table" or #steps ~= #o.params) then
    error(string.format("load_state_dict: param_steps must list %d counts, one a parameter", #o.params), level)
  end
  for i = 1, steps and #steps or 0 do
    if math.type(steps[i]) ~= "integer" or steps[i] < 0 then
      error(string.format("load_state_dict: param_steps[%d] must be an integer >= 0, got %s", i,
        checks.shown(steps[i])), level)
    end
  end
  if sd.settings.step ~= nil and math.type(sd.settings.step) ~= "integer" then
    error("load_state_dict: settings.step must be an integer (the count of steps), got "
      .. checks.shown(sd.settings.step), level)
  end
  local taken = {}
  for name, t in pairs(sd.tensors) do
    local i, k = tostring(name):match("^state%.(%d+)%.(%d+)$")
    i, k = tonumber(i), tonumber(k)
    if not i or not o.params[i] or not (o.state[i] and o.state[i][k]) then
      error("load_state_dict: unexpected state '" .. tostring(name) .. "'", level)
    end
    if not lm.is_tensor(t) then
      error(string.format("load_state_dict: state '%s' must be a tensor, got %s", name, checks.shown(t)), level)
    end
    if t:shape_string() ~= o.params[i]:shape_string() then
      error(string.format("load_state_dict: state '%s' has shape %s, parameter %d has %s", name,
        t:shape_string(), i, o.params[i]:shape_string()), level)
    end
    if t:dtype() ~= "float32" then
      error(string.format("load_state_dict: state '%s' is %s, an optimiser's states are float32", name,
        t:dtype()), level)
    end
    taken[#taken + 1] = {i, k, t}
  end
  return taken, steps
end

function Optimizer:load_state_dict(sd)
  -- every state is checked before any is taken: a refused load changes nothing
  local taken, steps = check_state(self, sd, 3)
  for k, v in pairs(sd.settings) do self.settings[k] = v end
  self.settings.param_steps = {} -- a copy; a state from before per-parameter counts: all at step
  for i = 1, #self.params do self.settings.param_steps[i] = steps and steps[i] or self.settings.step end
  -- into the existing tensors (on the parameters' device): a captured CUDA
  -- graph keeps updating the ones it was captured with
  for _, e in ipairs(taken) do self.state[e[1]][e[2]]:copy_(e[3]) end
end

-- The check alone, raised at the caller's line: lm.train's resume checks the
-- optimiser's state before it loads the model's, so a refusal changes neither.
function Optimizer:_check_state_dict(sd)
  check_state(self, sd, 3)
end

--- SGD with momentum, Nesterov momentum and (L2) weight decay, as in PyTorch.
function optim.SGD(params, settings)
  local o = new_optimizer("SGD", params, settings,
    {lr = 1e-2, momentum = 0, nesterov = false, weight_decay = 0}, 0)
  if o.settings.momentum > 0 then o.nstates = 1 end
  if o.settings.nesterov and o.settings.momentum <= 0 then
    error("SGD: nesterov needs momentum > 0", 2)
  end
  return init_state(o)
end

--- Adam (Kingma & Ba) with bias correction; weight_decay is an L2 term.
function optim.Adam(params, settings)
  return init_state(new_optimizer("Adam", params, settings,
    {lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0}, 2))
end

--- AdamW: Adam with decoupled weight decay (Loshchilov & Hutter).
function optim.AdamW(params, settings)
  return init_state(new_optimizer("AdamW", params, settings,
    {lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2}, 2))
end

--- RMSprop (Hinton): v = alpha v + (1 - alpha) g^2, w -= lr g / (sqrt(v) + eps).
function optim.RMSprop(params, settings)
  return init_state(new_optimizer("RMSprop", params, settings,
    {lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0}, 1))
end

-- ---- cyclic learning rate --------------------------------------------------------------------------

local CyclicLR = {}
CyclicLR.__index = CyclicLR

--- The paper's cyclic learning rate (Smith, "Cyclical learning rates"):
--- cycles of `period` iterations between min and max. mode 'triangular':
--- up from min to max over the first half, back down over the second;
--- 'sawtooth': from max down to min over the whole cycle. The amplitude shrinks
--- by `decay` each cycle: cycle c (0-based) peaks at min + (max - min) * decay^c,
--- as torch's CyclicLR with scale_fn(c) = decay^(c - 1), scale_mode 'cycle'.
--- The optimiser's lr is set at construction and by every step().
function optim.CyclicLR(opt, s)
  if type(opt) ~= "table" or type(opt.set_lr) ~= "function" then
    error("lm.optim.CyclicLR: optimizer must be an optimiser (lm.optim.SGD, Adam, ...), got " .. checks.shown(opt), 2)
  end
  s = checks.options(s, "lm.optim.CyclicLR")
  for _, k in ipairs{"min", "decay"} do
    if s[k] ~= nil and type(s[k]) ~= "number" then
      error(string.format("lm.optim.CyclicLR: %s must be a number, got %s", k, checks.shown(s[k])), 2)
    end
  end
  local self = setmetatable({
    opt = opt, min = s.min or 0, max = s.max, period = s.period,
    decay = s.decay or 1, mode = s.mode or "triangular", iteration = 0,
  }, CyclicLR)
  if type(self.max) ~= "number" or self.max < self.min then
    error("CyclicLR: needs max >= min", 2)
  end
  if math.type(self.period) ~= "integer" or self.period < 2 then
    error("CyclicLR: period must be an integer >= 2 (iterations per cycle)", 2)
  end
  if self.mode ~= "triangular" and self.mode ~= "sawtooth" then
    error("CyclicLR: mode must be 'triangular' or 'sawtooth', got '" .. tostring(self.mode) .. "'", 2)
  end
  opt:set_lr(self:lr_at(0))
  return self
end

--- The learning rate at a 0-based iteration (a pure function of it).
function CyclicLR:lr_at(iteration)
  iteration = schedules.iteration(iteration, 2)
  local cycle = iteration // self.period
  local x = (iteration % self.period) / self.period -- position in the cycle, [0, 1)
  local peak = self.min + (self.max - self.min) * self.decay ^ cycle
  local f
  if self.mode == "triangular" then f = 1 - math.abs(2 * x - 1) else f = 1 - x end
  return self.min + (peak - self.min) * f
end

--- Advances one iteration and sets the optimiser's lr; returns true at the
--- end of a cycle (when validation should run).
function CyclicLR:step()
  schedules.refuse_in_capture("CyclicLR", 2)
  self.iteration = self.iteration + 1
  self.opt:set_lr(self:lr_at(self.iteration))
  return self.iteration % self.period == 0
end

function CyclicLR:cycle() return self.iteration // self.period end

-- ---- torch's schedules (lumen.optim.schedules) ----------------------------------------------------
-- Each is a closed form of the iteration with torch.optim.lr_scheduler's
-- semantics; the base rate is the optimiser's rate when the schedule is made
-- (torch's initial_lr). The optimiser's rate is set at construction and by
-- every s:step(); s:lr_at(i) is the rate at iteration i; s.iteration counts
-- the steps. lm.train steps a schedule every iteration (every batch), so
-- step_size, milestones, T_max and total_iters count iterations there: an
-- epoch is #loader iterations (step_size = 30 * #loader for torch's 30
-- epochs).

--- torch's StepLR: lr = base * gamma^(iteration // step_size).
function optim.StepLR(opt, options)
  local s = schedules.new("StepLR", opt, options)
  return s
end

--- torch's MultiStepLR: lr = base * gamma^(the number of milestones <= iteration);
--- milestones a list of increasing positive integers.
function optim.MultiStepLR(opt, options)
  local s = schedules.new("MultiStepLR", opt, options)
  return s
end

--- torch's ExponentialLR: lr = base * gamma^iteration.
function optim.ExponentialLR(opt, options)
  local s = schedules.new("ExponentialLR", opt, options)
  return s
end

--- torch's CosineAnnealingLR: lr = eta_min + (base - eta_min) (1 + cos(pi t / T_max)) / 2
--- at iteration t; past T_max it goes on along the cosine (back up to base at
--- 2 T_max), as torch's recursive form does.
function optim.CosineAnnealingLR(opt, options)
  local s = schedules.new("CosineAnnealingLR", opt, options)
  return s
end

--- torch's LinearLR: the factor of the base rate goes linearly from
--- start_factor (in (0, 1]) to end_factor (in [0, 1]) over total_iters
--- iterations and stays at end_factor after.
function optim.LinearLR(opt, options)
  local s = schedules.new("LinearLR", opt, options)
  return s
end

--- torch's LambdaLR: lr = base * lr_lambda(iteration); lr_lambda must return
--- a finite number (an error names the iteration where it does not).
function optim.LambdaLR(opt, options)
  local s = schedules.new("LambdaLR", opt, options)
  return s
end

-- ---- early stopping -----------------------------------------------------------------------------------

local EarlyStopping = {}
EarlyStopping.__index = EarlyStopping

--- Stops after `patience` checks without improvement of the monitored value
--- (mode 'min' or 'max'), keeping a copy of the best weights.
function optim.EarlyStopping(s)
  s = checks.options(s, "lm.optim.EarlyStopping")
  local self = setmetatable({patience = s.patience or 5, mode = s.mode or "min",
    min_delta = s.min_delta or 0, bad = 0, best = nil, best_state = nil}, EarlyStopping)
  if math.type(self.patience) ~= "integer" or self.patience < 1 then
    error("EarlyStopping: patience must be an integer >= 1 (checks without improvement), got "
      .. tostring(self.patience), 2)
  end
  if self.mode ~= "min" and self.mode ~= "max" then error("EarlyStopping: mode must be 'min' or 'max'", 2) end
  if type(self.min_delta) ~= "number" or self.min_delta ~= self.min_delta or self.min_delta < 0 then
    error("EarlyStopping: min_delta must be a number >= 0, got " .. tostring(self.min_delta), 2)
  end
  return self
end

--- Records a new value; returns true when training should stop. A NaN
--- value is never an improvement (it counts against the patience).
function EarlyStopping:step(value, model)
  if type(value) ~= "number" then error("EarlyStopping: step needs a number, got a " .. type(value), 2) end
  if model ~= nil and (type(model) ~= "table" or type(model.state_dict) ~= "function") then
    error("stopper:step: model must be a module (an lm.nn layer or model), got " .. checks.shown(model), 2)
  end
  local better = value == value and (self.best == nil or
    (self.mode == "min" and value < self.best - self.min_delta) or
    (self.mode == "max" and value > self.best + self.min_delta))
  if better then
    self.best, self.bad = value, 0
    if model then
      self.best_state = {}
      for name, t in pairs(model:state_dict()) do self.best_state[name] = t:clone() end
    end
  else
    self.bad = self.bad + 1
  end
  return self.bad >= self.patience
end

--- Puts the best weights back into the model.
function EarlyStopping:restore(model)
  if type(model) ~= "table" or type(model.load_state_dict) ~= "function" then
    error("stopper:restore: model must be a module (an lm.nn layer or model), got " .. checks.shown(model), 2)
  end
  if not self.best_state then error("EarlyStopping: no best weights recorded", 2) end
  model:load_state_dict(self.best_state, "the best checkpoint")
end

return optim
