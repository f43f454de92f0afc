-- lm.nn.utils' gradient clipping, nn.ModuleList's state-dict names and the
-- loss modules against PyTorch (Debian's python3-torch):
-- tests/torch/nn_utils_reference.py clips fixed gradients with
-- torch.nn.utils, saves a module holding a ModuleList and computes
-- MSELoss and CrossEntropyLoss; here every manifest case is replayed with
-- Lumen and compared to 1e-5 relative error (max |lumen - torch| / max |torch|).
local lm = require 'lumen'
local json = require 'lumen.json'
local nn = lm.nn

local py = dofile("tests/helpers/python.lua")

if not py.can_import("torch") then
  skip("/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed", true)
end

-- the reference's failure is this file's failure, with its output
local ref, meta = py.safetensors_reference("tests/torch/nn_utils_reference.py", "nn_utils.safetensors")
local manifest = json.decode(meta.manifest)

local TOL = 1e-5

local function close(got, want, what)
  eq(got:shape_string(), want:shape_string(), what .. ": shape")
  local err = rel_error(got, want)
  if err > TOL then error(string.format("%s: relative error %.3g > %g", what, err, TOL), 2) end
end

describe("lm.nn.utils against torch.nn.utils", function()
  local checked = 0
  for _, case in ipairs(manifest.cases) do
    it(string.format("%s (clip_grad_%s_)", case.name, case.fn), function()
      local params = {}
      for k = 1, case.nparams do
        local g = ref[case.name .. ".grad." .. k]
        params[k] = lm.zeros(g and g:shape() or {2}):requires_grad(true)
        if g then params[k].grad = g:clone() end
      end
      local arg = case.single and params[1] or params
      if case.fn == "norm" then
        local norm_type = case.norm_type == "inf" and math.huge or case.norm_type
        local total = lm.nn.utils.clip_grad_norm_(arg, case.max_norm, norm_type)
        eq(type(total), "number", "the total norm is a number")
        local want = ref[case.name .. ".total"]:item()
        if math.abs(total - want) > TOL * math.abs(want) then
          error(string.format("total norm %.9g, torch %.9g", total, want), 0)
        end
      else
        eq(lm.nn.utils.clip_grad_value_(arg, case.clip_value), nil)
      end
      local with_grad = 0
      for k, p in ipairs(params) do
        local want = ref[case.name .. ".after." .. k]
        if want then
          with_grad = with_grad + 1
          close(p.grad, want, "gradient " .. k)
        else
          eq(p.grad, nil, "a parameter without a gradient keeps none")
        end
      end
      truthy(with_grad > 0, "some gradients compared")
      checked = checked + 1
    end)
  end

  it("checked every case of the manifest, the ones the brief names among them", function()
    local names = {}
    for _, case in ipairs(manifest.cases) do names[case.name] = case end
    for _, name in ipairs{"norm1", "norm2", "norm3", "norm_inf", "norm2_no_grad", "norm2_above_total", "value"} do
      truthy(names[name], "the manifest has " .. name)
    end
    eq(checked, #manifest.cases, "cases checked")
  end)

  it("leaves gradients unchanged when max_norm is above the total (checked against the gradients before)", function()
    for k = 1, 3 do
      eq(rel_error(ref["norm2_above_total.after." .. k], ref["norm2_above_total.grad." .. k]), 0)
    end
    truthy(rel_error(ref["norm2.after.1"], ref["norm2.grad.1"]) > 0.1, "the norm2 case does clip")
  end)
end)

describe("nn.ModuleList against torch.nn.ModuleList", function()
  -- the twin of nn_utils_reference.py's Net
  local Net = nn.Module:extend("Net")
  function Net:init()
    self.layers = nn.ModuleList({nn.Linear(3, 4), nn.ELU()})
    self.layers:append(nn.Linear(4, 4))
    self.layers:extend({nn.ELU(), nn.Linear(4, 2)})
    self.head = nn.Linear(2, 1)
  end
  function Net:forward(x)
    for _, m in ipairs(self.layers) do x = m(x) end
    return self.head(x)
  end

  it("names the parameters as torch does, in torch's order", function()
    local names = {}
    for i, pair in ipairs(Net():named_parameters()) do names[i] = pair[1] end
    same(names, manifest.modulelist_names)
    same(names, {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
      "layers.4.weight", "layers.4.bias", "head.weight", "head.bias"})
  end)

  it("loads torch's state dict strictly and computes torch's output", function()
    local state = {}
    for name, t in pairs(ref) do
      local key = name:match("^modulelist%.(.+)$")
      if key and key ~= "x" and key ~= "y" then state[key] = t end
    end
    local net = Net()
    local missing, unexpected = net:load_state_dict(state)
    eq(#missing + #unexpected, 0)
    close(net(ref["modulelist.x"]), ref["modulelist.y"], "output")
    local saved = net:state_dict()
    for name in pairs(state) do truthy(saved[name], "the saved state has " .. name) end
  end)
end)

describe("loss modules against torch.nn", function()
  it("MSELoss with each reduction", function()
    for _, r in ipairs{"mean", "sum", "none"} do
      local loss = nn.MSELoss(r ~= "mean" and {reduction = r} or nil)(ref["mse.output"], ref["mse.target"])
      close(loss, ref["mse." .. r .. ".loss"], "MSELoss " .. r)
    end
  end)
  it("CrossEntropyLoss", function()
    close(nn.CrossEntropyLoss()(ref["ce.logits"], ref["ce.labels"]), ref["ce.loss"], "CrossEntropyLoss")
  end)
end)
