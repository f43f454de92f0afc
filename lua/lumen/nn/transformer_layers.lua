-- lm.nn: the layers of transformers (LayerNorm, GELU, attention, encoder layers).
-- Called by lua/lumen/nn/init.lua with the nn table, to which it adds its classes.
--
-- Each layer is a composition of differentiable tensor ops (its backward
-- comes from the tape, on every device) with torch.nn's semantics and
-- state_dict names, so weights go both ways: MultiheadAttention holds
-- in_proj_weight [3E, E], in_proj_bias [3E] and the child Linear out_proj;
-- TransformerEncoderLayer's children are self_attn, linear1, dropout,
-- linear2, norm1, norm2, dropout1, dropout2. One difference from torch:
-- batch_first defaults to true (Lumen's tensors are batch first everywhere).
local lm = require 'lumen'
local F = require 'lumen.nn.functional'

local checks = require 'lumen.nn.checks'
local check_size = checks.size
local function check_p(p, layer) checks.p(p, "dropout", layer) end

-- A mask as an additive float tensor: int32 and uint8 masks are torch's
-- boolean masks (nonzero = masked: -inf, else 0; torch 1.13 reads uint8
-- masks as boolean too, and a BOOL or U8 file loads as uint8); float masks
-- are added as they are, as torch adds its float masks. (A float 0/1 mask,
-- what x:eq() returns, is therefore additive too: pass mask:int() to mean
-- "masked".)
local function additive(mask, device)
  if mask:dtype() == "uint8" then mask = mask:int() end
  if mask:dtype() ~= "int32" then return mask end
  return lm.where(mask, lm.full({1}, -math.huge, "float32", device), lm.full({1}, 0, "float32", device))
end

local function shape_of(t) return t:shape_string() end

return function(nn)
  local Module = nn.Module

  -- ---- LayerNorm ---------------------------------------------------------------------------------

  nn.LayerNorm = Module:extend("nn.LayerNorm")

  --- nn.LayerNorm(normalized_shape [, {eps = 1e-5, elementwise_affine = true}]):
  --- normalises over the trailing dimensions normalized_shape (a size or a
  --- list of sizes); weight (ones) and bias (zeros) of that shape.
  function nn.LayerNorm:init(normalized_shape, opts)
    opts = checks.opts(opts, "nn.LayerNorm", {eps = true, elementwise_affine = true})
    local shape = type(normalized_shape) == "table" and normalized_shape or {normalized_shape}
    if #shape == 0 then error("nn.LayerNorm: normalized_shape is empty", 2) end
    for _, s in ipairs(shape) do check_size(s, "normalized_shape", "nn.LayerNorm") end
    self.normalized_shape = shape
    self.eps = checks.eps(opts.eps, 1e-5, "eps", "nn.LayerNorm")
    self.elementwise_affine = checks.flag(opts.elementwise_affine, true, "elementwise_affine", "nn.LayerNorm")
    if self.elementwise_affine then
      self:param("weight", lm.ones(shape))
      self:param("bias", lm.zeros(shape))
    end
  end

  function nn.LayerNorm:forward(x)
    return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
  end

  function nn.LayerNorm:extra_repr()
    return table.concat(self.normalized_shape, "x") .. ", eps = " .. self.eps ..
      (self.elementwise_affine and "" or ", no affine")
  end

  -- ---- GELU --------------------------------------------------------------------------------------

  nn.GELU = Module:extend("nn.GELU")

  --- nn.GELU([{approximate = 'none' | 'tanh'}]) (also nn.GELU('tanh')).
  function nn.GELU:init(opts)
    local approximate = opts
    if type(opts) == "table" then approximate = checks.opts(opts, "nn.GELU", {approximate = true}).approximate end
    approximate = approximate or "none"
    if approximate ~= "none" and approximate ~= "tanh" then
      error("nn.GELU: approximate must be 'none' or 'tanh', got " .. tostring(approximate), 2)
    end
    self.approximate = approximate
  end

  function nn.GELU:forward(x) return x:gelu(self.approximate) end
  function nn.GELU:extra_repr() return self.approximate == "tanh" and "tanh" or "" end

  -- ---- MultiheadAttention ------------------------------------------------------------------------

  local MHA = Module:extend("nn.MultiheadAttention")
  local fused_attention_fits
  nn.MultiheadAttention = MHA

  --- nn.MultiheadAttention(embed_dim, num_heads [, {batch_first = true,
  --- dropout = 0, bias = true}]). Initialised as torch: in_proj_weight
  --- Glorot uniform, in_proj_bias and out_proj.bias zeros, out_proj.weight
  --- U(-1/sqrt(E), 1/sqrt(E)).
  function MHA:init(embed_dim, num_heads, opts)
    check_size(embed_dim, "embed_dim", "nn.MultiheadAttention")
    check_size(num_heads, "num_heads", "nn.MultiheadAttention")
    if embed_dim % num_heads ~= 0 then
      error(string.format("nn.MultiheadAttention: embed_dim (%d) must be divisible by num_heads (%d)",
        embed_dim, num_heads), 2)
    end
    opts = checks.opts(opts, "nn.MultiheadAttention", {batch_first = true, dropout = true, bias = true}, {
      add_zero_attn = {accepts = function(v) return v == false end, reason = "no zero attention row"},
      add_bias_kv = {accepts = function(v) return v == false end, reason = "no key and value biases"},
      kdim = {accepts = function(v) return v == nil or v == embed_dim end, reason = "keys have embed_dim features"},
      vdim = {accepts = function(v) return v == nil or v == embed_dim end, reason = "values have embed_dim features"},
    })
    self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
    self.batch_first = checks.flag(opts.batch_first, true, "batch_first", "nn.MultiheadAttention")
    self.dropout = opts.dropout or 0
    check_p(self.dropout, "nn.MultiheadAttention")
    self:param("in_proj_weight", nn.init.xavier_uniform_(lm.zeros(3 * embed_dim, embed_dim)))
    local bias = checks.flag(opts.bias, true, "bias", "nn.MultiheadAttention")
    if bias then self:param("in_proj_bias", lm.zeros(3 * embed_dim)) end
    local out_proj = self:child("out_proj", nn.Linear(embed_dim, embed_dim, {init = "pytorch", bias = bias}))
    if bias then out_proj:param("bias", lm.zeros(embed_dim)) end
  end

  function MHA:extra_repr()
    return string.format("%d, heads %d%s", self.embed_dim, self.num_heads,
      self.dropout > 0 and ", dropout " .. self.dropout or "")
  end

  -- rows [from, from + E) of the packed projection
  local function projection(self, x, index)
    local E = self.embed_dim
    local w = self.in_proj_weight:narrow(1, index * E + 1, E)
    local b = self.in_proj_bias and self.in_proj_bias:narrow(1, index * E + 1, E)
    return F.linear(x, w, b)
  end

  -- [N, T, E] -> [N, heads, T, head_dim]
  local function split_heads(self, x)
    local N, T = x:size(1), x:size(2)
    return x:reshape(N, T, self.num_heads, self.head_dim):transpose(2, 3)
  end

  -- The additive mask [N or 1, heads or 1, L, S] from attn_mask and key_padding_mask, or nil.
  local function merged_mask(self, opts, N, L, S, device)
    local mask
    local m = opts.attn_mask
    if m then
      if m:dim() == 2 and m:size(1) == L and m:size(2) == S then
        mask = additive(m, device)
      elseif m:dim() == 3 and m:size(1) == N * self.num_heads and m:size(2) == L and m:size(3) == S then
        mask = additive(m, device):reshape(N, self.num_heads, L, S)
      else
        error(string.format("nn.MultiheadAttention: attn_mask must be [L, S] = [%d, %d] or " ..
          "[N * num_heads, L, S] = [%d, %d, %d], got %s", L, S, N * self.num_heads, L, S, shape_of(m)), 4)
      end
    end
    local k = opts.key_padding_mask
    if k then
      if k:dim() ~= 2 or k:size(1) ~= N or k:size(2) ~= S then
        error(string.format("nn.MultiheadAttention: key_padding_mask must be [N, S] = [%d, %d], got %s",
          N, S, shape_of(k)), 4)
      end
      k = additive(k, device):reshape(N, 1, 1, S)
      mask = mask and mask + k or k
    end
    return mask
  end

  --- mha(query, key, value [, {attn_mask, key_padding_mask, need_weights = true,
  --- average_attn_weights = true}]): the attention output [N, L, E] (batch
  --- first) and, with need_weights, the attention weights [N, L, S] averaged
  --- over heads ([N, heads, L, S] without averaging). Unbatched [L, E]
  --- inputs give [L, E] and [L, S].
  -- an argument of MHA:forward that must be a tensor (or nil, if optional)
  local function mha_tensor(name, t, optional)
    if not (lm.is_tensor(t) or (optional and t == nil)) then
      error(string.format("nn.MultiheadAttention: %s must be a tensor, got a %s", name, type(t)), 3)
    end
  end

  -- Whether self-attention may run as one op (F._self_attention): the
  -- device has the kernel, autocast is off (its products round their
  -- operands), and the ops it stands for are Lumen's own (not replaced by
  -- other code). Values and gradients are those of the composed form below
  -- to rounding, its attention dropout's mask included
  -- (tests/lua/attention_spec.lua).
  local plain_softmax, plain_matmul, plain_dropout = F.softmax, lm.matmul, F.dropout
  function fused_attention_fits(qkv)
    return lm.get_autocast() == nil and F.softmax == plain_softmax and lm.matmul == plain_matmul
      and F.dropout == plain_dropout and qkv:dtype() == "float32" and F._self_attention_available(qkv)
  end

  function MHA:forward(query, key, value, opts)
    opts = checks.opts(opts, "nn.MultiheadAttention", {attn_mask = true, key_padding_mask = true,
      need_weights = true, average_attn_weights = true})
    key, value = key or query, value or key or query
    mha_tensor("query", query)
    mha_tensor("key", key)
    mha_tensor("value", value)
    mha_tensor("attn_mask", opts.attn_mask, true)
    mha_tensor("key_padding_mask", opts.key_padding_mask, true)
    local need_weights = checks.flag(opts.need_weights, true, "need_weights", "nn.MultiheadAttention")
    local average_weights = checks.flag(opts.average_attn_weights, true, "average_attn_weights",
      "nn.MultiheadAttention")
    local E = self.embed_dim
    local self_attention = query == key and key == value -- before the layout changes below copy them
    local unbatched = query:dim() == 2
    if unbatched then
      query, key, value = query:unsqueeze(1), key:unsqueeze(1), value:unsqueeze(1)
      if opts.key_padding_mask then
        opts = {attn_mask = opts.attn_mask, key_padding_mask = opts.key_padding_mask:unsqueeze(1),
          need_weights = opts.need_weights, average_attn_weights = opts.average_attn_weights}
      end
    elseif not self.batch_first then
      query, key, value = query:transpose(1, 2), key:transpose(1, 2), value:transpose(1, 2)
    end
    if query:dim() ~= 3 or key:dim() ~= 3 or value:dim() ~= 3 or query:size(3) ~= E or key:size(3) ~= E
        or value:size(3) ~= E or key:size(1) ~= query:size(1) or value:size(1) ~= query:size(1)
        or key:size(2) ~= value:size(2) then
      error(string.format("nn.MultiheadAttention: query, key and value must be [N, L, %d], [N, S, %d] " ..
        "and [N, S, %d] (batch first), got %s, %s and %s", E, E, E, shape_of(query), shape_of(key),
        shape_of(value)), 2)
    end
    local N, L, S = query:size(1), query:size(2), key:size(2)
    local q, k, v
    if self_attention then -- one product with the packed weight
      local qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
      local keep = self.training and 1 - self.dropout or 1 -- F.dropout's rule
      -- the weights come from the fused op where nothing would differentiate
      -- them and no dropout changes them (the probabilities it returns)
      local with_weights = need_weights
      local fits = fused_attention_fits(qkv) and (not with_weights
        or (keep == 1 and not (lm.is_grad_enabled() and qkv:requires_grad())))
      local mask = fits and merged_mask(self, opts, N, L, S, query:device())
      if fits and not (mask and mask:requires_grad()) then
        local out, probs = F._self_attention(qkv, self.num_heads, mask or nil, 1 / math.sqrt(self.head_dim),
          keep, with_weights)
        out = self.out_proj(out)
        local weights = probs and (average_weights and probs:mean(2) or probs)
        if unbatched then return out:squeeze(1), weights and weights:squeeze(1) end
        return self.batch_first and out or out:transpose(1, 2), weights
      end
      q, k, v = qkv:narrow(3, 1, E), qkv:narrow(3, E + 1, E), qkv:narrow(3, 2 * E + 1, E)
    else
      q, k, v = projection(self, query, 0), projection(self, key, 1), projection(self, value, 2)
    end
    q = split_heads(self, q) * (1 / math.sqrt(self.head_dim)) -- [N, H, L, D]
    k, v = split_heads(self, k), split_heads(self, v)           -- [N, H, S, D]
    local scores = lm.matmul(q, k:transpose(3, 4))               -- [N, H, L, S]
    local mask = merged_mask(self, opts, N, L, S, query:device())
    if mask then scores = scores + mask end
    local attn = F.dropout(F.softmax(scores, -1), self.dropout, self.training)
    local out = lm.matmul(attn, v):transpose(2, 3):reshape(N, L, E)
    out = self.out_proj(out)
    local weights
    if need_weights then
      weights = average_weights and attn:mean(2) or attn
      if unbatched then weights = weights:squeeze(1) end
    end
    if unbatched then
      out = out:squeeze(1)
    elseif not self.batch_first then
      out = out:transpose(1, 2)
    end
    return out, weights
  end

  -- ---- TransformerEncoderLayer -------------------------------------------------------------------

  local TEL = Module:extend("nn.TransformerEncoderLayer")
  nn.TransformerEncoderLayer = TEL

  local activations = {relu = F.relu, gelu = F.gelu}

  --- nn.TransformerEncoderLayer(d_model, nhead [, {dim_feedforward = 2048,
  --- dropout = 0.1, activation = 'relu' | 'gelu' | function, norm_first =
  --- false, batch_first = true, layer_norm_eps = 1e-5}]).
  function TEL:init(d_model, nhead, opts)
    opts = checks.opts(opts, "nn.TransformerEncoderLayer", {dim_feedforward = true, dropout = true,
      activation = true, norm_first = true, batch_first = true, layer_norm_eps = true})
    local ff, p = opts.dim_feedforward or 2048, opts.dropout or 0.1
    check_size(ff, "dim_feedforward", "nn.TransformerEncoderLayer")
    check_p(p, "nn.TransformerEncoderLayer")
    local act = opts.activation or "relu"
    if type(act) == "function" then
      self.activation, self.activation_name = act, "custom"
    elseif type(act) == "table" and act.named_modules then
      -- a module (nn.GELU('tanh'), one of one's own), a child as in torch:
      -- it follows the layer's train/eval mode and device
      self:child("activation", act)
      self.activation_name = act.__name
    elseif activations[act] then
      self.activation, self.activation_name = activations[act], act
    else
      error("nn.TransformerEncoderLayer: activation must be 'relu', 'gelu', a module or a function, got " ..
        tostring(act), 2)
    end
    self.norm_first = checks.flag(opts.norm_first, false, "norm_first", "nn.TransformerEncoderLayer")
    self.batch_first = checks.flag(opts.batch_first, true, "batch_first", "nn.TransformerEncoderLayer")
    local eps = checks.eps(opts.layer_norm_eps, 1e-5, "layer_norm_eps", "nn.TransformerEncoderLayer")
    self:child("self_attn", nn.MultiheadAttention(d_model, nhead, {dropout = p, batch_first = self.batch_first}))
    self:child("linear1", nn.Linear(d_model, ff, {init = "pytorch"}))
    self:child("dropout", nn.Dropout(p))
    self:child("linear2", nn.Linear(ff, d_model, {init = "pytorch"}))
    self:child("norm1", nn.LayerNorm(d_model, {eps = eps}))
    self:child("norm2", nn.LayerNorm(d_model, {eps = eps}))
    self:child("dropout1", nn.Dropout(p))
    self:child("dropout2", nn.Dropout(p))
  end

  function TEL:extra_repr()
    return string.format("%s%s", self.activation_name, self.norm_first and ", norm first" or "")
  end

  --- layer(src [, {src_mask, src_key_padding_mask}]): masks as in MultiheadAttention.
  function TEL:forward(src, opts)
    opts = checks.opts(opts, "nn.TransformerEncoderLayer", {src_mask = true, src_key_padding_mask = true})
    local attn_opts = {attn_mask = opts.src_mask, key_padding_mask = opts.src_key_padding_mask,
      need_weights = false}
    local function sa_block(x) return self.dropout1(self.self_attn(x, x, x, attn_opts)) end
    local function ff_block(x)
      return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
    end
    local x = src
    if self.norm_first then
      x = x + sa_block(self.norm1(x))
      x = x + ff_block(self.norm2(x))
    else
      x = self.norm1(x + sa_block(x))
      x = self.norm2(x + ff_block(x))
    end
    return x
  end
end
