-- The learning-rate schedules of torch.optim.lr_scheduler that are a closed
-- form of the iteration: StepLR, MultiStepLR, ExponentialLR,
-- CosineAnnealingLR, LinearLR and LambdaLR (lm.optim re-exports them). One
-- base class holds what they share: the checks of the optimiser and the
-- options, setting the rate at construction, step() (refused inside a CUDA
-- graph capture) and lr_at(); each kind adds its options and its rate at
-- iteration t. Like torch's, a schedule's base rate is the optimiser's rate
-- when the schedule is made (torch's initial_lr); unlike torch's recursive
-- get_lr, lr_at(t) is a pure function of t, so lm.train resumes a schedule
-- by setting its iteration.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

local shown = checks.shown

local schedules = {}

-- ---- what every schedule (CyclicLR too) shares ---------------------------------------------------------

--- Refuses a schedule's step inside a CUDA graph capture: a replay runs only
--- the graph's kernels and the optimisers' host steps, so a schedule stepped
--- inside the captured function would stay at one rate. Raised at `level`
--- (as error's, counted from the function calling this).
function schedules.refuse_in_capture(kind, level)
  if lm.cuda.capturing() then
    error(kind .. ": step the schedule outside the function a CUDA graph captures (before each replay, "
      .. "as lm.train does): a replay does not run it", level + 1)
  end
end

--- An iteration as lr_at takes it (an integer >= 0; a whole float counts),
--- returned as an integer; refused at `level` as refuse_in_capture's.
function schedules.iteration(iteration, level)
  local i = checks.is_whole(iteration) and math.tointeger(iteration)
  if not i or i < 0 then
    error("schedule:lr_at: iteration must be an integer >= 0, got " .. shown(iteration), level + 1)
  end
  return i
end

-- ---- option checks: the value to keep, or nil and what it must be ----------------------------------------

local function positive_integer(v)
  if checks.is_whole(v) and v >= 1 then return math.tointeger(v) end
  return nil, "a positive integer"
end

local function nonnegative(v)
  if checks.is_finite(v) and v >= 0 then return v end
  return nil, "a finite number >= 0"
end

local function factor_in(lo_open)
  return function(v)
    if checks.is_finite(v) and v <= 1 and (v > 0 or v == 0 and not lo_open) then return v end
    return nil, lo_open and "a number in (0, 1]" or "a number in [0, 1]"
  end
end

local function callable(v)
  if checks.is_callable(v) then return v end
  return nil, "a function of the iteration"
end

-- milestones: a non-empty list of strictly increasing integers >= 1
-- (torch counts a repeated milestone twice; Lumen refuses it as a likely slip)
local function milestones(v)
  local wanted = "a non-empty list of increasing positive integers (iterations)"
  if type(v) ~= "table" or #v == 0 then return nil, wanted end
  local out = {}
  for i = 1, #v do
    local m = checks.is_whole(v[i]) and math.tointeger(v[i])
    if not m or m < 1 then
      return nil, wanted, string.format("milestones[%d] = %s", i, shown(v[i]))
    end
    if i > 1 and m <= out[i - 1] then
      return nil, wanted, string.format("milestones[%d] = %d after %d", i, m, out[i - 1])
    end
    out[i] = m
  end
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then return nil, wanted, "a table with other keys" end
  end
  return out
end

-- ---- the base class ---------------------------------------------------------------------------------------

local Schedule = {}
Schedule.__index = Schedule

-- The rate at integer iteration t, or nil and why not: a rate the optimiser
-- would refuse (not finite, or negative) is reported here, naming the
-- iteration, not at the optimiser's next step.
local function rate(self, t)
  local lr, why = self.kind_of.rate(self, t)
  if lr == nil then return nil, why end
  if not checks.is_finite(lr) or lr < 0 then
    return nil, string.format("%s: the learning rate at iteration %d would be %s (a rate must be a finite "
      .. "number >= 0)", self.fname, t, shown(lr))
  end
  return lr
end

--- The learning rate at a 0-based iteration (a pure function of it).
function Schedule:lr_at(iteration)
  local lr, why = rate(self, schedules.iteration(iteration, 2))
  if lr == nil then error(why, 2) end
  return lr
end

--- Advances one iteration and sets the optimiser's lr.
function Schedule:step()
  schedules.refuse_in_capture(self.fname, 2)
  local lr, why = rate(self, self.iteration + 1)
  if lr == nil then error(why, 2) end
  self.iteration = self.iteration + 1
  self.opt:set_lr(lr)
end

-- the kinds of schedule (below): their options and rates
local KINDS = {}

--- Makes the schedule lm.optim.<name> (a kind below) for optimiser opt with
--- options o. Call it from lm.optim.<name> itself, not as a tail call: its
--- errors are raised at that function's caller (level 3 from here).
function schedules.new(name, opt, o)
  local kind = assert(KINDS[name], name)
  local fname = "lm.optim." .. name
  if type(opt) ~= "table" or type(opt.set_lr) ~= "function" or type(opt.lr) ~= "function" then
    error(fname .. ": optimizer must be an optimiser (lm.optim.SGD, Adam, ...), got " .. shown(opt), 3)
  end
  o = checks.options(o, fname, 4)
  local names = {}
  for _, spec in ipairs(kind.options) do names[#names + 1] = spec[1] end
  checks.opts(o, fname, names, nil, 4)
  local base = opt:lr()
  if not checks.is_finite(base) or base < 0 then
    error(string.format("%s: the optimiser's lr must be a finite number >= 0, got %s", fname, shown(base)), 3)
  end
  local self = {opt = opt, iteration = 0, base_lr = base, fname = fname, kind = name, kind_of = kind}
  for _, spec in ipairs(kind.options) do
    local key, default, check = spec[1], spec[2], spec[3]
    local v = o[key]
    if v == nil then v = default end
    local kept, wanted, detail = check(v)
    if kept == nil then
      error(string.format("%s: %s must be %s, got %s", fname, key, wanted, detail or shown(v)), 3)
    end
    self[key] = kept
  end
  setmetatable(self, Schedule)
  local lr, why = rate(self, 0)
  if lr == nil then error(why, 3) end
  opt:set_lr(lr)
  return self
end

-- ---- the kinds: their options ({name, default, check}, nil: required) and rate ---------------------------

KINDS.StepLR = {
  options = {{"step_size", nil, positive_integer}, {"gamma", 0.1, nonnegative}},
  rate = function(s, t) return s.base_lr * s.gamma ^ (t // s.step_size) end,
}

KINDS.MultiStepLR = {
  options = {{"milestones", nil, milestones}, {"gamma", 0.1, nonnegative}},
  rate = function(s, t)
    local passed = 0 -- milestones <= t (torch's bisect_right)
    for _, m in ipairs(s.milestones) do
      if m > t then break end
      passed = passed + 1
    end
    return s.base_lr * s.gamma ^ passed
  end,
}

KINDS.ExponentialLR = {
  options = {{"gamma", nil, nonnegative}},
  rate = function(s, t) return s.base_lr * s.gamma ^ t end,
}

-- past T_max torch's recursive form goes on along the same cosine (back up
-- to the base rate at 2 T_max, and so on): the closed form for every t
KINDS.CosineAnnealingLR = {
  options = {{"T_max", nil, positive_integer}, {"eta_min", 0, nonnegative}},
  rate = function(s, t)
    return s.eta_min + (s.base_lr - s.eta_min) * (1 + math.cos(math.pi * t / s.T_max)) / 2
  end,
}

KINDS.LinearLR = {
  options = {{"start_factor", 1 / 3, factor_in(true)}, {"end_factor", 1, factor_in(false)},
    {"total_iters", 5, positive_integer}},
  rate = function(s, t)
    local f = s.start_factor + (s.end_factor - s.start_factor) * math.min(t, s.total_iters) / s.total_iters
    return s.base_lr * f
  end,
}

KINDS.LambdaLR = {
  options = {{"lr_lambda", nil, callable}},
  rate = function(s, t)
    local f = s.lr_lambda(t)
    if not checks.is_finite(f) then
      return nil, string.format("%s: lr_lambda(%d) must return a finite number (the factor of the base rate at "
        .. "iteration %d), got %s", s.fname, t, t, shown(f))
    end
    return s.base_lr * f
  end,
}


return schedules
