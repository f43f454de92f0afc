-- lm.nn.utils: torch.nn.utils' gradient clipping, over tensor ops.
--
--   loss:backward()
--   lm.nn.utils.clip_grad_norm_(net, 1.0)   -- or net:parameters(), a tensor
--   opt:step()
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

local utils = {}

-- The gradients of `parameters` (a module, one tensor or a list of tensors),
-- skipping parameters without one, as torch does. Errors at the caller of
-- the public function.
local function gradients(parameters, fname)
  local list
  if lm.is_tensor(parameters) then
    list = {parameters}
  elseif type(parameters) == "table" and type(parameters.forward) == "function"
      and type(parameters.parameters) == "function" then
    list = parameters:parameters()
  elseif type(parameters) == "table" and (#parameters > 0 or next(parameters) == nil) then
    list = parameters
    for i, p in ipairs(list) do checks.tensor(p, "parameters[" .. i .. "]", fname, 4) end
  else
    error(string.format("%s: parameters must be a module, a tensor or a list of tensors, got %s", fname,
      type(parameters) == "table" and "a table that is not a list" or checks.shown(parameters)), 3)
  end
  local grads = {}
  for _, p in ipairs(list) do
    local g = p.grad
    if g and g:numel() > 0 then grads[#grads + 1] = g end -- (an empty one adds 0 to every norm)
  end
  return grads
end

-- a and b (0-D tensors) combined by fn on a's device: gradients on
-- several devices are read once, from the first one's
local function combine(a, b, fn)
  if a == nil then return b end
  if b:device() ~= a:device() then b = b:to(a:device()) end
  return fn(a, b)
end
local function add(a, b) return a + b end
local function maximum(a, b) return a:maximum(b) end

-- The sum of |g|^p over every element of the gradients, as a number (one
-- read from the device). `scale` divides the gradients first.
local function power_sum(grads, p, scale)
  local acc
  for _, g in ipairs(grads) do
    local a = g:abs()
    if scale ~= 1 then a = a / scale end -- (1 / scale is subnormal past 8.5e37, flushed to 0)
    acc = combine(acc, (p == 1 and a or p == 2 and a * a or a ^ p):sum(), add)
  end
  return acc:item()
end

--- Scales the gradients of `parameters` (a module, a tensor or a list of
--- tensors; those without a gradient are skipped) in place so that their
--- total norm, taken over all of them together as if concatenated, is at most
--- `max_norm`: each is multiplied by min(1, max_norm / (total + 1e-6)), as
--- torch.nn.utils.clip_grad_norm_. norm_type: the p of the p-norm (default 2;
--- any p > 0, or math.huge or 'inf' for the largest absolute value).
--- Returns the total norm before clipping as a number (torch returns a 0-D
--- tensor); 0 when no parameter has a gradient. A NaN or infinite total is
--- not an error unless error_if_nonfinite is true (torch 1.13's default):
--- the gradients are then multiplied by NaN or 0, as torch's are.
function utils.clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)
  local fname = "lm.nn.utils.clip_grad_norm_"
  local grads = gradients(parameters, fname)
  if type(max_norm) ~= "number" or max_norm ~= max_norm or max_norm < 0 then
    error(string.format("%s: max_norm must be a number >= 0, got %s", fname, checks.shown(max_norm)), 2)
  end
  if norm_type == nil then norm_type = 2 end
  if norm_type == "inf" then norm_type = math.huge end
  if type(norm_type) ~= "number" or norm_type ~= norm_type or norm_type <= 0 then
    error(string.format("%s: norm_type must be a number > 0 (math.huge or 'inf' for the max norm), got %s",
      fname, checks.shown(norm_type)), 2)
  end
  error_if_nonfinite = checks.flag(error_if_nonfinite, false, "error_if_nonfinite", fname)
  if #grads == 0 then return 0 end
  local total, largest = lm.no_grad(function()
    local big
    for _, g in ipairs(grads) do big = combine(big, g:abs():max(), maximum) end
    big = big:item()
    if norm_type == math.huge or big == 0 then return big, big end
    -- the sum of powers over the largest value to the power: float32 would
    -- overflow at |g|^p past 3e38 where the norm itself is far from it
    local scale = checks.is_finite(big) and big or 1
    return scale * power_sum(grads, norm_type, scale) ^ (1 / norm_type), big
  end)
  if error_if_nonfinite and not checks.is_finite(total) then
    error(string.format("%s: the total norm of order %s of the gradients is %s (error_if_nonfinite); "
      .. "the gradients are left as they were", fname, tostring(norm_type), checks.shown(total)), 2)
  end
  local coef = max_norm / (total + 1e-6)
  if coef > 1 then coef = 1 end -- (a NaN stays NaN, as torch.clamp keeps it)
  if coef ~= 1 then
    -- a coefficient below float32's normal range (a total past 8.5e37) would
    -- be flushed to 0, and the total itself may be past float32's largest:
    -- divide by the largest gradient (a float32) first, then multiply by the rest
    local split = coef < 1e-30 and checks.is_finite(total) and largest > 1
    lm.no_grad(function()
      for _, g in ipairs(grads) do
        if split then g:div_(largest):mul_(coef * largest) else g:mul_(coef) end
      end
    end)
  end
  return total
end

--- Clamps every gradient of `parameters` (a module, a tensor or a list of
--- tensors; those without a gradient are skipped) in place to [-clip_value,
--- clip_value], as torch.nn.utils.clip_grad_value_. Returns nothing.
function utils.clip_grad_value_(parameters, clip_value)
  local fname = "lm.nn.utils.clip_grad_value_"
  local grads = gradients(parameters, fname)
  if type(clip_value) ~= "number" or clip_value ~= clip_value or clip_value < 0 then
    error(string.format("%s: clip_value must be a number >= 0, got %s", fname, checks.shown(clip_value)), 2)
  end
  lm.no_grad(function()
    for _, g in ipairs(grads) do g:clamp_(-clip_value, clip_value) end
  end)
end

return utils
