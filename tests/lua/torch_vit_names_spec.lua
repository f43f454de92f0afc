-- A torchvision VisionTransformer's state_dict loads strictly into
-- lm.models.vit through lm.models.torchvision_vit_rename and gives
-- torchvision's outputs (tests/torch/torchvision_vit_reference.py); Lumen's
-- own names map back, so nothing in the file is left over.
local lm = require 'lumen'

local py = dofile("tests/helpers/python.lua")

if not py.can_import("torch, torchvision") then
  skip(py.python .. " cannot import torch and torchvision (python3-torch, python3-torchvision)", true)
end

local dir = py.write_reference("tests/torch/torchvision_vit_reference.py")

describe("a torchvision ViT", function()
  local function vit()
    return lm.models.vit{image_size = 16, patch_size = 8, num_classes = 5, dim = 16, depth = 2, heads = 2,
      mlp_dim = 32}
  end

  it("loads strictly under torchvision's names and gives its outputs", function()
    local net = vit()
    net:load(dir .. "/vit_torchvision.safetensors", {rename = lm.models.torchvision_vit_rename})
    net:eval()
    local io_ = lm.load(dir .. "/vit_torchvision_io.safetensors")
    local y = net(io_.x)
    local err = rel_error(y, io_.y)
    truthy(err <= 1e-5, string.format("relative error %.3g", err))
  end)

  it("maps every torchvision name it knows and leaves the others for strict loading to name", function()
    local rename = lm.models.torchvision_vit_rename
    eq(rename("encoder.layers.encoder_layer_1.mlp.3.weight"), "layers.1.linear2.weight")
    eq(rename("encoder.layers.encoder_layer_0.mlp.linear_1.bias"), "layers.0.linear1.bias")
    eq(rename("encoder.layers.encoder_layer_0.self_attention.out_proj.weight"), "layers.0.self_attn.out_proj.weight")
    eq(rename("encoder.pos_embedding"), "pos_embedding")
    eq(rename("heads.head.bias"), "head.bias")
    eq(rename("heads.pre_logits.weight"), "heads.pre_logits.weight")
    local net = vit()
    local state = lm.load(dir .. "/vit_torchvision.safetensors")
    state["heads.pre_logits.weight"] = lm.zeros(16, 16)
    raises(function() net:load_state_dict(state, {rename = rename}) end,
      "unexpected (the state has them, the module does not): heads.pre_logits.weight")
  end)
end)
