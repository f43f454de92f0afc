-- torch.nn's loss modules over lua/lumen/nn/loss_functions.lua: nn.BCELoss,
-- nn.BCEWithLogitsLoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.NLLLoss
-- and nn.KLDivLoss. Options at construction, as torch's keyword arguments
-- ({reduction = 'sum'}); a tensor in their place is torch's positional
-- weight. weight and pos_weight are buffers, as torch registers them, so a
-- state dict has torch's names ("weight", "pos_weight"), and none when not given.
local lm = require 'lumen'
local F = require 'lumen.nn.functional'
local checks = require 'lumen.nn.checks'
local lc = require 'lumen.nn.loss_checks'

return function(nn)
  local Module = nn.Module

  -- defines nn[class] calling F[fname](input, target, options) with `known`
  -- (torch's options besides reduction, in torch's order), its errors named
  -- as the module's
  local function loss_module(class, fname, known, reductions)
    local name = "nn." .. class
    local M = Module:extend(name)
    -- torch's nn.BCELoss(w, reduction = 'sum') is nn.BCELoss(w, {reduction = 'sum'})
    function M:init(opts, more)
      if lm.is_tensor(opts) and known[1] == "weight" then
        local merged = {weight = opts}
        if type(more) == "table" and more.weight == nil then
          for k, v in pairs(more) do merged[k] = v end
        elseif more ~= nil then
          error(string.format("%s: after the weight, options must be a table without another weight, got %s",
            name, checks.shown(more)), 3)
        end
        opts = merged
      elseif more ~= nil then
        error(string.format("%s: takes one options table, got a second argument (%s)", name, checks.shown(more)), 3)
      end
      local o = lc.options(opts, name, known, reductions, 3)
      self.reduction = o.reduction
      for _, key in ipairs(known) do
        if key == "weight" or key == "pos_weight" then
          if o[key] then self:buffer(key, o[key]) end
        else
          self[key] = o[key]
        end
      end
    end
    function M:forward(input, target, extra)
      if extra ~= nil then
        error(string.format("%s: called as loss_fn(input, target); options belong to the constructor, got a "
          .. "third argument (%s)", name, checks.shown(extra)), 2)
      end
      local o = {reduction = self.reduction}
      for _, key in ipairs(known) do o[key] = self[key] end
      local ok, loss = pcall(F[fname], input, target, o)
      if not ok then error(name .. ": " .. checks.message(loss):gsub("^" .. fname .. ": ", ""), 2) end
      return loss
    end
    local defaults = lc.options(nil, name, known, reductions)
    -- the options that differ from torch's defaults (the weights show as buffers)
    function M:extra_repr()
      local parts = {}
      for _, key in ipairs{"reduction", table.unpack(known)} do
        local v = self[key]
        if not lm.is_tensor(v) and v ~= defaults[key] then parts[#parts + 1] = key .. " = " .. tostring(v) end
      end
      return table.concat(parts, ", ")
    end
    nn[class] = M
  end

  --- torch.nn.BCELoss([{weight, reduction = 'mean'}]): F.binary_cross_entropy.
  loss_module("BCELoss", "binary_cross_entropy", {"weight"})
  --- torch.nn.BCEWithLogitsLoss([{weight, pos_weight, reduction = 'mean'}]):
  --- F.binary_cross_entropy_with_logits.
  loss_module("BCEWithLogitsLoss", "binary_cross_entropy_with_logits", {"weight", "pos_weight"})
  --- torch.nn.L1Loss([{reduction = 'mean'}]): F.l1_loss.
  loss_module("L1Loss", "l1_loss", {})
  --- torch.nn.SmoothL1Loss([{beta = 1, reduction = 'mean'}]): F.smooth_l1_loss.
  loss_module("SmoothL1Loss", "smooth_l1_loss", {"beta"})
  --- torch.nn.HuberLoss([{delta = 1, reduction = 'mean'}]): F.huber_loss.
  loss_module("HuberLoss", "huber_loss", {"delta"})
  --- torch.nn.NLLLoss([{weight, ignore_index = -100, reduction = 'mean'}]):
  --- F.nll_loss (labels 1-based int32).
  loss_module("NLLLoss", "nll_loss", {"weight", "ignore_index"})
  --- torch.nn.CrossEntropyLoss([{weight, ignore_index = -100,
  --- label_smoothing = 0, reduction = 'mean'}]): F.cross_entropy (labels
  --- 1-based int32; the fused kernel with torch's defaults).
  loss_module("CrossEntropyLoss", "cross_entropy", {"weight", "ignore_index", "label_smoothing"})
  --- torch.nn.KLDivLoss([{reduction = 'mean', log_target = false}]): F.kl_div.
  loss_module("KLDivLoss", "kl_div", {"log_target"}, {"mean", "batchmean", "sum", "none"})
end
