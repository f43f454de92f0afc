-- lm.nn.init without torch: the fills, eye_, in-place writes to parameters,
-- seeded reproducibility, the layers' initialisation through it, and
-- argument errors (exact messages, at the caller's line). The draws against
-- torch's bounds and gains are tests/lua/torch_init_spec.lua's, the GPU's
-- tests/gpu/init_spec.lua's.
local lm = require 'lumen'

local I = lm.nn.init
local refused = dofile("tests/helpers/refused.lua")("nn_init_spec.lua", raises, truthy)

describe("lm.nn.init", function()
  it("is lm.nn.init, with torch's function names", function()
    for _, name in ipairs{"calculate_gain", "uniform_", "normal_", "constant_", "ones_", "zeros_", "eye_",
      "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_"} do
      eq(type(I[name]), "function", name)
    end
  end)

  it("fills in place and returns the tensor", function()
    local t = lm.zeros(3, 4)
    eq(I.constant_(t, 2.5), t)
    same(t:totable(), {{2.5, 2.5, 2.5, 2.5}, {2.5, 2.5, 2.5, 2.5}, {2.5, 2.5, 2.5, 2.5}})
    eq(I.zeros_(t), t)
    eq(t:abs():sum():item(), 0)
    eq(I.ones_(t), t)
    eq(t:sum():item(), 12)
    local n = lm.tensor({1, 2, 3}, "int32")
    same(I.constant_(n, 7):totable(), {7, 7, 7}, 0, "constant_ on an int32 tensor")
  end)

  it("eye_ writes the identity, square or rectangular, as torch.eye", function()
    same(I.eye_(lm.full({3, 3}, 5)):totable(), {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}})
    same(I.eye_(lm.full({2, 4}, 5)):totable(), {{1, 0, 0, 0}, {0, 1, 0, 0}})
    same(I.eye_(lm.full({4, 2}, 5)):totable(), {{1, 0}, {0, 1}, {0, 0}, {0, 0}})
    same(I.eye_(lm.full({1, 1}, 5)):totable(), {{1}})
    eq(I.eye_(lm.zeros(0, 3)):numel(), 0)
    local big = I.eye_(lm.randn(300, 200))
    eq(big:sum():item(), 200)
    eq(big:narrow(1, 201, 100):abs():sum():item(), 0)
    for _, i in ipairs{1, 57, 200} do eq(big[i][i], 1) end
  end)

  it("initialises a parameter that requires gradients (in place, without recording)", function()
    local p = lm.zeros(20, 10):requires_grad(true)
    refused(function() p:uniform_() end, "in-place change of a leaf tensor that requires gradients")
    for _, f in ipairs{function() return I.uniform_(p, -1, 1) end, function() return I.normal_(p) end,
      function() return I.xavier_uniform_(p) end, function() return I.kaiming_normal_(p) end,
      function() return I.trunc_normal_(p) end, function() return I.constant_(p, 3) end,
      function() return I.eye_(p) end} do
      eq(f(), p)
      truthy(p:requires_grad() and p.grad == nil, "still a leaf that requires gradients")
    end
    -- gradient recording is on again afterwards: a loss through p gives p a gradient
    I.ones_(p)
    p:sum():backward()
    eq(p.grad:sum():item(), 200)
  end)

  it("draws from the seeded generator: lm.manual_seed repeats them", function()
    for _, f in ipairs{I.uniform_, I.normal_, I.xavier_uniform_, I.xavier_normal_, I.kaiming_uniform_,
      I.kaiming_normal_, I.trunc_normal_} do
      lm.manual_seed(42)
      local a = f(lm.zeros(30, 20))
      lm.manual_seed(42)
      local b = f(lm.zeros(30, 20))
      eq((a - b):abs():max():item(), 0)
      truthy(a:std():item() > 0, "random values")
    end
  end)

  it("leaves a tensor with no elements as it is", function()
    for _, f in ipairs{I.kaiming_uniform_, I.kaiming_normal_, I.xavier_uniform_, I.trunc_normal_, I.uniform_} do
      eq(f(lm.zeros(0, 4)):numel(), 0)
    end
  end)

  it("gives the layers their initialisation: nn.Linear is xavier_uniform_, nn.Conv2d kaiming_uniform_ for relu",
    function()
      lm.manual_seed(5)
      local linear = lm.nn.Linear(50, 30)
      lm.manual_seed(5)
      eq((linear.weight:detach() - I.xavier_uniform_(lm.zeros(30, 50))):abs():max():item(), 0)
      -- the Glorot bound sqrt(6 / (in + out)) of lm.nn's documentation, bit for bit
      lm.manual_seed(5)
      local a = math.sqrt(6 / 80)
      eq((linear.weight:detach() - (lm.rand(30, 50) * (2 * a) - a)):abs():max():item(), 0)
      lm.manual_seed(5)
      local conv = lm.nn.Conv2d(3, 8, 3)
      lm.manual_seed(5)
      eq((conv.weight:detach() - I.kaiming_uniform_(lm.zeros(8, 3, 3, 3), {nonlinearity = "relu"})):abs():max()
        :item(), 0)
      -- and He's bound sqrt(6 / fan_in) of before it, bit for bit
      lm.manual_seed(5)
      local he = math.sqrt(6 / 27)
      eq((conv.weight:detach() - (lm.rand(8, 3, 3, 3) * (2 * he) - he)):abs():max():item(), 0)
      lm.manual_seed(5)
      local torch_like = lm.nn.Linear(50, 30, {init = "pytorch"})
      lm.manual_seed(5)
      local w = I.kaiming_uniform_(lm.zeros(30, 50), math.sqrt(5))
      local b = I.uniform_(lm.zeros(30), -1 / math.sqrt(50), 1 / math.sqrt(50))
      eq((torch_like.weight:detach() - w):abs():max():item(), 0)
      eq((torch_like.bias:detach() - b):abs():max():item(), 0)
      -- and torch's Linear bound 1 / sqrt(fan_in) for both, as before it
      lm.manual_seed(5)
      local k = 1 / math.sqrt(50)
      eq((torch_like.weight:detach() - (lm.rand(30, 50) * (2 * k) - k)):abs():max():item(), 0)
      eq((torch_like.bias:detach() - (lm.rand(30) * (2 * k) - k)):abs():max():item(), 0)
      -- nn.MultiheadAttention's in_proj_weight: torch's xavier_uniform_ of [3 E, E], as before it
      for _, e in ipairs{8, 64, 96} do
        lm.manual_seed(5)
        local attention = lm.nn.MultiheadAttention(e, 4)
        lm.manual_seed(5)
        local bound = math.sqrt(6 / (4 * e))
        eq((attention.in_proj_weight:detach() - (lm.rand(3 * e, e) * (2 * bound) - bound)):abs():max():item(), 0)
      end
    end)

  it("trunc_normal_ keeps every value in [a, b], also where a bound is many std away", function()
    lm.manual_seed(3)
    local t = I.trunc_normal_(lm.zeros(1000, 1000), {std = 0.02})
    truthy(t:abs():max():item() < 6 * 0.02, "no draw clamped to a = -2 or b = 2 from the far tail")
    local s = I.trunc_normal_(lm.zeros(100, 100), {mean = 5, std = 2, a = 4.5, b = 4.75})
    truthy(s:min():item() >= 4.5 and s:max():item() <= 4.75, "inside [4.5, 4.75]")
  end)

  it("trunc_normal_ where [a, b] holds nearly all the mass: a normal's statistics, and a fresh draw when one "
      .. "value lands outside", function()
    lm.manual_seed(8)
    local t = I.trunc_normal_(lm.zeros(1000, 1000), {std = 0.02}) -- (100 std inside: a plain normal draw)
    local n = t:numel()
    truthy(math.abs(t:mean():item()) < 4 * 0.02 / math.sqrt(n), "mean 0 within 4 standard errors")
    truthy(math.abs(t:std():item() / 0.02 - 1) < 0.005, "std 0.02: " .. t:std():item())
    local beyond = (t:abs() - 2 * 0.02):gt(0):float():mean():item() -- a normal's mass beyond 2 std: 0.0455
    truthy(math.abs(beyond - 0.0455) < 4 * math.sqrt(0.0455 * 0.9545 / n), "beyond 2 std: " .. beyond)
    -- three values in [-3, 3] (std 1): 0.008 expected outside, so a plain draw
    -- comes first; a seed where it lands outside must give a fresh draw inside
    for seed = 1, 5000 do
      lm.manual_seed(seed)
      local plain = lm.zeros(3):normal_(0, 1)
      if plain:abs():max():item() > 3 then
        lm.manual_seed(seed)
        local drawn = I.trunc_normal_(lm.zeros(3), 0, 1, -3, 3)
        truthy(drawn:abs():max():item() <= 3, "inside [-3, 3]")
        truthy((drawn - plain):abs():max():item() > 0, "not the plain draw")
        return
      end
    end
    error("no seed in 5000 puts one of three normal draws beyond 3 std")
  end)

  it("calculate_gain: torch's values", function()
    eq(I.calculate_gain("linear"), 1)
    eq(I.calculate_gain("conv2d"), 1)
    eq(I.calculate_gain("sigmoid"), 1)
    eq(I.calculate_gain("tanh"), 5 / 3)
    eq(I.calculate_gain("relu"), math.sqrt(2))
    eq(I.calculate_gain("leaky_relu"), math.sqrt(2 / (1 + 0.01 ^ 2)))
    eq(I.calculate_gain("leaky_relu", 0.2), math.sqrt(2 / 1.04))
    eq(I.calculate_gain("selu"), 0.75)
  end)

  it("refuses wrong arguments, naming the function, at the caller's line", function()
    local t = lm.zeros(4, 3)
    refused(function() I.uniform_("x") end, "lm.nn.init.uniform_: tensor must be a tensor, got \"x\"")
    refused(function() I.normal_(nil) end, "lm.nn.init.normal_: tensor must be a tensor, got nil")
    refused(function() I.xavier_uniform_(lm.tensor({{1, 2}}, "int32")) end,
      "lm.nn.init.xavier_uniform_: tensor must be float32 (a random draw), got int32")
    refused(function() I.uniform_(t, 1, 0) end, "lm.nn.init.uniform_: a (1) must not be above b (0)")
    refused(function() I.uniform_(t, "0") end, "lm.nn.init.uniform_: a must be a finite number, got \"0\"")
    refused(function() I.normal_(t, 0, -1) end, "lm.nn.init.normal_: std must be >= 0, got -1")
    refused(function() I.normal_(t, 0 / 0) end, "lm.nn.init.normal_: mean must be a finite number, got nan")
    refused(function() I.constant_(t) end, "lm.nn.init.constant_: val must be a number, got nil")
    refused(function() I.ones_(3) end, "lm.nn.init.ones_: tensor must be a tensor, got 3")
    refused(function() I.zeros_({}) end, "lm.nn.init.zeros_: tensor must be a tensor, got a table")
    refused(function() I.eye_(lm.zeros(2, 2, 2)) end,
      "lm.nn.init.eye_: only tensors with 2 dimensions are supported, got shape 2x2x2")
    refused(function() I.xavier_uniform_(lm.zeros(5)) end, "lm.nn.init.xavier_uniform_: fan in and fan out can "
      .. "not be computed for a tensor with fewer than 2 dimensions, got shape 5")
    refused(function() I.kaiming_normal_(lm.zeros(5)) end, "lm.nn.init.kaiming_normal_: fan in and fan out can "
      .. "not be computed for a tensor with fewer than 2 dimensions, got shape 5")
    refused(function() I.xavier_normal_(t, -1) end,
      "lm.nn.init.xavier_normal_: gain must be a finite number >= 0, got -1")
    refused(function() I.kaiming_uniform_(t, {mode = "fan"}) end,
      "lm.nn.init.kaiming_uniform_: mode must be 'fan_in' or 'fan_out', got \"fan\"")
    refused(function() I.kaiming_uniform_(t, 0, "fan") end,
      "lm.nn.init.kaiming_uniform_: mode must be 'fan_in' or 'fan_out', got \"fan\"")
    refused(function() I.kaiming_uniform_(t, {mdoe = "fan_in"}) end,
      "lm.nn.init.kaiming_uniform_: unknown option 'mdoe'; did you mean mode? (known: a, mode, nonlinearity)")
    refused(function() I.kaiming_normal_(t, {nonlinearity = "rleu"}) end,
      "lm.nn.init.kaiming_normal_: unknown nonlinearity 'rleu'; did you mean 'relu'? (known: sigmoid, tanh, "
      .. "relu, leaky_relu, selu, linear, conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, "
      .. "conv_transpose3d)")
    refused(function() I.kaiming_normal_(t, {a = "0.1"}) end,
      "lm.nn.init.kaiming_normal_: a must be a finite number, got \"0.1\"")
    refused(function() I.kaiming_normal_(t, "relu") end, "lm.nn.init.kaiming_normal_: the second argument must "
      .. "be an options table {a, mode, nonlinearity} or torch's a (a number), got \"relu\"")
    refused(function() I.kaiming_uniform_(t, {}, "fan_in") end,
      "lm.nn.init.kaiming_uniform_: takes (tensor [, {a, mode, nonlinearity}]) or torch's positional")
    refused(function() I.calculate_gain("softmax") end, "lm.nn.init.calculate_gain: unknown nonlinearity 'softmax'")
    refused(function() I.calculate_gain(3) end, "lm.nn.init.calculate_gain: nonlinearity must be a string, got 3")
    refused(function() I.calculate_gain("leaky_relu", true) end,
      "lm.nn.init.calculate_gain: the negative slope of leaky_relu must be a finite number, got true")
    refused(function() I.trunc_normal_(t, {std = 0}) end, "lm.nn.init.trunc_normal_: std must be > 0, got 0")
    refused(function() I.trunc_normal_(t, {a = 1, b = 1}) end, "lm.nn.init.trunc_normal_: a (1) must be below b (1)")
    refused(function() I.trunc_normal_(t, 0, 1, 2, -2) end, "lm.nn.init.trunc_normal_: a (2) must be below b (-2)")
    refused(function() I.trunc_normal_(t, {sdt = 1}) end,
      "lm.nn.init.trunc_normal_: unknown option 'sdt'; did you mean std? (known: a, b, mean, std)")
    refused(function() I.trunc_normal_(t, {}, 1) end, "lm.nn.init.trunc_normal_: takes (tensor [, {mean, std, a, b}])")
  end)

  it("is listed by help and documented in docs/api.md", function()
    local help = require 'lumen.help'
    local listing = help.text("lm.nn.init.")
    for _, name in ipairs{"calculate_gain", "uniform_", "normal_", "constant_", "ones_", "zeros_", "eye_",
      "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_"} do
      truthy(listing:find("lm.nn.init." .. name, 1, true), name .. " listed: " .. listing)
      local entry = help.entry("lm.nn.init." .. name)
      truthy(entry and entry:find("lm.nn.init." .. name, 1, true), name .. " has an entry")
    end
  end)
end)
