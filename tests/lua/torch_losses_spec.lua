-- torch's losses in lm.nn.functional and their nn modules against PyTorch
-- 1.13 (Debian's python3-torch): tests/torch/losses_reference.py defines the
-- cases (every loss, every reduction, with and without weight, pos_weight
-- and ignore_index, and the edges: probabilities 0 and 1, logits of +-100
-- and +-1000, differences exactly at beta or delta, every label ignored,
-- zero targets, log targets); here each is replayed with Lumen, value and
-- gradients, element by element: |lumen - torch| <= max(1e-5 |torch|, 1e-6),
-- NaN and infinities where torch has them. The modules' state dicts must
-- have torch's names.
local lm = require 'lumen'
local json = require 'lumen.json'
local nn = lm.nn
local F = nn.functional

local py = dofile("tests/helpers/python.lua")

if not py.can_import("torch") then
  skip("/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed", true)
end

local ref, meta = py.safetensors_reference("tests/torch/losses_reference.py", "losses.safetensors")
local manifest = json.decode(meta.manifest)

local RTOL, ATOL = 1e-5, 1e-6

-- element by element; nil when they agree, else what differs
local function mismatch(got, want)
  if got:shape_string() ~= want:shape_string() then
    return string.format("shape %s, torch %s", got:shape_string(), want:shape_string())
  end
  local g, w = got:reshape(-1):totable(), want:reshape(-1):totable()
  for i = 1, #w do
    local a, b = g[i], w[i]
    local agree
    if b ~= b then agree = a ~= a
    elseif b == math.huge or b == -math.huge then agree = a == b
    else agree = a == a and math.abs(a - b) <= math.max(RTOL * math.abs(b), ATOL) end
    if not agree then return string.format("element %d: %.9g, torch %.9g", i, a, b) end
  end
end

local function close(got, want, what)
  local bad = mismatch(got, want)
  if bad then error(what .. ": " .. bad, 2) end
end

-- the case's options for Lumen (weight and pos_weight from the file)
local function options(case)
  local o = {reduction = case.reduction}
  for k, v in pairs(case.options) do o[k] = v end
  if case.weight then o.weight = ref[case.name .. ".weight"] end
  if case.pos_weight then o.pos_weight = ref[case.name .. ".pos_weight"] end
  return o
end

describe("torch.nn.functional's losses", function()
  local checked = {}
  for _, case in ipairs(manifest.cases) do
    it(case.name .. " (" .. case.fn .. ")", function()
      local input = ref[case.name .. ".input"]:clone():requires_grad(true)
      local target = ref[case.name .. ".target"]:clone()
      if case.target_grad then target:requires_grad(true) end
      local loss = F[case.fn](input, target, options(case))
      close(loss, ref[case.name .. ".loss"], "loss")
      if case.reduction == "none" then
        (loss * ref[case.name .. ".upstream"]):sum():backward()
      else
        loss:backward()
      end
      close(input.grad, ref[case.name .. ".grad_input"], "the input's gradient")
      if case.target_grad then
        close(target.grad, ref[case.name .. ".grad_target"], "the target's gradient")
      end
      -- the module computes the same loss
      local o = options(case)
      local m = nn[case.module](o)
      close(m(ref[case.name .. ".input"], ref[case.name .. ".target"]), ref[case.name .. ".loss"], case.module)
      checked[#checked + 1] = case.name
    end)
  end

  it("checked every case of the manifest, the edges the brief names among them", function()
    eq(#checked, #manifest.cases, "cases checked")
    local names = {}
    for _, case in ipairs(manifest.cases) do names[case.name] = true end
    for _, name in ipairs{"bce_edges_mean", "bce_edges_weight_none", "bcel_extremes_sum",
        "bcel_extremes_pos_weight_none", "bcel_both_mean", "smooth_l1_at_beta_none", "smooth_l1_beta0_none",
        "huber_at_delta_none", "nll_all_ignored_mean", "nll_all_ignored_weight_mean", "nll_weight_ignore_mean",
        "nll_ignore_class_none", "kl_none", "kl_batchmean", "kl_log_target_mean", "l1_sum", "nll_ignored_masked_mean",
        "smooth_l1_infinite_sum", "smooth_l1_beta0_infinite_none", "huber_infinite_mean", "ce_mean",
        "ce_smooth_weight_ignore_mean", "ce_smooth_ignore_mean", "ce_spatial_none", "ce_one_sum"} do
      truthy(names[name], "the manifest has " .. name)
    end
    -- the edges are there: torch's clamped logs, its NaN mean with every label ignored, a NaN
    -- target gradient at zero targets
    truthy(ref["bce_edges_sum.loss"]:item() > 99, "probabilities 0 and 1 reach the -100 clamp")
    truthy(ref["nll_all_ignored_mean.loss"]:isnan():item() == 1, "torch's mean with every label ignored is NaN")
    eq(ref["nll_all_ignored_mean.grad_input"]:abs():sum():item(), 0, "with a zero gradient")
    truthy(ref["kl_sum.grad_target"]:isnan():sum():item() > 0, "zero targets give torch NaN target gradients")
  end)
end)

describe("torch.nn's loss modules", function()
  for _, config in ipairs(manifest.modules) do
    it(config.config .. " (" .. config.module .. ") has torch's state dict", function()
      local o = {}
      if config.weight then o.weight = ref["module." .. config.config .. ".weight"] end
      if config.pos_weight then o.pos_weight = ref["module." .. config.config .. ".pos_weight"] end
      local m = nn[config.module](o)
      local names = {}
      for i, pair in ipairs(m:named_buffers()) do names[i] = pair[1] end
      same(names, config.names)
      eq(#m:parameters(), 0, "no parameters")
      local state = m:state_dict()
      for _, name in ipairs(config.names) do
        close(state[name], ref["module." .. config.config .. "." .. name], name)
      end
      -- and loads torch's strictly into a module built with other values
      local other = {}
      for k, v in pairs(o) do other[k] = v:clone():fill_(7) end
      local fresh = nn[config.module](other)
      local missing, unexpected = fresh:load_state_dict(state)
      eq(#missing + #unexpected, 0)
      for _, name in ipairs(config.names) do
        close(fresh:state_dict()[name], ref["module." .. config.config .. "." .. name], "loaded " .. name)
      end
    end)
  end

  it("names pos_weight and weight as torch does", function()
    local by = {}
    for _, config in ipairs(manifest.modules) do by[config.config] = config.names end
    same(by.bcel_both, {"weight", "pos_weight"})
    same(by.bcel_pos_weight, {"pos_weight"})
    same(by.nll, {})
  end)
end)
