-- The option and shape checks torch's losses share in Lumen
-- (lua/lumen/nn/loss_functions.lua and the modules of losses_torch.lua):
-- one reading of {weight, pos_weight, ignore_index, beta, delta,
-- log_target, reduction} with torch 1.13's defaults, so F.x and nn.X refuse
-- the same values with the same words.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

local M = {}

M.REDUCTIONS = {"mean", "sum", "none"}

-- "'mean', 'sum' or 'none'"
local function listed(names)
  local quoted = {}
  for i, name in ipairs(names) do quoted[i] = "'" .. name .. "'" end
  return table.concat(quoted, ", ", 1, #quoted - 1) .. " or " .. quoted[#quoted]
end

-- a weight the loss multiplies by: a tensor that records no gradient (torch
-- refuses one that requires a gradient: its losses are not differentiable in
-- it). level: as error's, from weight_tensor.
local function weight_tensor(v, what, fname, level)
  checks.optional_tensor(v, what, fname, level + 2)
  if v ~= nil and v:requires_grad() and lm.is_grad_enabled() then
    error(string.format("%s: %s requires a gradient, but the loss is not differentiable in it (as in torch); "
      .. "pass %s:detach()", fname, what, what), level + 1)
  end
  return v
end

--- Reads the options table `opts` of the loss `fname`: `known` lists the
--- options it takes besides reduction (torch's names), `reductions` the
--- reductions (default M.REDUCTIONS). Returns a table of the values with
--- torch's defaults filled in. Errors point `level` frames up (as error's,
--- counted from the function calling this one).
function M.options(opts, fname, known, reductions, level)
  level = (level or 1) + 1
  if lm.is_tensor(opts) then
    error(string.format("%s: options must be a table {%s}, got a tensor%s", fname,
      table.concat(known, ", ") .. (#known > 0 and ", " or "") .. "reduction",
      known[1] == "weight" and " (torch's positional weight is {weight = w} here)" or ""), level)
  end
  local names = {"reduction"}
  for _, name in ipairs(known) do names[#names + 1] = name end
  opts = checks.opts(opts, fname, names, nil, level + 1)
  reductions = reductions or M.REDUCTIONS
  local out = {reduction = opts.reduction or reductions[1]}
  local ok = false
  for _, r in ipairs(reductions) do ok = ok or out.reduction == r end
  if not ok then
    error(string.format("%s: reduction must be %s, got %s", fname, listed(reductions), checks.shown(opts.reduction)),
      level)
  end
  for _, name in ipairs(known) do
    local v = opts[name]
    if name == "weight" or name == "pos_weight" then
      out[name] = weight_tensor(v, name, fname, level)
    elseif name == "ignore_index" then
      if v ~= nil and not checks.is_whole(v) then
        error(string.format("%s: ignore_index must be an integer (a label value: 1-based classes, or torch's "
          .. "default -100), got %s", fname, checks.shown(v)), level)
      end
      out[name] = v and math.tointeger(v) or -100
    elseif name == "beta" then
      out[name] = checks.eps(v, 1.0, "beta", fname, level + 1) -- torch refuses a negative beta
    elseif name == "delta" then
      if v ~= nil and not (checks.is_finite(v) and v > 0) then
        error(string.format("%s: delta must be a finite number > 0, got %s", fname, checks.shown(v)), level)
      end
      out[name] = v or 1.0
    elseif name == "log_target" then
      out[name] = checks.flag(v, false, "log_target", fname, level + 1)
    elseif name == "label_smoothing" then
      if v ~= nil and not (type(v) == "number" and v >= 0 and v <= 1) then
        error(string.format("%s: label_smoothing must be a number in [0, 1], got %s", fname, checks.shown(v)), level)
      end
      out[name] = v or 0.0
    end
  end
  return out
end

--- input and target must be tensors of one shape: torch broadcasts some
--- losses' targets (with a warning), Lumen refuses.
function M.same_shape(input, target, fname, level)
  level = (level or 1) + 1
  checks.tensor(input, "the input", fname, level + 1)
  checks.tensor(target, "the target", fname, level + 1)
  if input:shape_string() ~= target:shape_string() then
    error(string.format("%s: the input and the target differ in shape, %s and %s (torch would broadcast them, "
      .. "with a warning; Lumen refuses)", fname, input:shape_string(), target:shape_string()), level)
  end
  M.same_device(target, input, "the target", fname, level)
end

--- t must be on the input x's device (named `what` in the error).
function M.same_device(t, x, what, fname, level)
  if t ~= nil and t:device() ~= x:device() then
    error(string.format("%s: %s is on %s, the input on %s", fname, what, t:device(), x:device()), (level or 1) + 1)
  end
end

--- w (a weight, or nil) must broadcast to x's shape without changing it,
--- on x's device.
function M.broadcasts(w, x, what, fname, level)
  if w == nil then return end
  M.same_device(w, x, what, fname, (level or 1) + 1)
  local ok = w:dim() <= x:dim()
  for i = 1, w:dim() do
    local n = w:size(-i)
    ok = ok and (n == 1 or n == x:size(-i))
  end
  if not ok then
    error(string.format("%s: %s of shape %s does not broadcast to the input's shape %s", fname, what,
      w:shape_string(), x:shape_string()), (level or 1) + 1)
  end
end

--- The elementwise loss reduced as `reduction` says ('none', 'sum', 'mean').
function M.reduce(loss, reduction)
  if reduction == "sum" then return loss:sum() end
  if reduction == "mean" then return loss:mean() end
  return loss
end

return M
