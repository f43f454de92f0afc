-- The recorder beyond dense layers: conv feature maps pooled over space,
-- token sequences over tokens, layers chosen by name, named in the result.
local lm = require 'lumen'
local nn = lm.nn
local I = lm.introspect

local function convnet()
  lm.manual_seed(4)
  return nn.Sequential(nn.Conv2d(3, 4, 3, {padding = 1}), nn.ELU(), nn.Conv2d(4, 6, 3, {stride = 2, padding = 1}),
    nn.ELU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 10), nn.ELU(), nn.Linear(10, 3))
end

-- a layer whose output is a token sequence [N, T, D]
local Tokens = nn.Module:extend("Tokens")
function Tokens:forward(x) return x:reshape(x:size(1), 4, -1) end

local function max_abs(a, b) return (a - b):abs():max():item() end

describe("Recorder", function()
  it("refuses one activation object at two places (both hooks would keep the last output)", function()
    local act = lm.nn.ELU()
    local net = lm.nn.Sequential(lm.nn.Linear(2, 3), act, lm.nn.Linear(3, 3), act)
    raises(function() lm.introspect.Recorder(net) end, "one nn.ELU object is at '1' and at '3'")
  end)

  it("pools conv feature maps over space by mean (default), max, or not at all", function()
    local net = convnet()
    local x = lm.randn(5, 3, 8, 8)
    local rec = I.Recorder(net)
    local h = rec:record(x)
    same(rec.layer_sizes, {4, 6, 10})
    same(rec.layer_names, {"1", "3", "6"})
    -- the first recorded layer by hand: ELU(conv) averaged over the 8x8 plane
    local first = net[2](net[1](x)):detach()
    local want = first:reshape(5, 4, 64):mean(3)
    truthy(max_abs(h:narrow(2, 1, 4), want) < 1e-6, "mean pooling")
    local hmax = I.Recorder(net, {pool = "max"}):record(x)
    truthy(max_abs(hmax:narrow(2, 1, 4), (first:reshape(5, 4, 64):max(3))) < 1e-6, "max pooling")
    local rec_none = I.Recorder(net, {pool = "none"})
    local hnone = rec_none:record(x)
    same(rec_none.layer_sizes, {4 * 8 * 8, 6 * 4 * 4, 10})
    truthy(max_abs(hnone:narrow(2, 1, 256), first:reshape(5, 256)) < 1e-6, "none flattens")
  end)

  it("pools token sequences over tokens, or takes the class token", function()
    local net = nn.Sequential(nn.Linear(6, 12), Tokens(), nn.Identity())
    local x = lm.randn(3, 6)
    local tokens = net[2](net[1](x)):detach() -- [3, 4, 3]
    local mean = I.Recorder(net, {select = {"1"}}):record(x)
    truthy(max_abs(mean, tokens:mean(2)) < 1e-6, "mean over tokens")
    local cls = I.Recorder(net, {select = {"1"}, pool = "cls"}):record(x)
    truthy(max_abs(cls, tokens:select(2, 1)) < 1e-6, "the first token")
  end)

  it("hooks its layers only while it records, in the place it took when made", function()
    lm.manual_seed(2)
    local net = nn.Sequential(nn.Linear(4, 5), nn.ELU(), nn.Linear(5, 2))
    local rec = I.Recorder(net)
    eq(#net[2]._hooks, 0, "no hook between recordings (the layer may run fused)")
    -- a hook added after the recorder replaces the output: the recording
    -- keeps what the layer gave, as when the recorder's hook stayed on
    local handle = net[2]:register_forward_hook(function(_, _, out) return out * 0 end)
    local x = lm.randn(3, 4)
    local h, out = rec:record(x)
    eq(max_abs(h, lm.nn.functional.linear(x, net[1].weight, net[1].bias):elu()), 0, "the layer's own output")
    eq(max_abs(out, lm.zeros(3, 2) + net[3].bias), 0, "the model ran with the replacing hook")
    eq(#net[2]._hooks, 1, "only the user's hook is left")
    handle.remove()
    -- a failing forward leaves no hook behind
    raises(function() rec:record(lm.randn(3, 7)) end, "input has 7 features")
    eq(#net[2]._hooks, 0, "removed after an error")
  end)

  it("chooses layers by name and says which names do not exist", function()
    local net = convnet()
    local rec = I.Recorder(net, {select = {"3", "5"}})
    local h = rec:record(lm.randn(2, 3, 8, 8))
    same(rec.layer_names, {"3", "5"})
    same(h:shape(), {2, 16})
    raises(function() I.Recorder(net, {select = {"3", "layer9"}}) end, "no module named layer9")
    raises(function() I.Recorder(net, {pool = "sum"}) end, "pool must be 'mean', 'max', 'cls' or 'none'")
    raises(function() I.Recorder(net, {select = {"1"}, pool = "cls"}):record(lm.randn(2, 3, 8, 8)) end,
      "pool = 'cls' is for token sequences")
  end)

  it("records an empty set as [0, Nh] and [0, C], in memory and to a file", function()
    -- with a path it failed inside ('attempt to index a nil value'); without, it returned nil, nil
    local net = convnet()
    local rec = I.Recorder(net)
    local x = lm.zeros(0, 3, 8, 8)
    local H, Y = rec:record_set(x)
    same(H:shape(), {0, 20})
    same(Y:shape(), {0, 3})
    H = rec:record_set(x, {append_rows = {lm.ones(2, 20)}})
    same(H:totable(), lm.ones(2, 20):totable(), 0, "the appended rows")
    local path = os.tmpname()
    H, Y = rec:record_set(x, {path = path, append_rows = {lm.ones(2, 20)}})
    same(H:totable(), lm.ones(2, 20):totable(), 0, "the appended rows, from the file")
    same(Y:shape(), {0, 3})
    local t = lm.load(path)
    same(t.activations:shape(), {2, 20})
    same(t.outputs:shape(), {0, 3})
    os.remove(path)
    raises(function() rec:record_set(lm.zeros(0, 3, 7)) end,
      "record_set: x has no samples, and the sample of zeros run to size the recording failed:")
  end)

  it("feeds a study: the map runs on pooled conv recordings unchanged", function()
    local net = convnet()
    local rec = I.Recorder(net)
    local H = rec:record_set(lm.randn(40, 3, 8, 8), {batch_size = 16})
    same(H:shape(), {40, 20})
    local vae = I.InfoVAE{inputs = 20, hidden = 16}
    I.fit_autoencoder(vae, H, {epochs = 2, batch_size = 8, progress = false})
    same(vae:encode_all(H):shape(), {40, 2})
  end)
end)
