-- GELU and the transformer layers (lua/lumen/nn/transformer_layers.lua,
-- lua/lumen/models_vit.lua) on the GPU against the same modules on the CPU:
-- outputs, input and parameter gradients of sum(y * r), in training
-- (dropout 0) and evaluation mode, with int32 and float masks on the GPU.
-- Tolerance (max |gpu - cpu| / max(|cpu|, 1e-3)): 1e-5 for elementwise ops,
-- 1e-4 for anything with a matrix product (cuBLAS's summation order), as in
-- ops_spec.lua. Skips, saying why, when no GPU answers.
local lm = require 'lumen'
local nn = lm.nn

-- LUMEN_GPU_DRY_RUN=1: the CPU stands in for the GPU (checks the spec's code only)
local DEV = dofile("tests/helpers/gpu_device.lua")("transformer_layers_spec", skip)

local ELEMENTWISE, GEMM = 1e-5, 1e-4

local function close(gpu, cpu, tol, what)
  eq(gpu:device(), DEV, what .. " lives on the GPU")
  local g = gpu:to('cpu')
  eq(g:shape_string(), cpu:shape_string(), what .. " shape")
  local e = (g - cpu):abs():max():item() / math.max(cpu:abs():max():item(), 1e-3)
  truthy(e <= tol, string.format("%s: relative error %.3g over %.0g", what, e, tol))
end

-- fn(module, x, device) on both devices, sum(y * r) backward, then comparisons
local function twin_check(what, make, x, tol, fn)
  fn = fn or function(m, input) return m(input) end
  lm.manual_seed(1)
  local cpu_m = make()
  lm.no_grad(function() -- afresh: LayerNorm's ones and zeros would hide mistakes
    for _, p in ipairs(cpu_m:parameters()) do p:copy_(lm.randn(p:shape()) * 0.5) end
  end)
  local gpu_m = make()
  gpu_m:load_state_dict(cpu_m:state_dict())
  gpu_m:to(DEV)
  for _, mode in ipairs{"train", "eval"} do
    cpu_m:train(mode == "train")
    gpu_m:train(mode == "train")
    cpu_m:zero_grad()
    gpu_m:zero_grad()
    local xc, xg = x:clone():requires_grad(true), x:clone():to(DEV):requires_grad(true)
    local yc, yg = fn(cpu_m, xc, 'cpu'), fn(gpu_m, xg, DEV)
    close(yg, yc, tol, what .. " output (" .. mode .. ")")
    local r = lm.randn(yc:shape())
    local lc, lg = (yc * r):sum(), (yg * r:to(DEV)):sum()
    lc:backward()
    lg:backward()
    close(xg.grad, xc.grad, tol, what .. " input gradient (" .. mode .. ")")
    local gp = gpu_m:named_parameters()
    for i, pair in ipairs(cpu_m:named_parameters()) do
      close(gp[i][2].grad, pair[2].grad, tol, what .. " gradient of " .. pair[1] .. " (" .. mode .. ")")
    end
  end
end

describe("gpu transformer layers", function()
  lm.manual_seed(7)
  it("GELU, both forms, contiguous and strided (the fused backward kernels)", function()
    for _, form in ipairs{"none", "tanh"} do
      twin_check("GELU " .. form, function() return nn.GELU{approximate = form} end, lm.randn(37, 29) * 3,
        ELEMENTWISE)
      twin_check("GELU " .. form .. " strided", function() return nn.GELU{approximate = form} end,
        lm.randn(6, 5) * 3, ELEMENTWISE, function(m, x) return m(x:t()) end)
    end
  end)
  it("LayerNorm", function()
    twin_check("LayerNorm", function() return nn.LayerNorm(8) end, lm.randn(3, 5, 8), ELEMENTWISE)
    twin_check("LayerNorm 2-D", function() return nn.LayerNorm({4, 6}) end, lm.randn(2, 4, 6), ELEMENTWISE)
  end)
  it("LayerNorm in the fused kernels: many rows (several gradient blocks), wide rows, no affine", function()
    if os.getenv("LUMEN_CUDA_UNFUSED") ~= "1" then -- (gpu-check.sh's rerun without the fused kernels)
      truthy(lm.nn.functional._layer_norm_available(lm.zeros(2, 3):to(DEV)), "the device has the fused layer norm")
    end
    twin_check("LayerNorm 150 rows", function() return nn.LayerNorm(37) end, lm.randn(3, 50, 37), ELEMENTWISE)
    twin_check("LayerNorm 1000 wide", function() return nn.LayerNorm(1000) end, lm.randn(4, 1000) + 5,
      ELEMENTWISE)
    twin_check("LayerNorm no affine", function() return nn.LayerNorm(33, {elementwise_affine = false}) end,
      lm.randn(70, 33), ELEMENTWISE)
  end)
  it("MultiheadAttention with int32 and float masks", function()
    local attn = lm.tensor({{0, 1, 1, 1}, {0, 0, 1, 1}, {0, 0, 0, 1}, {0, 0, 0, 0}}, 'int32')
    local padding = lm.tensor({{0, 0, 0, 1}, {0, 0, 0, 0}, {0, 1, 0, 0}}, 'int32')
    local additive = lm.randn(3 * 2, 4, 4)
    twin_check("MultiheadAttention", function() return nn.MultiheadAttention(8, 2) end, lm.randn(3, 4, 8), GEMM,
      function(m, x, dev)
        local out, w = m:forward(x, x, x, {attn_mask = attn:to(dev), key_padding_mask = padding:to(dev)})
        return out + lm.matmul(w, x)
      end)
    twin_check("MultiheadAttention float mask", function() return nn.MultiheadAttention(8, 2) end,
      lm.randn(3, 4, 8), GEMM, function(m, x, dev) return m(x, x * 0.5, x, {attn_mask = additive:to(dev)}) end)
  end)
  it("TransformerEncoderLayer and a small ViT", function()
    local causal = lm.tensor({{0, 1, 1}, {0, 0, 1}, {0, 0, 0}}, 'int32')
    twin_check("TransformerEncoderLayer", function()
      return nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0, activation = 'gelu'})
    end, lm.randn(2, 3, 8), GEMM, function(m, x, dev) return m(x, {src_mask = causal:to(dev)}) end)
    twin_check("ViT", function()
      return lm.models.vit{image_size = 8, patch_size = 4, num_classes = 3, dim = 8, depth = 2, heads = 2,
        mlp_dim = 16}
    end, lm.randn(2, 3, 8, 8), GEMM)
  end)
end)
