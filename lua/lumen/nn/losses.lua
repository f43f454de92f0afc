-- nn.MSELoss, with torch.nn's name and defaults, called as
-- loss_fn(output, target) (nn.CrossEntropyLoss is with torch's
-- other losses, in losses_torch.lua).
--
-- Decided here:
--   * nn.MSELoss computes torch's value, the mean of the squared
--     differences over every element, not F.mse's (1/2 the sum over
--     features, mean over the batch: the paper's classifier error): a port
--     of torch code gets torch's loss and so torch's gradient scale.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(nn)
  local Module = nn.Module

  -- torch's options as a constructor's first argument (no tensor: MSELoss
  -- takes no weights)
  local function options(opts, name, known, unsupported)
    if lm.is_tensor(opts) then
      error(name .. ": class weights (torch's weight argument) are not supported: Lumen weighs every class "
        .. "alike; options are a table {reduction = 'mean'}", 4)
    end
    return checks.opts(opts, name, known, unsupported, 4)
  end

  --- torch.nn.MSELoss: loss_fn(output, target) is the mean of (output -
  --- target)^2 over every element (reduction 'mean', the default), their
  --- sum ('sum') or the squares themselves ('none'); output and target must
  --- have the same shape. Not F.mse, which halves the sum over features.
  nn.MSELoss = Module:extend("nn.MSELoss")

  local MSE_REDUCTIONS = {mean = true, sum = true, none = true}

  function nn.MSELoss:init(opts)
    opts = options(opts, "nn.MSELoss", {"reduction"})
    local r = opts.reduction or "mean"
    if not MSE_REDUCTIONS[r] then
      error("nn.MSELoss: reduction must be 'mean', 'sum' or 'none', got " .. checks.shown(r), 3)
    end
    self.reduction = r
  end

  function nn.MSELoss:forward(output, target)
    checks.tensor(output, "the output", "nn.MSELoss")
    checks.tensor(target, "the target", "nn.MSELoss")
    if output:shape_string() ~= target:shape_string() then
      error(string.format("nn.MSELoss: the output and the target differ in shape, %s and %s (torch would "
        .. "broadcast them, with a warning; Lumen refuses)", output:shape_string(), target:shape_string()), 2)
    end
    local d = output - target
    local sq = d * d
    if self.reduction == "none" then return sq end
    if self.reduction == "sum" then return sq:sum() end
    return sq:mean()
  end

  function nn.MSELoss:extra_repr() return self.reduction ~= "mean" and "reduction = " .. self.reduction or "" end

end
