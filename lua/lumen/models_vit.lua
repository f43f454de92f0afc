-- lm.models: a small vision transformer.
-- Called by lua/lumen/models.lua with the models table, to which it adds its constructors.
local lm = require 'lumen'
local nn = lm.nn
local checks = require 'lumen.nn.checks'

local function check_size(v, what)
  if math.type(v) ~= "integer" or v < 1 then
    error(string.format("models.vit: %s must be a positive integer, got %s", what, checks.shown(v)), 3)
  end
end

local ViT = nn.Module:extend("models.ViT")

-- Parameter names (state_dict):
--   conv_proj.weight [dim, channels, patch, patch], conv_proj.bias [dim]
--   class_token [1, 1, dim], pos_embedding [1, patches + 1, dim]
--   layers.<i>.* (i from 0): nn.TransformerEncoderLayer's (self_attn.in_proj_weight, ...,
--   linear1, linear2, norm1, norm2), norm.weight, norm.bias [dim], head.weight
--   [num_classes, dim], head.bias [num_classes]
local VIT_OPTS = {image_size = true, patch_size = true, num_classes = true, dim = true, depth = true, heads = true,
  mlp_dim = true, channels = true, dropout = true}

function ViT:init(opts)
  checks.opts(opts, "models.vit", VIT_OPTS)
  for _, k in ipairs{"image_size", "patch_size", "num_classes", "dim", "depth", "heads", "mlp_dim"} do
    check_size(opts[k], k)
  end
  local channels = opts.channels or 3
  check_size(channels, "channels")
  local size, patch, dim = opts.image_size, opts.patch_size, opts.dim
  if size % patch ~= 0 then
    error(string.format("models.vit: image_size (%d) must be a multiple of patch_size (%d)", size, patch), 3)
  end
  local dropout = opts.dropout or 0
  self.image_size, self.patch_size, self.dim = size, patch, dim
  local patches = (size // patch) ^ 2
  self:child("conv_proj", nn.Conv2d(channels, dim, patch, {stride = patch, init = "pytorch"}))
  self:param("class_token", lm.zeros(1, 1, dim))
  self:param("pos_embedding", lm.randn(1, patches + 1, dim) * 0.02)
  self:child("dropout", nn.Dropout(dropout))
  local layers = nn.Sequential()
  for _ = 1, opts.depth do
    layers:add(nn.TransformerEncoderLayer(dim, opts.heads, {dim_feedforward = opts.mlp_dim,
      dropout = dropout, activation = "gelu", norm_first = true, batch_first = true,
      layer_norm_eps = 1e-6}))
  end
  self:child("layers", layers)
  self:child("norm", nn.LayerNorm(dim, {eps = 1e-6}))
  self:child("head", nn.Linear(dim, opts.num_classes, {init = "pytorch"}))
end

--- net:block_names(): its encoder layers (layers.0, ...), each best recorded
--- at its class token (the Recorder's pool = 'cls').
function ViT:block_names()
  local names = {}
  for i = 1, #self.layers do names[i] = "layers." .. (i - 1) end
  return names
end

--- x [N, channels, image_size, image_size] -> logits [N, num_classes]
function ViT:forward(x)
  if not lm.is_tensor(x) then error("models.vit: input must be a tensor, got " .. checks.shown(x), 2) end
  if x:dim() ~= 4 or x:size(3) ~= self.image_size or x:size(4) ~= self.image_size then
    error(string.format("models.vit: input must be [N, C, %d, %d], got %s", self.image_size,
      self.image_size, x:shape_string()), 2)
  end
  local N = x:size(1)
  local tokens = self.conv_proj(x)                                    -- [N, dim, h, w]
  tokens = tokens:flatten(3):transpose(2, 3)                          -- [N, h w, dim]
  local cls = self.class_token:expand(N, 1, self.dim)
  tokens = lm.cat({cls, tokens}, 2) + self.pos_embedding              -- [N, h w + 1, dim]
  tokens = self.norm(self.layers(self.dropout(tokens)))
  return self.head(tokens:select(2, 1))                               -- the class token
end

function ViT:extra_repr()
  return string.format("%dx%d images, %dx%d patches, dim %d", self.image_size, self.image_size,
    self.patch_size, self.patch_size, self.dim)
end

return function(models)
  --- lm.models.vit{image_size, patch_size, num_classes, dim, depth, heads,
  --- mlp_dim, channels = 3, dropout = 0}: a vision transformer (Dosovitskiy
  --- et al. 2021): patches embedded by a Conv2d of stride patch_size, a
  --- learned class token and position embedding, `depth` pre-norm
  --- TransformerEncoderLayers with GELU, a final LayerNorm (every LayerNorm
  --- with eps 1e-6, as the paper's and torchvision's) and a Linear head on
  --- the class token.
  function models.vit(opts)
    if type(opts) ~= "table" then error("models.vit: expects a table of options", 2) end
    return ViT(opts)
  end

  -- torchvision's VisionTransformer names -> lm.models.vit's, in order
  local TORCHVISION_NAMES = {
    {"^encoder%.pos_embedding$", "pos_embedding"},
    {"^encoder%.ln%.", "norm."},
    {"^heads%.head%.", "head."},
    {"^encoder%.layers%.encoder_layer_(%d+)%.", "layers.%1."},
    {"^(layers%.%d+%.)ln_1%.", "%1norm1."},
    {"^(layers%.%d+%.)ln_2%.", "%1norm2."},
    {"^(layers%.%d+%.)self_attention%.", "%1self_attn."},
    {"^(layers%.%d+%.)mlp%.0%.", "%1linear1."},        -- torchvision >= 0.13
    {"^(layers%.%d+%.)mlp%.3%.", "%1linear2."},
    {"^(layers%.%d+%.)mlp%.linear_1%.", "%1linear1."}, -- older files
    {"^(layers%.%d+%.)mlp%.linear_2%.", "%1linear2."},
  }

  --- lm.models.torchvision_vit_rename(name): a torchvision
  --- VisionTransformer's state_dict name as lm.models.vit names it (for
  --- load_state_dict's or load's `rename`); a vit built with the same
  --- image_size, patch_size, dim (hidden_dim), depth (num_layers), heads,
  --- mlp_dim and num_classes then loads strictly and gives torchvision's
  --- outputs. Names with no counterpart (a `heads.pre_logits` layer) are
  --- returned unchanged, so strict loading reports them.
  function models.torchvision_vit_rename(name)
    checks.string(name, "name", "lm.models.torchvision_vit_rename")
    for _, rule in ipairs(TORCHVISION_NAMES) do name = name:gsub(rule[1], rule[2]) end
    return name
  end
end
