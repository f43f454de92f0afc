-- Transformer layers against PyTorch (tests/torch/transformer_reference.py,
-- which defines the cases): each torch module (LayerNorm, GELU,
-- MultiheadAttention, TransformerEncoderLayer, the ViT) is built with a seed,
-- and its state_dict loads strictly into the Lumen twin; outputs, the
-- gradients of every input and of every parameter (for the loss sum_o
-- sum(output_o * r_o)) must match torch's float64 reference to a relative
-- error max|lumen - torch| / max|torch| <= 1e-5, in training mode (dropout 0)
-- and in evaluation mode (dropout 0.1, inactive), with and without masks
-- (torch's bool masks are int32 here, 1 = masked; float masks are additive in
-- both). Then a ViT trained a few seeded steps in torch loads from its
-- safetensors and gives torch's outputs, and Lumen's saved file loads into
-- torch with strict=True and gives Lumen's outputs.
--
-- MultiheadAttention's attention weights are read through mha:forward(...),
-- which returns (output, weights).
local lm = require 'lumen'
local nn = lm.nn

local py = dofile("tests/helpers/python.lua")
local TOLERANCE = 1e-5

if not py.can_import("torch") then
  skip(py.python .. " cannot import torch: Debian's python3-torch is not installed", true)
end

local function run(args) return py.run("tests/torch/transformer_reference.py", args) end
local dir = py.write_reference("tests/torch/transformer_reference.py")
local mf = io.open(dir .. "/manifest.json")
local manifest = lm.json.decode(mf:read("a"))
mf:close()

-- the worst relative error seen per kind, printed at the end
local worst = {}
local function compare(kind, what, got, want)
  truthy(got ~= nil, what .. ": Lumen produced nothing")
  eq(got:shape_string(), want:shape_string(), what .. " shape")
  local err = rel_error(got, want)
  if not worst[kind] or err > worst[kind].err then worst[kind] = {err = err, what = what} end
  truthy(err <= TOLERANCE, string.format("%s: relative error %.3g", what, err))
end

-- ---- the Lumen twins of the reference's modules -------------------------------------------------

local function mha_call(m, t)
  local q = t.q
  local k = t.k or q
  local v = t.v or k
  return {m:forward(q, k, v, {attn_mask = t.attn_mask, key_padding_mask = t.key_padding_mask})}
end

local twins = {
  layernorm = function(o)
    return nn.LayerNorm(o.normalized_shape, {eps = o.eps, elementwise_affine = o.elementwise_affine})
  end,
  gelu_module = function(o) return nn.GELU{approximate = o.approximate} end,
  mha = function(o)
    return nn.MultiheadAttention(8, 2, {dropout = o.dropout, bias = o.bias, batch_first = o.batch_first})
  end,
  encoder = function(o)
    return nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = o.dropout,
      activation = o.activation, norm_first = o.norm_first})
  end,
  vit = function(o)
    return lm.models.vit{image_size = o.image_size, patch_size = o.patch_size, num_classes = o.num_classes,
      dim = o.dim, depth = o.depth, heads = o.heads, mlp_dim = o.mlp_dim, channels = o.channels,
      dropout = o.dropout}
  end,
}

local calls = {
  mha = mha_call,
  encoder = function(m, t)
    return {m(t.x, {src_mask = t.src_mask, src_key_padding_mask = t.src_key_padding_mask})}
  end,
}
local function default_call(m, t) return {m(t.x)} end

local function family(name)
  for _, f in ipairs{"layernorm", "gelu_module", "mha", "encoder", "vit"} do
    if name:sub(1, #f) == f then return f end
  end
end

-- splits the case's file into its parts: state, in, r, out, grad/in, grad/state
local function parts(file)
  local all = lm.load(file)
  local p = {state = {}, ["in"] = {}, r = {}, out = {}, ["grad/in"] = {}, ["grad/state"] = {}}
  for name, t in pairs(all) do
    local kind, rest = name:match("^(grad/%a+)/(.+)$")
    if not kind then kind, rest = name:match("^(%a+)/(.+)$") end
    p[kind][rest] = t
  end
  return p
end

describe("transformer layers against PyTorch", function()
  local checked = 0
  for _, c in ipairs(manifest.cases) do
    it(c.name .. ": strict state_dict, outputs and every gradient", function()
      local f = family(c.name)
      local m = twins[f](c.options)
      local p = parts(string.format("%s/%s.safetensors", dir, c.name))
      m:load_state_dict(p.state) -- strict: every name and shape must match
      if c.options.mode == "eval" then m:evaluate() else m:train() end
      local inputs = {}
      for name, t in pairs(p["in"]) do
        if t:dtype() == "float32" and not name:find("mask") then t = t:clone():requires_grad(true) end
        inputs[name] = t
      end
      local outs = (calls[f] or default_call)(m, inputs)
      local loss
      for i, oname in ipairs(c.outputs) do
        compare("output", c.name .. " " .. oname, outs[i], p.out[oname])
        local term = (outs[i] * p.r[oname]):sum()
        loss = loss and loss + term or term
      end
      loss:backward()
      local n = 0
      for name, want in pairs(p["grad/in"]) do
        compare("input gradient", c.name .. " d/d" .. name, inputs[name].grad, want)
        n = n + 1
      end
      truthy(n >= 1, "no input gradient in the reference")
      local params = {}
      for _, pair in ipairs(m:named_parameters()) do params[pair[1]] = pair[2] end
      n = 0
      for name, want in pairs(p["grad/state"]) do
        truthy(params[name], "torch parameter " .. name .. " has no Lumen twin")
        compare("parameter gradient", c.name .. " d/d" .. name, params[name].grad, want)
        n = n + 1
      end
      eq(n, #m:parameters(), "every Lumen parameter has a torch gradient")
      checked = checked + 1
    end)
  end
  it("every case of the manifest was checked", function()
    eq(checked, manifest.count)
    eq(#manifest.cases, manifest.count)
  end)
end)

describe("a ViT trained in PyTorch", function()
  local vit_opts = {image_size = 8, patch_size = 4, num_classes = 3, dim = 8, depth = 2, heads = 2, mlp_dim = 16}
  it("loads strictly from torch's safetensors and gives torch's outputs", function()
    local net = lm.models.vit(vit_opts):evaluate()
    net:load(dir .. "/vit_trained.safetensors")
    local io_ = lm.load(dir .. "/vit_trained_io.safetensors")
    compare("trained ViT", "trained ViT outputs", net(io_.x), io_.y)
  end)
  it("Lumen's file loads into torch with strict=True and gives Lumen's outputs", function()
    local net = lm.models.vit(vit_opts):evaluate()
    net:load(dir .. "/vit_trained.safetensors")
    lm.manual_seed(9) -- change the weights so torch must read Lumen's file, not the original
    for _, p in ipairs(net:parameters()) do lm.no_grad(function() p:add_(lm.randn(p:shape()) * 0.01) end) end
    net:save(dir .. "/vit_lumen.safetensors")
    local io_ = lm.load(dir .. "/vit_trained_io.safetensors")
    lm.save(dir .. "/vit_lumen_out.safetensors", {y = net(io_.x)})
    local good, msg = run(string.format("check '%s'", dir))
    truthy(good, "torch: " .. msg)
  end)
  it("reports the worst relative errors", function()
    for _, kind in ipairs{"output", "input gradient", "parameter gradient", "trained ViT"} do
      if worst[kind] then
        print(string.format("  worst %s relative error: %.3g (%s)", kind, worst[kind].err, worst[kind].what))
      end
    end
  end)
end)

os.execute("rm -rf '" .. dir .. "'")
