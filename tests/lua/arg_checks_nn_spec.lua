-- Wrong arguments to lm.nn.functional, the modules' own methods, lm.no_grad
-- and the gradient check: each is a Lua error that names the function and
-- what was wrong, pointing at the caller's line (this file), never Lua's own
-- "attempt to index ..." from inside Lumen.
local lm = require 'lumen'
local F = lm.nn.functional

local refused = dofile("tests/helpers/refused.lua")("arg_checks_nn_spec.lua", raises, truthy)

describe("lm.nn.functional argument checks", function()
  it("refuses what is not a tensor", function()
    refused(function() F.relu("x") end, 'relu: input must be a tensor, got "x"')
    refused(function() F.elu(3) end, "elu: input must be a tensor, got 3")
    refused(function() F.sigmoid({}) end, "sigmoid: input must be a tensor, got a table")
    refused(function() F.tanh(nil) end, "tanh: input must be a tensor, got nil")
    refused(function() F.silu(true) end, "silu: input must be a tensor, got true")
    refused(function() F.gelu(print) end, "gelu: input must be a tensor, got a function")
    refused(function() F.global_avg_pool2d(2) end, "global_avg_pool2d: input must be a tensor, got 2")
    refused(function() F.adaptive_avg_pool2d(nil, 2) end, "adaptive_avg_pool2d: input must be a tensor, got nil")
    refused(function() F.squared_distances(lm.zeros(2, 2), 5) end,
      "squared_distances: b must be a tensor (or nil), got 5")
    refused(function() F.mmd(lm.zeros(2, 2), "p") end, 'mmd: p (the prior samples) must be a tensor, got "p"')
    refused(function() F.dropout2d({}, 0.5, true) end, "dropout2d: input must be a tensor, got a table")
  end)

  it("checks the other arguments", function()
    local x = lm.randn(4, 3)
    refused(function() F.dropout(x, "half", true) end, 'dropout: p must be a number, got "half"')
    refused(function() F.dropout(x, 0 / 0, true) end, "dropout: p must be in [0, 1), got")
    eq(F.dropout(x, nil, false), x, "no p is fine when not training")
    refused(function() F.gelu(x, 3) end, "gelu: approximate must be 'none' or 'tanh', got 3")
    refused(function() F.mmd(x, x, 0.5) end, "mmd: options must be a table, got 0.5")
    refused(function() F.batch_norm(lm.randn(4, 3), lm.zeros(3)) end,
      "batch_norm: running_mean and running_var go together")
    refused(function() F.batch_norm(x, nil, nil, "w") end, 'batch_norm: weight must be a tensor (or nil), got "w"')
    refused(function() F.group_norm(lm.randn(2, 4, 3), 0) end,
      "group_norm: num_groups must be a positive integer, got 0")
    refused(function() F.layer_norm(x, {"3"}) end, "layer_norm: normalized_shape must be a size or a list of sizes")
    refused(function() F.embedding(lm.tensor({1, 2}, 'int32'), lm.zeros(4)) end,
      "embedding: weight must be [num, dim], got 4")
    refused(function() F.embedding(lm.tensor({1, 2}, 'int32'), lm.zeros(4, 2), 1.5) end,
      "embedding: padding_idx must be an integer row number (or nil), got 1.5")
  end)
end)

describe("module methods", function()
  local net = lm.nn.Sequential(lm.nn.Linear(3, 2), lm.nn.ELU())

  it("describe works without an indent", function()
    eq(net:describe(), "nn.Sequential {\n  (1): nn.Linear(3 -> 2)\n  (2): nn.ELU\n}")
    refused(function() net:describe(2) end, "describe: indent must be a string, got 2")
  end)

  it("checks names, modes, devices, paths and hooks", function()
    refused(function() net:named_parameters(5) end, "named_parameters: the prefix must be a string, got 5")
    refused(function() net:named_modules(nil, "list") end,
      'named_modules: the list to append to must be a table, got "list"')
    refused(function() net:modules(1) end, "modules: the list to append to must be a table, got 1")
    refused(function() net:train("yes") end, 'train: mode must be true or false, got "yes"')
    refused(function() net:to("gpu") end, "to: the device must be 'cpu' or 'cuda', got \"gpu\"")
    refused(function() net:save(3) end, "save: path must be a string, got 3")
    refused(function() net:load(nil) end, "load: path must be a string, got nil")
    -- a misspelt option would save in float32 or load strictly without a word
    local path = os.tmpname()
    refused(function() net:save(path, {dtpye = "float16"}) end, "save: unknown option 'dtpye'; did you mean dtype?")
    net:save(path)
    refused(function() net:load(path, {stirct = false}) end, "load: unknown option 'stirct'; did you mean strict?")
    refused(function() net:load_state_dict(net:state_dict(), {strikt = false}) end,
      "load_state_dict: unknown option 'strikt'; did you mean strict?")
    -- the file format's strings end at a NUL: such metadata is refused, not cut
    refused(function() lm.save(path, {a = lm.ones(1)}, {metadata = {["k\0x"] = "v"}}) end,
      "save: a metadata key or value contains a NUL byte")
    os.remove(path)
    refused(function() net:register_forward_hook("h") end,
      'register_forward_hook: the hook must be a function, got "h"')
    refused(function() net[1]:param(1, lm.zeros(1)) end, "param: name must be a string, got 1")
    refused(function() net[1]:buffer("b", 2) end, "buffer: 'b' must be a tensor")
  end)

  it("refuses a state whose names are not strings, loading nothing", function()
    local before = net[1].weight:clone()
    refused(function() net:load_state_dict({[1] = lm.zeros(2, 3)}) end,
      "load_state_dict: the state's names must be strings, got 1")
    refused(function() net:load_state_dict(net:state_dict(), 7) end, "load_state_dict: options must be a table, got 7")
    eq((net[1].weight - before):abs():max():item(), 0, "the weights are as they were")
  end)
end)

describe("lm.no_grad and lm.autograd.gradcheck", function()
  it("say what they needed", function()
    refused(function() lm.no_grad(3) end, "no_grad: the argument must be a function to run, got number")
    refused(function() lm.autograd.gradcheck("f", {}) end, 'gradcheck: fn must be a function, got "f"')
    refused(function() lm.autograd.gradcheck(function(x) return x end, 3) end,
      "gradcheck: inputs (a list of fn's arguments) must be a table, got 3")
    refused(function() lm.autograd.gradcheck(function() return 2 end, {}) end,
      "gradcheck: fn must return a tensor, got 2")
  end)

  it("lm.nn.evaluating checks its arguments", function()
    refused(function() lm.nn.evaluating(nil, function() end) end, "lm.nn.evaluating: models must be a table, got nil")
    refused(function() lm.nn.evaluating({1}, function() end) end,
      "lm.nn.evaluating: models[1] must be a module (an lm.nn layer or model), got 1")
    refused(function() lm.nn.evaluating(lm.nn.Linear(2, 2), 5) end, "lm.nn.evaluating: fn must be a function, got 5")
  end)
end)
