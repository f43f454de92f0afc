-- Modules, optimisers, schedules and small training runs.
local lm = require 'lumen'
local nn, F, optim = lm.nn, lm.nn.functional, lm.optim

describe("modules", function()
  it("lists parameters with stable names", function()
    local net = nn.Sequential(nn.Linear(4, 3), nn.ELU(), nn.Linear(3, 2, {bias = false}))
    local names = {}
    for _, p in ipairs(net:named_parameters()) do names[#names + 1] = p[1] end
    same(names, {"0.weight", "0.bias", "2.weight"}) -- PyTorch's names: numbered from 0
    eq(#net:parameters(), 3)
    same(net[1].weight:shape(), {3, 4})
    eq(net[1].bias:sum():item(), 0) -- zero biases
  end)

  it("initialises Linear with Glorot-uniform bounds", function()
    lm.manual_seed(1)
    local l = nn.Linear(300, 200)
    local bound = math.sqrt(6 / 500)
    truthy(l.weight:abs():max():item() <= bound, "within the bound")
    near(l.weight:std():item(), bound / math.sqrt(3), 0.003) -- uniform: std = bound / sqrt(3)
  end)

  it("switches training and evaluation recursively", function()
    local net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    net:evaluate()
    eq(net[2].training, false)
    local x = lm.ones(4, 2)
    same(net(x):totable(), net(x):totable()) -- no dropout in evaluation
    net:train()
    eq(net[2].training, true)
  end)

  it("runs forward hooks (how a recorder reads hidden layers)", function()
    local net = nn.Sequential(nn.Linear(2, 3), nn.ELU(), nn.Linear(3, 1))
    local seen = {}
    local handle = net[2]:register_forward_hook(function(_, _, output) seen[#seen + 1] = output:shape() end)
    net(lm.ones(5, 2))
    same(seen, {{5, 3}})
    handle.remove()
    net(lm.ones(5, 2))
    eq(#seen, 1)
    -- a one-shot hook that removes itself: the hook after it still runs, this call and the next
    local ran, once = {}, nil
    once = net[1]:register_forward_hook(function() ran[#ran + 1] = "A"; once.remove() end)
    net[1]:register_forward_hook(function() ran[#ran + 1] = "B" end)
    net(lm.ones(5, 2))
    net(lm.ones(5, 2))
    same(ran, {"A", "B", "B"})
    -- one function registered twice is two registrations: a handle removes its own, once
    local n = 0
    local function f() n = n + 1 end
    net[3]:register_forward_hook(f)
    local second = net[3]:register_forward_hook(f)
    second.remove()
    second.remove()
    net(lm.ones(5, 2))
    eq(n, 1)
  end)

  it("prints its architecture", function()
    local s = tostring(nn.Sequential(nn.Linear(784, 200), nn.ELU(), nn.Dropout(0.1)))
    truthy(s:find("(1): nn.Linear(784 -> 200)", 1, true), s)
    truthy(s:find("(3): nn.Dropout(p = 0.1)", 1, true), s)
  end)

  it("says where a shape error happened", function()
    local net = nn.Sequential(nn.Linear(784, 200), nn.ELU())
    raises(function() net(lm.ones(2, 783)) end,
      "linear: input has 783 features, weight expects 784 (input shape [2, 783], weight shape [200, 784]) "
      .. "(in module 1 (nn.Linear) of nn.Sequential)")
  end)

  it("saves and loads, and refuses a mismatched architecture", function()
    local path = os.tmpname()
    local a = nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 2))
    a:save(path)
    local b = nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 2))
    b:load(path)
    same(b[3].weight:totable(), a[3].weight:totable())
    local c = nn.Sequential(nn.Linear(3, 5), nn.ELU(), nn.Linear(5, 2))
    raises(function() c:load(path) end, "shape: 0.weight has shape 4x3 in")
    local d = nn.Sequential(nn.Linear(3, 4))
    raises(function() d:load(path) end, "unexpected (the state has them, the module does not): 2.bias, 2.weight")
    os.remove(path)
  end)

  it("reports every missing, unexpected and mismatched name at once, at the caller's line", function()
    local net = nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 2))
    local state = {["0.weight"] = lm.zeros(4, 3), ["0.bias"] = lm.zeros(5), ["9.weight"] = lm.zeros(1)}
    local ok, err = pcall(function() net:load_state_dict(state) end)
    eq(ok, false)
    truthy(err:find("nn_spec.lua:%d+: load_state_dict: the state does not fit this nn.Sequential"), err)
    truthy(err:find("missing (the module has them, the state does not): 2.weight 2x4, 2.bias 2", 1, true), err)
    truthy(err:find("unexpected (the state has them, the module does not): 9.weight", 1, true), err)
    truthy(err:find("shape: 0.bias has shape 5 in the state but 4 in this nn.Sequential", 1, true), err)
  end)

  it("loads what matches with strict = false and returns what it left", function()
    local a = nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 2))
    local b = nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 3))
    local state = a:state_dict()
    state["2.weight"], state["2.bias"] = nil, nil
    state.extra = lm.ones(1)
    local missing, unexpected = b:load_state_dict(state, {strict = false})
    same(missing, {"2.weight", "2.bias"})
    same(unexpected, {"extra"})
    same(b[1].weight:totable(), a[1].weight:totable())
    raises(function() b:load_state_dict({["0.weight"] = lm.ones(2, 2)}, {strict = false}) end,
      "shape: 0.weight has shape 2x2")
  end)

  it("maps names with rename (a table or a function; nil drops a name)", function()
    local a = nn.Sequential(nn.Linear(3, 4))
    local src = {["fc.weight"] = lm.ones(4, 3), ["fc.bias"] = lm.full({4}, 2), ["head.x"] = lm.ones(1)}
    a:load_state_dict(src, {rename = function(name)
      if name:match("^head") then return nil end
      return (name:gsub("^fc%.", "0."))
    end})
    eq(a[1].bias:sum():item(), 8)
    local b = nn.Sequential(nn.Linear(3, 4))
    b:load_state_dict({w = lm.ones(4, 3), b = lm.ones(4)}, {rename = {w = "0.weight", b = "0.bias"}})
    eq(b[1].weight:sum():item(), 12)
    raises(function()
      b:load_state_dict({w = lm.ones(4, 3), v = lm.ones(4, 3)}, {rename = {w = "0.weight", v = "0.weight"}})
    end,
      "rename maps both")
    -- a table maps a name to false to drop it (strict loading then succeeds)
    b:load_state_dict({w = lm.full({4, 3}, 2), b = lm.ones(4), extra = lm.ones(1)},
      {rename = {w = "0.weight", b = "0.bias", extra = false}})
    eq(b[1].weight:sum():item(), 24)
  end)

  it("loads a batch norm state saved without num_batches_tracked, the count then 0 (as torch 1.13)", function()
    local bn = nn.BatchNorm2d(3)
    bn.num_batches_tracked:fill_(5)
    local state = {weight = lm.full({3}, 2), bias = lm.zeros(3), running_mean = lm.ones(3), running_var = lm.ones(3)}
    local missing = bn:load_state_dict(state)
    eq(#missing, 0)
    eq(bn.num_batches_tracked:item(), 0)
    -- with momentum = false (a cumulative average) the next batch's statistics then replace the loaded ones
    local cumulative = nn.BatchNorm1d(2, {momentum = false})
    cumulative.num_batches_tracked:fill_(4)
    cumulative:load_state_dict({weight = lm.ones(2), bias = lm.zeros(2), running_mean = lm.full({2}, 5),
      running_var = lm.ones(2)})
    cumulative(lm.tensor{{0, 0}, {2, 2}})
    same(cumulative.running_mean:totable(), {1, 1}, 1e-6)
    eq(bn.weight:sum():item(), 6)
    -- the other buffers are still required
    state.running_var = nil
    raises(function() bn:load_state_dict(state) end, "missing (the module has them, the state does not): running_var 3")
  end)

  it("passes an empty batch through batch norm in training, its statistics untouched (as torch)", function()
    local bn = nn.BatchNorm1d(3)
    bn.running_mean:fill_(2)
    local y = bn(lm.randn(0, 3))
    eq(y:shape_string(), "0x3")
    eq(bn.num_batches_tracked:item(), 1, "counted, as torch counts it")
    same(bn.running_mean:totable(), {2, 2, 2})
    same(bn.running_var:totable(), {1, 1, 1})
    eq(nn.BatchNorm2d(3)(lm.randn(4, 3, 0, 2)):shape_string(), "4x3x0x2")
    raises(function() bn(lm.randn(1, 3)) end,
      "batch_norm: expected more than 1 value per channel when training, got input [1, 3]")
  end)

  it("gives a constant channel its bias and zero gradients with eps = 0 in training, as torch (not NaN)", function()
    -- torch 1.13: BatchNorm1d(2, eps=0) on [[1,2],[1,3],[1,4]] gives
    -- [[0,-1.2247],[0,0],[0,1.2247]]; in evaluation, with a zero running
    -- variance, NaN (1/sqrt(0)), which Lumen keeps too
    local bn = nn.BatchNorm1d(2, {eps = 0})
    lm.no_grad(function() bn.bias:fill_(0.5) end)
    local x = lm.tensor({{1, 2}, {1, 3}, {1, 4}}):requires_grad(true)
    local y = bn(x)
    local t = y:totable()
    for r = 1, 3 do eq(t[r][1], 0.5, "row " .. r) end
    near(t[3][2], 0.5 + 1.2247449, 1e-5)
    local g = lm.tensor({{1, 2}, {3, 4}, {5, 7}})
    local loss = (y * g):sum()
    loss:backward()
    same({x.grad:totable()[1][1], x.grad:totable()[2][1], x.grad:totable()[3][1]}, {0, 0, 0})
    eq(bn.weight.grad:totable()[1], 0)
    eq(bn.bias.grad:totable()[1], 9)
    bn:eval()
    bn.running_var:zero_()
    local e = bn(lm.tensor({{1, 2}})):totable()
    assert(e[1][1] ~= e[1][1], "evaluation with a zero running variance is NaN, as torch's")
  end)

  it("gives an embedding's gradient to its rows past 2^24, where a float32 row number is not exact", function()
    local w = lm.zeros(16777219, 1):requires_grad(true)
    lm.nn.functional.embedding(lm.tensor({16777217, 16777219}, 'int32'), w):sum():backward()
    eq(w.grad:sum():item(), 2)
    eq(w.grad[16777216][1], 0)
    eq(w.grad[16777217][1], 1)
    eq(w.grad[16777219][1], 1)
    raises(function() lm.nn.functional.embedding(lm.tensor({7}, 'int32'), lm.randn(6, 2)) end,
      "embedding: index 7 out of range for 6 rows of the weight")
  end)

  it("takes a module as the encoder layer's activation, as torch does", function()
    lm.manual_seed(7)
    local a = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0, activation = nn.GELU('tanh')})
    local b = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0,
      activation = function(x) return nn.functional.gelu(x, 'tanh') end})
    b:load_state_dict(a:state_dict())
    local x = lm.randn(2, 3, 8)
    eq(lm.no_grad(function() return (a(x) - b(x)):abs():max():item() end), 0)
    eq(a.activation.__name, "nn.GELU")
    a:evaluate()
    eq(a.activation.training, false, "the activation follows the layer's mode")
  end)

  it("reads uint8 attention masks as boolean masks, as torch 1.13 does", function()
    lm.manual_seed(4)
    local m, x = nn.MultiheadAttention(8, 2), lm.randn(2, 4, 8)
    local rows = {{0, 0, 0, 1}, {0, 0, 1, 1}}
    local a, wa = m(x, x, x, {key_padding_mask = lm.tensor(rows, "uint8")})
    local b, wb = m(x, x, x, {key_padding_mask = lm.tensor(rows, "int32")})
    same(a:totable(), b:totable())
    eq(wa[2][1][3], 0, "a masked key gets no weight")
    same(wa:totable(), wb:totable())
  end)

  it("normalises a batch with a strided weight and bias as with contiguous ones", function()
    lm.manual_seed(5)
    local x = lm.randn(4, 3)
    local w = lm.tensor({{1, 100}, {2, 100}, {3, 100}}):select(2, 1) -- stride 2
    local b = lm.tensor({{0.5, -7}, {1, -7}, {-1, -7}}):select(2, 1)
    local strided = F.batch_norm(x, nil, nil, w, b, true)
    local plain = F.batch_norm(x, nil, nil, w:contiguous(), b:contiguous(), true)
    same(strided:totable(), plain:totable())
    -- and its gradients reach the strided parameters
    local wl, bl = lm.tensor({{1, 100}, {2, 100}, {3, 100}}), lm.tensor({{0.5, -7}, {1, -7}, {-1, -7}})
    wl:requires_grad(true); bl:requires_grad(true)
    local wc, bc = lm.tensor({1, 2, 3}), lm.tensor({0.5, 1, -1})
    wc:requires_grad(true); bc:requires_grad(true)
    local y = lm.randn(4, 3)
    local loss_strided = (F.batch_norm(x, nil, nil, wl:select(2, 1), bl:select(2, 1), true) * y):sum()
    local loss_plain = (F.batch_norm(x, nil, nil, wc, bc, true) * y):sum()
    loss_strided:backward()
    loss_plain:backward()
    same(wl.grad:select(2, 1):totable(), wc.grad:totable(), 1e-6)
    same(bl.grad:select(2, 1):totable(), bc.grad:totable(), 1e-6)
    eq(wl.grad[1][2], 0)
  end)

  it("multiplies by a matrix with no columns without calling BLAS", function()
    local a = lm.randn(2, 3)
    a:requires_grad(true)
    local b = lm.zeros(3, 0)
    b:requires_grad(true)
    local c = lm.matmul(a, b)
    eq(c:shape_string(), "2x0")
    c:sum():backward()
    eq(a.grad:abs():sum():item(), 0)
    eq(b.grad:shape_string(), "3x0")
  end)

  it("takes torch's padding strings in Conv2d", function()
    lm.manual_seed(3)
    local c_same, c_one = nn.Conv2d(2, 3, 3, {padding = "same"}), nn.Conv2d(2, 3, 3, {padding = 1})
    local valid = nn.Conv2d(2, 3, 5, {padding = "valid", dilation = 1, groups = 1, padding_mode = "zeros"})
    c_one:load_state_dict(c_same:state_dict())
    local x = lm.randn(2, 2, 7, 7)
    same(c_same(x):totable(), c_one(x):totable())
    eq(c_same(x):shape_string(), "2x3x7x7")
    eq(valid(x):shape_string(), "2x3x3x3")
  end)

  it("builds grouped and dilated Conv2d as torch: weight [out, in / groups, k, k], fan_in (in / groups) k k", function()
    lm.manual_seed(4)
    local c = nn.Conv2d(8, 16, 3, {groups = 4, dilation = 2, padding = "same", init = "pytorch"})
    eq(c.weight:shape_string(), "16x2x3x3")
    eq(c.padding, 2, "'same' pads d (k - 1) / 2")
    local bound = 1 / math.sqrt(2 * 9) -- torch's kaiming_uniform_(a = sqrt(5)) over fan_in = 8 / 4 * 3 * 3
    truthy(c.weight:abs():max():item() <= bound and c.weight:abs():max():item() > 0.9 * bound,
      "weights within torch's bound " .. bound)
    truthy(c.bias:abs():max():item() <= bound, "bias within torch's bound")
    eq(c(lm.randn(2, 8, 9, 9)):shape_string(), "2x16x9x9")
    eq(tostring(c), "nn.Conv2d(8 -> 16, 3x3, stride 1, padding 2, dilation 2, groups 4)")
    local he = nn.Conv2d(6, 6, 7, {groups = 6})
    local a = math.sqrt(6 / 49) -- He uniform over fan_in = 1 * 7 * 7
    truthy(he.weight:abs():max():item() <= a and he.weight:abs():max():item() > 0.9 * a, "depthwise He bound")
    eq(nn.Conv2d(2, 2, 3, {dilation = {2, 3}})(lm.randn(1, 2, 9, 9)):shape_string(), "1x2x5x3")
  end)

  it("still loads files saved with the first names (1-based, buffers under 'buffers.')", function()
    local path = os.tmpname()
    local old = {["1.weight"] = lm.full({4, 3}, 0.5), ["1.bias"] = lm.full({4}, 0.25),
      ["3.weight"] = lm.full({2, 4}, -1), ["3.bias"] = lm.zeros(2)}
    lm.save(path, old, {format = "lumen.nn", module = "nn.Sequential", version = "1"})
    local net = nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 2))
    net:load(path)
    eq(net[1].weight:sum():item(), 6)
    eq(net[3].weight:sum():item(), -8)
    -- and a current file says which names it uses
    net:save(path)
    local _, meta = lm.load(path)
    eq(meta.names, "torch")
    -- a caller's own metadata goes beside Lumen's, never in its place
    net:save(path, {metadata = {fit = "epoch 3"}})
    _, meta = lm.load(path)
    eq(meta.fit, "epoch 3")
    eq(meta.names, "torch")
    raises(function() net:save(path, {metadata = {names = "mine"}}) end, "save: metadata must map names to strings")
    os.remove(path)
  end)

  it("spells evaluate() as PyTorch does too", function()
    local net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    eq(net:eval(), net)
    eq(net[2].training, false)
    net:train()
    eq(net[2].training, true)
  end)

  it("lets a custom layer written in Lua train without backward code", function()
    local Scale = nn.Module:extend("Scale")
    function Scale:init(n) self:param("gain", lm.ones(n)) end
    function Scale:forward(x) return x * self.gain end
    local m = Scale(3)
    local opt = optim.SGD(m:parameters(), {lr = 0.1})
    local target = lm.tensor{{2, -1, 0.5}}
    for _ = 1, 200 do
      opt:zero_grad()
      F.mse(m(lm.ones(1, 3)), target):backward()
      opt:step()
    end
    same(m.gain:totable(), {2, -1, 0.5}, 1e-3)
  end)
end)

describe("a module assigned to a field", function()
  it("is registered as a child, as torch.nn's attribute assignment does; other values stay plain fields", function()
    local Net = nn.Module:extend("FieldNet")
    function Net:init()
      self.fc = nn.Linear(3, 4)
      self.act = nn.ELU()
      self.out = nn.Linear(4, 2)
      self.scale = 2
      self.table_of_layers = {nn.Linear(2, 2)} -- a plain table: not a module, not registered
    end
    function Net:forward(x) return self.out(self.act(self.fc(x))) * self.scale end
    local net = Net()
    eq(#net:parameters(), 4)
    local names = {}
    for _, pair in ipairs(net:named_parameters()) do names[#names + 1] = pair[1] end
    same(names, {"fc.weight", "fc.bias", "out.weight", "out.bias"})
    same(net:children(), {net.fc, net.act, net.out})
    eq(net(lm.ones(5, 3)):shape_string(), "5x2")
    -- replacing a registered child keeps its place
    local fc2 = nn.Linear(3, 4)
    net.fc = fc2
    eq(net:named_parameters()[1][2], fc2.weight)
    eq(#net:parameters(), 4)
    -- a module cannot hold itself: every walk over the tree would be endless
    local err = raises(function() net.me = net end, "child: 'me' contains this module itself")
    truthy(err:find("nn_spec.lua:%d+:"), "at the assignment's line: " .. err)
    local seq = nn.Sequential(nn.Linear(2, 2))
    raises(function() seq[1]:child("up", seq) end, "child: 'up' contains this module itself")
  end)
end)

describe("batch norm in evaluation", function()
  it("takes one pass without gradients and gives the bits of the product and sum it replaces", function()
    lm.manual_seed(31)
    for _, shape in ipairs{{4, 3, 5, 6}, {2, 7, 9}, {3, 5}} do
      local c = shape[2]
      local bn = (#shape == 4 and nn.BatchNorm2d or nn.BatchNorm1d)(c)
      bn:evaluate()
      lm.no_grad(function()
        bn.running_mean:copy_(lm.randn(c)); bn.running_var:copy_(lm.rand(c) + 0.1)
        bn.weight:copy_(lm.randn(c)); bn.bias:copy_(lm.randn(c))
      end)
      local x = lm.randn(table.unpack(shape)) * 3
      local fused = lm.no_grad(function() return bn(x) end)
      local composed = bn(x) -- the weight requires gradients: a product and a sum on the tape
      eq(composed:requires_grad(), true)
      eq((fused - composed):abs():max():item(), 0, table.concat(shape, "x"))
      -- against the definition, (x - mean) / sqrt(var + eps) * w + b
      local view = #shape == 4 and {1, c, 1, 1} or #shape == 3 and {1, c, 1} or {1, c}
      local function per_channel(v) return v:detach():view(table.unpack(view)) end
      local want = (x - per_channel(bn.running_mean)) / per_channel((bn.running_var + 1e-5):sqrt())
        * per_channel(bn.weight) + per_channel(bn.bias)
      truthy(rel_error(fused, want) < 1e-5, "definition " .. rel_error(fused, want))
    end
    -- the one-pass op records nothing, so it refuses inputs that need gradients
    local x = lm.randn(2, 3, 4):requires_grad(true)
    raises(function() lm._functional._channel_affine(x, lm.ones(3), lm.zeros(3)) end, "records no gradient")
    raises(function() lm._functional._channel_affine(lm.randn(2, 3, 4), lm.ones(4), lm.zeros(3)) end,
      "scale must be a float32 [3]")
  end)
end)

describe("optimisers", function()
  local function one_step(make, settings, grads)
    local p = lm.tensor{1, -2}:requires_grad(true)
    local opt = make({p}, settings)
    for _, g in ipairs(grads) do
      p.grad = lm.tensor(g)
      opt:step()
    end
    return p:totable()
  end

  it("SGD with momentum and Nesterov matches hand-computed updates", function()
    same(one_step(optim.SGD, {lr = 0.1}, {{1, 1}}), {0.9, -2.1}, 1e-6)
    -- momentum 0.5: v1 = g1, v2 = 0.5 v1 + g2
    same(one_step(optim.SGD, {lr = 0.1, momentum = 0.5}, {{1, 0}, {1, 0}}), {1 - 0.1 - 0.15, -2}, 1e-6)
    -- nesterov: w -= lr (g + mu v)
    same(one_step(optim.SGD, {lr = 0.1, momentum = 0.5, nesterov = true}, {{1, 0}}), {1 - 0.15, -2}, 1e-6)
    same(one_step(optim.SGD, {lr = 0.1, weight_decay = 0.5}, {{0, 0}}), {0.95, -1.9}, 1e-6)
  end)

  it("Adam's first step is lr * sign(g)", function()
    same(one_step(optim.Adam, {lr = 0.01}, {{0.3, -5}}), {0.99, -1.99}, 1e-5)
    -- AdamW decays the weight directly: w (1 - lr wd) then the Adam step
    same(one_step(optim.AdamW, {lr = 0.01, weight_decay = 0.1}, {{0.3, -5}}),
      {1 * (1 - 0.001) - 0.01, -2 * (1 - 0.001) + 0.01}, 1e-5)
  end)

  it("RMSprop follows its formula", function()
    -- v = (1 - 0.9) g^2; w -= lr g / (sqrt(v) + eps)
    local g = 2
    local expected = 1 - 0.01 * g / (math.sqrt(0.1 * g * g) + 1e-8)
    same(one_step(optim.RMSprop, {lr = 0.01, alpha = 0.9}, {{2, 0}}), {expected, -2}, 1e-5)
  end)

  it("updates many parameters as one range over the threads, as Adam's formula says", function()
    -- sizes such that 2 and 3 threads cut inside parameters and across them
    local sizes, lr, b1, b2, eps = {9000, 7, 20011, 1}, 0.01, 0.9, 0.999, 1e-8
    local saved = lm.get_num_threads()
    lm.manual_seed(21)
    local w0, g1, g2 = {}, {}, {}
    for k, n in ipairs(sizes) do w0[k], g1[k], g2[k] = lm.randn(n), lm.randn(n), lm.randn(n) end
    local results = {}
    for _, threads in ipairs{1, 2, 3} do
      lm.set_num_threads(threads)
      local ps = {}
      for k in ipairs(sizes) do ps[k] = w0[k]:clone():requires_grad(true) end
      local opt = optim.Adam(ps, {lr = lr})
      for _, grads in ipairs{g1, g2} do
        for k, p in ipairs(ps) do p.grad = grads[k] end
        opt:step()
      end
      results[threads] = ps
    end
    lm.set_num_threads(saved)
    for k in ipairs(sizes) do
      -- element by element, the same float operations whatever the split
      eq(results[2][k]:ne(results[1][k]):sum():item(), 0, "2 threads, parameter " .. k)
      eq(results[3][k]:ne(results[1][k]):sum():item(), 0, "3 threads, parameter " .. k)
      -- two Adam steps in double precision, every 97th element
      local w, a, c = w0[k]:totable(), g1[k]:totable(), g2[k]:totable()
      local got = results[3][k]:totable()
      for i = 1, #w, 97 do
        local m, v, x = 0, 0, w[i]
        for t, g in ipairs{a[i], c[i]} do
          m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
          x = x - lr * (m / (1 - b1 ^ t)) / (math.sqrt(v / (1 - b2 ^ t)) + eps)
        end
        near(got[i], x, 1e-5, "parameter " .. k .. ", element " .. i)
      end
    end
  end)

  it("steps more parameters than one call takes (256), each once, each at its own count", function()
    local ps = {}
    for k = 1, 300 do ps[k] = lm.full({2}, k):requires_grad(true) end
    local opt = optim.Adam(ps, {lr = 0.1})
    for step = 1, 3 do
      for k, p in ipairs(ps) do p.grad = (k % 3 ~= 0 or step == 3) and lm.tensor{1, -1} or nil end
      opt:step()
    end
    for k, p in ipairs(ps) do
      -- Adam's steps on a constant gradient each move lr: three, or one for those
      -- (every third) whose first gradient came at step 3
      local moved = k % 3 ~= 0 and 0.3 or 0.1
      same(p:totable(), {k - moved, k + moved}, 1e-4, "parameter " .. k)
      eq(opt.settings.param_steps[k], k % 3 ~= 0 and 3 or 1, "parameter " .. k .. "'s count")
    end
    eq(opt.settings.step, 3)
    -- the counts go with the state, and a state from before them loads at the common count
    local sd = opt:state_dict()
    local opt2 = optim.Adam(ps, {lr = 0.1})
    opt2:load_state_dict(sd)
    same(opt2.settings.param_steps, opt.settings.param_steps)
    sd.settings.param_steps = nil
    opt2:load_state_dict(sd)
    eq(opt2.settings.param_steps[3], 3)
  end)

  it("refuses bad settings", function()
    local p = lm.ones(2):requires_grad(true)
    raises(function() optim.Adam({p}, {learning_rate = 1}) end, "unknown option 'learning_rate'")
    raises(function() optim.SGD({}) end, "non-empty list")
    raises(function() optim.SGD({p}, {lr = 1 / 0}) end, "SGD: lr must be a number >= 0 (finite), got inf")
    raises(function() optim.RMSprop({p}, {eps = 0 / 0}) end, "RMSprop: eps must be a number >= 0")
    raises(function() optim.SGD({p}, {momentum = 0.9, nesterov = "yes"}) end,
      'SGD: nesterov must be true or false, got "yes"')
    raises(function() optim.SGD({p}, 0.1) end, "SGD: options must be a table, got 0.1")
    local opt = optim.Adam({p}, {lr = 0.1})
    opt:set_lr(0 / 0)
    p.grad = lm.ones(2)
    raises(function() opt:step() end, "step: lr must be a number >= 0 (finite)")
    same(p:totable(), {1, 1})
  end)

  it("names the options it knows when given one it does not", function()
    local p = lm.ones(2):requires_grad(true)
    raises(function() optim.SGD({p}, {momentun = 0.9}) end,
      "SGD: unknown option 'momentun'; did you mean momentum? (known: lr, momentum, nesterov, weight_decay)")
  end)

  it("keeps frozen parameters and skips them, as torch's optimisers do", function()
    local net = lm.nn.Sequential(lm.nn.Linear(3, 4), lm.nn.ELU(), lm.nn.Linear(4, 2))
    local frozen = net:parameters()[1]
    frozen:requires_grad(false)
    local before = frozen:clone()
    local opt = optim.Adam(net:parameters(), {lr = 0.1})
    net(lm.randn(5, 3)):sum():backward()
    opt:step()
    same(frozen:totable(), before:totable())
    same(opt.settings.param_steps, {0, 1, 1, 1})
    -- moving the model keeps it frozen
    net:to("cpu")
    eq(net:parameters()[1]:requires_grad(), false)
  end)

  it("updates a parameter that two layers share once a step", function()
    local shared = lm.nn.Linear(3, 3)
    local net = lm.nn.Sequential(shared, lm.nn.ELU(), shared)
    -- listed once (torch's named_parameters), named twice in the state dict (as torch's)
    eq(#net:parameters(), 2)
    eq(net:named_parameters()[1][1], "0.weight")
    local names = {}
    for name in pairs(net:state_dict()) do names[#names + 1] = name end
    table.sort(names)
    same(names, {"0.bias", "0.weight", "2.bias", "2.weight"})
    net:load_state_dict(net:state_dict())
    -- Adam's first step moves each weight by lr (its normalised step), not 2 lr
    local w0 = shared.weight:clone()
    local opt = optim.Adam(net:parameters(), {lr = 0.1})
    net(lm.randn(4, 3)):pow(2):sum():backward()
    opt:step()
    truthy(math.abs((shared.weight - w0):abs():max():item() - 0.1) < 1e-5)
    raises(function() optim.SGD({shared.weight, shared.weight}) end, "SGD: parameter 2 is parameter 1 again")
  end)

  it("checks every update before it makes any: a refused step changes nothing", function()
    local a, b = lm.tensor{1, 2}:requires_grad(true), lm.tensor{3, 4}:requires_grad(true)
    local opt = optim.Adam({a, b}, {lr = 0.1})
    a.grad = lm.ones(2)
    opt:step() -- a at 1 update, b at 0: two groups of one count in the next step
    a.grad, b.grad = lm.ones(2), lm.ones(2)
    local a1 = a:clone()
    opt.state[1][1] = lm.zeros(3) -- a's state no longer fits; b's group runs first
    raises(function() opt:step() end, "optimizer: state tensor 1 does not match the parameter")
    same(b:totable(), {3, 4})
    same(a:totable(), a1:totable())
  end)

  it("refuses a checkpoint's settings outside the ranges it refuses at construction", function()
    local p = lm.tensor{1, 2}:requires_grad(true)
    local opt = optim.Adam({p}, {lr = 0.1})
    local sd = opt:state_dict()
    sd.settings.beta1 = 2
    raises(function() opt:load_state_dict(sd) end, "load_state_dict: beta1 must be a number in [0, 1), got 2")
    sd.settings.beta1 = 0.9
    sd.settings.param_steps = {0.5}
    raises(function() opt:load_state_dict(sd) end, "load_state_dict: param_steps[1] must be an integer >= 0, got 0.5")
    eq(opt.settings.beta1, 0.9)
    eq(opt.settings.lr, 0.1)
  end)

  it("checkpoints its state", function()
    local p = lm.tensor{1, 2}:requires_grad(true)
    local opt = optim.Adam({p}, {lr = 0.1})
    p.grad = lm.tensor{1, 1}
    opt:step()
    local sd = opt:state_dict()
    local q = lm.tensor{1, 2}:requires_grad(true)
    local opt2 = optim.Adam({q}, {lr = 0.1})
    opt2:load_state_dict(sd)
    eq(opt2.settings.step, 1)
    same(opt2.state[1][1]:totable(), opt.state[1][1]:totable())
  end)
end)

describe("schedules", function()
  it("CyclicLR rises and falls with a decaying peak", function()
    local p = lm.ones(1):requires_grad(true)
    local opt = optim.SGD({p}, {lr = 1})
    local clr = optim.CyclicLR(opt, {min = 0, max = 1, period = 4, decay = 0.5})
    eq(opt:lr(), 0)
    local lrs = {}
    for i = 1, 8 do clr:step(); lrs[i] = opt:lr() end
    same(lrs, {0.5, 1, 0.5, 0, 0.25, 0.5, 0.25, 0})
    eq(clr:cycle(), 2)
    local saw = optim.CyclicLR(opt, {max = 1, period = 4, mode = 'sawtooth'})
    same({saw:lr_at(0), saw:lr_at(1), saw:lr_at(3), saw:lr_at(4)}, {1, 0.75, 0.25, 1})
    raises(function() optim.CyclicLR(opt, {max = 1, period = 1}) end, "period")
  end)

  it("EarlyStopping never counts NaN as an improvement and refuses a negative min_delta", function()
    local es = optim.EarlyStopping{patience = 3}
    eq(es:step(0 / 0), false)
    eq(es.best, nil, "NaN is not a best")
    es:step(0.5); es:step(0.4)
    eq(es.best, 0.4)
    eq(es:step(0 / 0), false)
    eq(es.bad, 1, "a NaN counts against the patience")
    raises(function() optim.EarlyStopping{min_delta = -0.1} end, "min_delta must be a number >= 0")
  end)

  it("EarlyStopping waits `patience` checks and restores the best weights", function()
    local net = nn.Sequential(nn.Linear(1, 1))
    local es = optim.EarlyStopping{patience = 2}
    lm.no_grad(function() net[1].weight:fill_(1) end)
    eq(es:step(1.0, net), false)
    lm.no_grad(function() net[1].weight:fill_(2) end)
    eq(es:step(1.5, net), false)
    eq(es:step(1.2, net), true)
    es:restore(net)
    eq(net[1].weight:item(), 1)
  end)
end)

describe("training", function()
  local function train_xor(make_opt, steps)
    lm.manual_seed(7)
    local x = lm.tensor{{0, 0}, {0, 1}, {1, 0}, {1, 1}}
    local y = lm.tensor{{0}, {1}, {1}, {0}}
    local net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid())
    local opt = make_opt(net:parameters())
    for _ = 1, steps do
      opt:zero_grad()
      F.mse(net(x), y):backward()
      opt:step()
    end
    return net(x):view(-1):totable()
  end

  it("a 2-layer MLP learns XOR with Adam", function()
    local out = train_xor(function(p) return optim.Adam(p, {lr = 0.05}) end, 500)
    truthy(out[1] < 0.2 and out[2] > 0.8 and out[3] > 0.8 and out[4] < 0.2, table.concat(out, " "))
  end)

  it("a 2-layer MLP learns XOR with SGD", function()
    local out = train_xor(function(p) return optim.SGD(p, {lr = 2, momentum = 0.9}) end, 1000)
    truthy(out[1] < 0.2 and out[2] > 0.8 and out[3] > 0.8 and out[4] < 0.2, table.concat(out, " "))
  end)

  -- two interleaved spirals, 200 points each
  local function spiral()
    lm.manual_seed(2)
    local pts, labels = {}, {}
    for class = 0, 1 do
      for i = 1, 200 do
        local r = i / 200 * 5
        local t = 1.75 * i / 200 * 2 * math.pi + class * math.pi
        pts[#pts + 1] = {r * math.sin(t) / 5, r * math.cos(t) / 5}
        labels[#labels + 1] = class + 1
      end
    end
    return lm.tensor(pts) + lm.randn(400, 2) * 0.02, lm.tensor(labels, 'int32')
  end

  local function train_spiral(make_opt, steps)
    local x, y = spiral()
    local net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))
    local opt = make_opt(net:parameters())
    for _ = 1, steps do
      opt:zero_grad()
      F.cross_entropy(net(x), y):backward()
      opt:step()
    end
    return net(x):argmax(2):int():eq(y):mean():item()
  end

  it("learns a two-class spiral with Adam", function()
    local acc = train_spiral(function(p) return optim.Adam(p, {lr = 0.01}) end, 1500)
    truthy(acc > 0.95, "accuracy " .. acc)
  end)

  it("learns a two-class spiral with SGD", function()
    local acc = train_spiral(function(p) return optim.SGD(p, {lr = 0.5, momentum = 0.9}) end, 2000)
    truthy(acc > 0.95, "accuracy " .. acc)
  end)
end)

describe("fused dropout", function()
  it("equals x times the mask drawn at the same stream position, views included", function()
    for _, x in ipairs{lm.randn(37, 41), lm.randn(41, 37):t(), lm.randn(5)} do
      lm.manual_seed(4)
      local fused = F.dropout(x, 0.25, true)
      lm.manual_seed(4)
      local ref = x * lm._dropout_mask(0.75, x:shape())
      eq((fused - ref):abs():max():item(), 0)
      eq(lm.rng_state(), 4) -- the seed is kept
    end
  end)
  it("passes the gradient only where it kept the input, scaled by 1 / keep", function()
    local x = lm.randn(200):requires_grad(true)
    local y = F.dropout(x, 0.5, true)
    y:sum():backward()
    local g, v = x.grad:totable(), y:totable()
    local kept = 0
    for i = 1, 200 do
      if v[i] == 0 then eq(g[i], 0) else eq(g[i], 2); kept = kept + 1 end
    end
    truthy(kept > 60 and kept < 140, "about half kept: " .. kept)
  end)
end)
