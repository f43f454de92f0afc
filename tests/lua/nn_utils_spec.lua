-- lm.nn.utils (gradient clipping), nn.ModuleList and the loss modules
-- nn.MSELoss and nn.CrossEntropyLoss against hand-computed values, and their
-- argument errors (named, at the caller's line). The comparison with torch
-- itself is tests/lua/torch_nn_utils_spec.lua.
local lm = require 'lumen'
local nn = lm.nn
local utils = lm.nn.utils

local refused = dofile("tests/helpers/refused.lua")("nn_utils_spec.lua", raises, truthy)

-- a parameter of the given values with gradient `grad` (a table) or none
local function param(values, grad)
  local p = lm.tensor(values):requires_grad(true)
  if grad then p.grad = lm.tensor(grad) end
  return p
end

describe("lm.nn.utils.clip_grad_norm_", function()
  it("scales every gradient by max_norm / (total + 1e-6) for norm_type 2, 1 and inf", function()
    -- gradients {3, 4} and {12}: norms 13 (2), 19 (1), 12 (inf)
    for _, c in ipairs{{2, 13}, {1, 19}, {math.huge, 12}, {"inf", 12}} do
      local a, b = param({0, 0}, {3, 4}), param({0}, {12})
      local total = utils.clip_grad_norm_({a, b}, 6.5, c[1])
      near(total, c[2], 1e-5, "total for norm_type " .. tostring(c[1]))
      local s = 6.5 / (c[2] + 1e-6)
      same(a.grad:totable(), {3 * s, 4 * s}, 1e-6)
      same(b.grad:totable(), {12 * s}, 1e-6)
    end
  end)

  it("takes p-norms for any p > 0 (p = 3 and 0.5)", function()
    local a, b = param({0, 0}, {1, -2}), param({0}, {2})
    near(utils.clip_grad_norm_({a, b}, 100, 3), 17 ^ (1 / 3), 1e-6)
    same(a.grad:totable(), {1, -2}, 0, "max_norm above the total: unchanged")
    near(utils.clip_grad_norm_(a, 100, 0.5), (1 + math.sqrt(2)) ^ 2, 1e-5)
  end)

  it("takes a module, a tensor or a list, and skips parameters without a gradient", function()
    local net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    local ps = net:parameters()
    ps[1].grad = lm.tensor{{3, 0}, {0, 0}}
    ps[4].grad = lm.tensor{4}
    near(utils.clip_grad_norm_(net, 1), 5, 1e-6)
    same(ps[1].grad:totable(), {{3 / (5 + 1e-6), 0}, {0, 0}}, 1e-7)
    same(ps[4].grad:totable(), {4 / (5 + 1e-6)}, 1e-7)
    eq(ps[2].grad, nil, "a parameter without a gradient keeps none")
    local lone = param({0, 0}, {6, 8})
    near(utils.clip_grad_norm_(lone, 5), 10, 1e-6)
    same(lone.grad:totable(), {3, 4}, 1e-5)
    eq(utils.clip_grad_norm_({param({1})}, 1), 0, "no gradient at all: 0, as torch's tensor(0.)")
    eq(utils.clip_grad_norm_({}, 1), 0)
    local empty = lm.zeros(0):requires_grad(true)
    empty.grad = lm.zeros(0)
    near(utils.clip_grad_norm_({empty, param({0}, {2})}, 1, math.huge), 2, 0, "an empty gradient adds nothing")
  end)

  it("does not overflow float32 where the squares would", function()
    local a = param({0, 0}, {3e20, 4e20})
    local total = utils.clip_grad_norm_({a}, 1)
    truthy(math.abs(total - 5e20) < 5e20 * 1e-6, "total " .. total)
    same(a.grad:totable(), {0.6, 0.8}, 1e-6)
    -- gradients near float32's largest: 1 / 1e38 and max_norm / total are
    -- below its normal range, which Lumen flushes to 0 (total 0 and no
    -- clipping, then every gradient 0, before)
    for _, big in ipairs({1e38, 8e37, 3e38}) do -- (3e38: a total past float32's largest)
      a = param({0, 0}, {big, big})
      total = utils.clip_grad_norm_(a, 1)
      truthy(math.abs(total - big * math.sqrt(2)) < big * 1e-6, "total " .. total)
      same(a.grad:totable(), {math.sqrt(0.5), math.sqrt(0.5)}, 1e-6)
    end
  end)

  it("lets a NaN or infinite total through, as torch 1.13 (error_if_nonfinite = false)", function()
    local a, b = param({0, 0}, {0 / 0, 1}), param({0}, {2})
    local total = utils.clip_grad_norm_({a, b}, 1)
    truthy(total ~= total, "NaN total")
    for _, v in ipairs(b.grad:totable()) do truthy(v ~= v, "gradients multiplied by NaN") end
    a, b = param({0, 0}, {math.huge, 1}), param({0}, {2})
    eq(utils.clip_grad_norm_({a, b}, 1), math.huge)
    eq(b.grad:totable()[1], 0, "multiplied by 1 / inf = 0")
    local g = a.grad:totable()
    truthy(g[1] ~= g[1] and g[2] == 0, "inf * 0 is NaN")
    eq(utils.clip_grad_norm_({param({0}, {math.huge})}, 1, math.huge), math.huge)
  end)

  it("raises with error_if_nonfinite = true and leaves the gradients", function()
    local a = param({0, 0}, {math.huge, 1})
    refused(function() utils.clip_grad_norm_(a, 1, 2, true) end,
      "lm.nn.utils.clip_grad_norm_: the total norm of order 2 of the gradients is inf (error_if_nonfinite)")
    eq(a.grad:totable()[2], 1)
    near(utils.clip_grad_norm_(param({0}, {2}), 1, 2, true), 2, 1e-6, "a finite total passes")
  end)

  it("refuses wrong arguments at the caller's line", function()
    local p = param({0}, {1})
    local f = "lm.nn.utils.clip_grad_norm_: "
    refused(function() utils.clip_grad_norm_(3, 1) end,
      f .. "parameters must be a module, a tensor or a list of tensors, got 3")
    refused(function() utils.clip_grad_norm_({w = p}, 1) end, "got a table that is not a list")
    refused(function() utils.clip_grad_norm_({p, "w"}, 1) end, f .. 'parameters[2] must be a tensor, got "w"')
    refused(function() utils.clip_grad_norm_(p) end, f .. "max_norm must be a number >= 0, got nil")
    refused(function() utils.clip_grad_norm_(p, -1) end, f .. "max_norm must be a number >= 0, got -1")
    refused(function() utils.clip_grad_norm_(p, 0 / 0) end, f .. "max_norm must be a number >= 0, got nan")
    refused(function() utils.clip_grad_norm_(p, 1, 0) end, f .. "norm_type must be a number > 0")
    refused(function() utils.clip_grad_norm_(p, 1, "max") end, f .. "norm_type must be a number > 0")
    refused(function() utils.clip_grad_norm_(p, 1, 2, 1) end, f .. "error_if_nonfinite must be true or false, got 1")
    same(p.grad:totable(), {1}, 0, "a refused call changes nothing")
  end)
end)

describe("lm.nn.utils.clip_grad_value_", function()
  it("clamps every gradient to [-clip_value, clip_value] in place", function()
    local a, b, c = param({0, 0, 0}, {-3, 0.1, 2}), param({0}, {-0.2}), param({0})
    eq(utils.clip_grad_value_({a, b, c}, 0.5), nil)
    same(a.grad:totable(), {-0.5, 0.1, 0.5}, 1e-7)
    same(b.grad:totable(), {-0.2}, 1e-7)
    eq(c.grad, nil)
    local net = nn.Linear(2, 1)
    net.weight.grad = lm.tensor{{5, -5}}
    utils.clip_grad_value_(net, 1)
    same(net.weight.grad:totable(), {{1, -1}})
  end)

  it("refuses wrong arguments at the caller's line", function()
    local f = "lm.nn.utils.clip_grad_value_: "
    local p = param({0}, {1})
    refused(function() utils.clip_grad_value_(p, -1) end, f .. "clip_value must be a number >= 0, got -1")
    refused(function() utils.clip_grad_value_(p, "1") end, f .. 'clip_value must be a number >= 0, got "1"')
    refused(function() utils.clip_grad_value_(p, 0 / 0) end, f .. "clip_value must be a number >= 0, got nan")
    refused(function() utils.clip_grad_value_(nil, 1) end, f .. "parameters must be a module")
  end)
end)

describe("nn.ModuleList", function()
  it("says which child slot was assigned over, in the walks and in a Sequential's forward", function()
    -- a plain write over an existing slot bypasses __newindex (l[1] = 5 was
    -- accepted, then parameters() failed with "attempt to index a number")
    local l = nn.ModuleList({nn.Linear(2, 2)})
    l[1] = 5
    refused(function() l:parameters() end, "nn.ModuleList: its child [1] holds 5, not a module: a child's slot "
      .. "was assigned over (assign a module there, or build the model again)")
    local s = nn.Sequential(nn.Linear(2, 2), nn.ELU())
    s[2] = nil
    refused(function() s(lm.randn(3, 2)) end, "nn.Sequential: its child [2] holds nil, not a module")
    refused(function() s:train() end, "nn.Sequential: its child [2] holds nil, not a module")
    s[2] = nn.ReLU()
    eq(s(lm.ones(1, 2)):shape_string(), "1x2", "a module put back runs")
  end)

  local Net = nn.Module:extend("NetWithList")
  function Net:init()
    self.layers = nn.ModuleList({nn.Linear(3, 4), nn.Dropout(0.5)})
    self.layers:append(nn.Linear(4, 2)):extend({nn.ELU()})
    self.head = nn.Linear(2, 1)
  end
  function Net:forward(x)
    for _, m in ipairs(self.layers) do x = m(x) end
    return self.head(x)
  end

  it("holds modules in order: list[i], #list, size(), ipairs, append and extend", function()
    local a, b, c = nn.Linear(1, 1), nn.ReLU(), nn.Tanh()
    local list = nn.ModuleList({a})
    eq(list:append(b), list, "append returns the list")
    eq(list:extend(nn.ModuleList({c})), list, "extend takes a ModuleList too")
    eq(#list, 3)
    eq(list:size(), 3)
    eq(list[1], a)
    eq(list[3], c)
    local seen = {}
    for i, m in ipairs(list) do seen[i] = m end
    eq(#seen, 3)
    eq(seen[2], b)
    eq(#nn.ModuleList(), 0)
    eq(#nn.ModuleList({}), 0)
  end)

  it("numbers its children from 0 in state-dict names, as torch (checked with torch 1.13)", function()
    local net = Net()
    local names = {}
    for i, pair in ipairs(net:named_parameters()) do names[i] = pair[1] end
    -- torch: nn.ModuleList([Linear(3, 4), Dropout()]) + append(Linear(4, 2)) + extend([ELU()]), head Linear(2, 1)
    same(names, {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias", "head.weight", "head.bias"})
    local state = net:state_dict()
    truthy(state["layers.2.weight"] and state["layers.0.bias"], "the state dict uses the same names")
    eq(#net:parameters(), 6)
    eq(net:parameters()[3], net.layers[3].weight)
  end)

  it("is reached by train, evaluate, to, and save/load", function()
    local net = Net()
    net:evaluate()
    eq(net.layers[2].training, false, "evaluate reaches the list's modules")
    net:train()
    eq(net.layers[2].training, true)
    local w = net.layers[1].weight
    eq(net:to("cpu"), net)
    eq(net.layers[1].weight, w, "to keeps each tensor")
    local path = os.tmpname()
    net:save(path)
    local other = Net()
    other:load(path)
    os.remove(path)
    eq(rel_error(other.layers[3].weight, net.layers[3].weight), 0)
    eq(net(lm.randn(2, 3)):shape_string(), "2x1")
  end)

  it("replaces a module in place with list[i] = m", function()
    local list = nn.ModuleList({nn.Linear(1, 1), nn.Linear(1, 1)})
    local m = nn.Linear(1, 1)
    list[2] = m
    eq(list[2], m)
    eq(list:parameters()[3], m.weight)
    eq(#list, 2)
  end)

  it("is not callable and refuses what is not a module at the caller's line", function()
    local list = nn.ModuleList({nn.ReLU()})
    refused(function() list(lm.zeros(1)) end,
      "nn.ModuleList is not callable (as torch's ModuleList, it has no forward)")
    refused(function() list[3] = nn.ReLU() end, "nn.ModuleList: index 3 is out of range 1..1 (append adds a module)")
    refused(function() nn.ModuleList(nn.ReLU()) end,
      "nn.ModuleList: modules must be a list of modules, got a single module")
    refused(function() nn.ModuleList({nn.ReLU(), 3}) end, "nn.ModuleList: modules[2] must be a module")
    refused(function() nn.ModuleList("x") end, 'nn.ModuleList: modules must be a list of modules, got "x"')
    refused(function() list:append({}) end, "nn.ModuleList:append: the module must be a module")
    refused(function() list:extend({a = nn.ReLU()}) end, "nn.ModuleList:extend: modules must be a list of modules")
    refused(function() list:extend({nn.Tanh(), false}) end, "nn.ModuleList:extend: modules[2] must be a module")
    eq(#list, 1, "a refused extend adds nothing")
  end)
end)

describe("loss modules", function()
  it("nn.MSELoss is torch's mean of squares over every element (not F.mse)", function()
    -- three features: F.mse (1/2 the sum over features, mean over the batch) would give 6.25
    local out = lm.tensor{{1, 2, 0}, {3, 5, 1}}:requires_grad(true)
    local target = lm.tensor{{0, 0, 0}, {1, 1, 1}}
    local loss = nn.MSELoss()(out, target)
    near(loss:item(), (1 + 4 + 4 + 16) / 6, 1e-6)
    loss:backward()
    same(out.grad:totable(), {{1 / 3, 2 / 3, 0}, {2 / 3, 4 / 3, 0}}, 1e-6, "gradient 2 (out - target) / n")
    near(nn.MSELoss({reduction = "sum"})(out, target):item(), 25, 1e-5)
    same(nn.MSELoss({reduction = "none"})(out, target):totable(), {{1, 4, 0}, {4, 16, 0}}, 1e-6)
  end)

  it("nn.CrossEntropyLoss is F.cross_entropy, labels 1-based", function()
    local logits = lm.tensor{{0, 0}, {math.log(3), 0}}
    local labels = lm.tensor({2, 1}, 'int32')
    -- -log(1/2) and -log(3/4)
    near(nn.CrossEntropyLoss()(logits, labels):item(), (math.log(2) + math.log(4 / 3)) / 2, 1e-6)
    near(nn.CrossEntropyLoss({reduction = "mean", label_smoothing = 0})(logits, labels):item(),
      lm.nn.functional.cross_entropy(logits, labels):item(), 0, "torch's defaults are accepted")
  end)

  it("refuse wrong options and arguments, at the caller's line", function()
    local ce, mse = nn.CrossEntropyLoss(), nn.MSELoss()
    refused(function() nn.CrossEntropyLoss({reduction = "max"}) end,
      'nn.CrossEntropyLoss: reduction must be \'mean\', \'sum\' or \'none\', got "max"')
    refused(function() nn.CrossEntropyLoss({label_smoothing = -0.1}) end,
      "nn.CrossEntropyLoss: label_smoothing must be a number in [0, 1], got -0.1")
    refused(function() nn.CrossEntropyLoss({reduce = false}) end, "nn.CrossEntropyLoss: unknown option 'reduce'")
    refused(function() nn.MSELoss({reduction = "max"}) end,
      "nn.MSELoss: reduction must be 'mean', 'sum' or 'none', got \"max\"")
    refused(function() nn.MSELoss({size_average = true}) end, "nn.MSELoss: unknown option 'size_average'")
    refused(function() ce(lm.zeros(2, 3), lm.tensor{1, 2}) end,
      "nn.CrossEntropyLoss: labels must be an int32 tensor of 1-based classes")
    refused(function() ce(nil, lm.tensor({1}, 'int32')) end,
      "nn.CrossEntropyLoss: the logits must be a tensor, got nil")
    refused(function() mse(lm.zeros(2, 3), lm.zeros(3)) end,
      "nn.MSELoss: the output and the target differ in shape, 2x3 and 3")
    refused(function() mse(lm.zeros(2), 1) end, "nn.MSELoss: the target must be a tensor, got 1")
  end)
end)

describe("help", function()
  it("finds the entries of the new names in docs/api.md", function()
    local help = require 'lumen.help'
    for _, name in ipairs{"lm.nn.utils.clip_grad_norm_", "lm.nn.utils.clip_grad_value_", "lm.nn.ModuleList",
      "lm.nn.MSELoss", "lm.nn.CrossEntropyLoss"} do
      local entry = help.entry(name)
      truthy(entry and entry:find("`" .. name, 1, true), "an entry of its own for " .. name)
    end
  end)
end)
