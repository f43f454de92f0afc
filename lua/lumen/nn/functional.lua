-- lm.nn.functional: stateless, differentiable layer functions.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'
local conv_args = require 'lumen.nn.conv_args'
local C = lm._functional

local F = {}
for name, fn in pairs(C) do F[name] = fn end

local is_tensor = lm.is_tensor

-- F.conv2d(x, w [, b] [, opts]): C's convolution (stride, padding and dilation
-- a size or a pair {h, w}), with torch's padding strings: 'valid' is none,
-- 'same' (stride 1) pads d (k - 1) along each dimension, its odd row or column
-- at the bottom or right as torch: the op pads that side's amount on both
-- sides and the first output row or column (over the extra one) is dropped.
local conv2d = C.conv2d
-- C's conv2d, its errors raised at the line that called F.conv2d
local function conv2d_at_caller(x, w, b, opts)
  local ok, y = pcall(conv2d, x, w, b, opts)
  if not ok then checks.reraise(y, 3) end
  return y
end
function F.conv2d(x, w, b, opts)
  local o = opts
  if o == nil and type(b) == "table" then o = b end -- F.conv2d(x, w, opts)
  local padding = type(o) == "table" and o.padding
  if type(padding) ~= "string" then
    local y = conv2d_at_caller(x, w, b, opts) -- (not a tail call: the level counts this frame)
    return y
  end
  local resolved = {}
  for k, v in pairs(o) do resolved[k] = v end
  if o == b then b = resolved else opts = resolved end
  if padding == "valid" or not (is_tensor(w) and w:dim() == 4) then -- (else the op's own error about w)
    resolved.padding = 0
    local y = conv2d_at_caller(x, w, b, opts)
    return y
  end
  if padding ~= "same" then
    error(string.format("conv2d: padding must be an integer from 0 to 2147483647 or a pair {h, w} of them, "
      .. "'same' or 'valid', got '%s'", padding), 2)
  end
  local stride = conv_args.pair(o.stride or 1, 1, "stride", "conv2d", 2)
  if stride[1] ~= 1 or stride[2] ~= 1 then
    error("conv2d: padding 'same' needs stride 1, as in torch, got stride " .. conv_args.shown(o.stride), 2)
  end
  local dilation = conv_args.pair(o.dilation or 1, 1, "dilation", "conv2d", 2)
  local before, after = conv_args.same_padding({w:size(3), w:size(4)}, dilation)
  resolved.padding = after
  local y = conv2d_at_caller(x, w, b, opts)
  for i = 1, 2 do
    if before[i] ~= after[i] then y = y:narrow(2 + i, 2, y:size(2 + i) - 1) end
  end
  return y:contiguous() -- (as torch's: a view would refuse x:view where torch's output takes it)
end

-- the elementwise activations check their input here: a method call on a
-- number or a table would otherwise fail inside this file
function F.elu(x, alpha)
  if not is_tensor(x) then checks.tensor(x, "input", "elu") end
  if alpha ~= nil and type(alpha) ~= "number" then checks.number(alpha, "alpha", "elu") end -- (at the caller)
  return x:elu(alpha)
end
function F.relu(x)
  if not is_tensor(x) then checks.tensor(x, "input", "relu") end
  return x:relu()
end
--- log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (torch's
--- defaults: beta 1, threshold 20).
function F.softplus(x, beta, threshold)
  if not is_tensor(x) then checks.tensor(x, "input", "softplus") end
  if beta ~= nil then checks.number(beta, "beta", "softplus") end
  if threshold ~= nil then checks.number(threshold, "threshold", "softplus") end
  return C._softplus(x, beta or 1, threshold or 20)
end
--- x where x > 0, else negative_slope * x (torch's default slope 0.01).
function F.leaky_relu(x, negative_slope)
  if not is_tensor(x) then checks.tensor(x, "input", "leaky_relu") end
  if negative_slope ~= nil and type(negative_slope) ~= "number" then
    checks.number(negative_slope, "negative_slope", "leaky_relu") -- (at the caller, not at the method call below)
  end
  return x:leaky_relu(negative_slope)
end
--- x clamped to [min_val, max_val] (torch's defaults -1 and 1), with torch's
--- gradient: 1 strictly inside the interval and 0 at and beyond the bounds
--- (x:clamp passes it at the bounds too, as torch.clamp does).
function F.hardtanh(x, min_val, max_val)
  if not is_tensor(x) then checks.tensor(x, "input", "hardtanh") end
  if min_val ~= nil then checks.number(min_val, "min_val", "hardtanh") end
  if max_val ~= nil then checks.number(max_val, "max_val", "hardtanh") end
  min_val, max_val = min_val or -1, max_val or 1
  if min_val ~= min_val or max_val ~= max_val or min_val >= max_val then
    error(string.format("hardtanh: min_val (%s) must be less than max_val (%s)", tostring(min_val),
      tostring(max_val)), 2)
  end
  local clamped = x:clamp(min_val, max_val)
  if not (lm.is_grad_enabled() and x:requires_grad()) then return clamped end
  -- x where min < x < max (its gradient passes), else the clamped value as a constant
  return lm.where(x:gt(min_val) * x:lt(max_val), x, clamped:detach())
end
--- min(max(x, 0), 6): F.hardtanh(x, 0, 6), torch's gradient (0 at 0 and at 6).
function F.relu6(x)
  if not is_tensor(x) then checks.tensor(x, "input", "relu6") end
  return F.hardtanh(x, 0, 6)
end
function F.sigmoid(x)
  if not is_tensor(x) then checks.tensor(x, "input", "sigmoid") end
  return x:sigmoid()
end
function F.tanh(x)
  if not is_tensor(x) then checks.tensor(x, "input", "tanh") end
  return x:tanh()
end

--- Inverted dropout: zeroes each element with probability p (the *drop*
--- probability, as in Torch and PyTorch) and scales the rest by 1/(1-p), so
--- evaluation needs no rescaling. The mask comes from the seeded RNG.
function F.dropout(x, p, training)
  if not is_tensor(x) then checks.tensor(x, "input", "dropout") end
  if type(p) ~= "number" and (p ~= nil or training) then checks.number(p, "p", "dropout") end
  if not training or p == 0 then return x end
  if not (p >= 0 and p < 1) then error(string.format("dropout: p must be in [0, 1), got %g", p), 2) end
  return C._dropout(x, 1 - p) -- 1/(1-p) kept, 0 dropped: x times the mask in one pass
end

--- Mean over the spatial dimensions of [N, C, H, W]: [N, C].
function F.global_avg_pool2d(x)
  checks.tensor(x, "input", "global_avg_pool2d")
  if x:dim() ~= 4 then error("global_avg_pool2d: input must be [N, C, H, W], got " .. x:shape_string(), 2) end
  return x:mean(4):mean(3)
end

--- Squared Euclidean distances between the rows of a [N, D] and of b [M, D]
--- (default: a itself): [N, M], ||a_i||^2 + ||b_j||^2 - 2 a_i . b_j in one
--- matrix product (kernels, densities, nearest neighbours).
function F.squared_distances(a, b)
  checks.tensor(a, "a", "squared_distances")
  checks.optional_tensor(b, "b", "squared_distances")
  b = b or a
  if a:dim() ~= 2 or b:dim() ~= 2 or a:size(2) ~= b:size(2) then
    error(string.format("squared_distances: needs a [N, D] and b [M, D], got %s and %s",
      a:shape_string(), b:shape_string()), 2)
  end
  local aa = (a * a):sum(2, true)           -- [N, 1]
  local bb = (b * b):sum(2, true):t()       -- [1, M]
  -- float32 under autocast too (as torch's cdist): the three terms cancel
  local ab = lm.autocast(false, lm.matmul, a, b:t()) -- [N, M]
  -- at least 0: the expanded form cancels for points far from the origin
  -- and near each other (as torch's cdist clamps it)
  if lm.is_grad_enabled() and (a:requires_grad() or b:requires_grad()) then
    return (ab * -2 + bb + aa):clamp(0, math.huge)
  end
  -- no gradient: the same sums in place, one [N, M] block instead of four
  return ab:mul_(-2):add_(bb):add_(aa):clamp_(0, math.huge)
end

--- Maximum Mean Discrepancy between samples z [N, D] and prior samples p
--- [M, D], the biased estimate over all pairs (DESIGN.md): mean k(z, z') +
--- mean k(p, p') - 2 mean k(z, p), with k(a, b) = exp(-||a - b||^2 / (bw D)).
--- opts.bw defaults to D; a list of bandwidths sums one kernel per scale (a
--- multi-scale kernel keeps a gradient for points far from the prior, where
--- a single narrow kernel vanishes); opts.weight (default 1) scales the result.
function F.mmd(z, p, opts)
  checks.tensor(z, "z", "mmd")
  checks.tensor(p, "p (the prior samples)", "mmd")
  opts = checks.options(opts, "mmd")
  if z:dim() ~= 2 or p:dim() ~= 2 or z:size(2) ~= p:size(2) then
    error(string.format("mmd: needs z [N, D] and prior samples [M, D], got %s and %s",
      z:shape_string(), p:shape_string()), 2)
  end
  local D = z:size(2)
  local bws = type(opts.bw) == "table" and opts.bw or {opts.bw or D}
  if #bws < 1 or #bws > C._mmd_max_bandwidths then -- the fused kernel's limit, for every device alike
    error(string.format("mmd: between 1 and %d bandwidths, got %d", C._mmd_max_bandwidths, #bws), 2)
  end
  for i, bw in ipairs(bws) do
    if type(bw) ~= "number" or bw ~= bw or bw <= 0 or bw == math.huge then -- NaN too
      error(string.format("mmd: bandwidths must be positive and finite numbers, got %s at %d", tostring(bw), i), 2)
    end
  end
  if C._mmd_available(z) then -- one fused op over all pairs, its gradient formed with the value
    local value = C._mmd(z, p, bws)
    if opts.weight then value = value * opts.weight end
    return value
  end
  -- computed once per pair of sets and shared by every bandwidth
  local zz, pp, zp = F.squared_distances(z), F.squared_distances(p), F.squared_distances(z, p)
  local value
  for _, bw in ipairs(bws) do
    local scale = -1 / (bw * D)
    local term = (zz * scale):exp():mean() + (pp * scale):exp():mean() - (zp * scale):exp():mean() * 2
    value = value and value + term or term
  end
  if opts.weight then value = value * opts.weight end
  return value
end

-- ---- convolutional-network layers (PyTorch's semantics; lm.nn's BatchNorm,
-- GroupNorm, SiLU, AdaptiveAvgPool2d, Dropout2d and Embedding call these) ----

-- {1, C, 1, ...}: a per-channel vector shaped to broadcast over x [N, C, ...]
local function channel_view(v, x)
  local shape = {1, x:size(2)}
  for _ = 3, x:dim() do shape[#shape + 1] = 1 end
  return v:view(shape)
end

--- Batch normalisation, as torch.nn.functional.batch_norm: x is [N, C, ...];
--- in training (or without running statistics) each channel is normalised
--- with the batch's mean and biased variance, and running_mean / running_var
--- (when given) move towards the batch's mean and unbiased variance by
--- `momentum` (default 0.1), outside the tape; otherwise the running
--- statistics are used. weight and bias (per channel) are optional; eps 1e-5.
function F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
  checks.tensor(x, "input", "batch_norm")
  checks.optional_tensor(running_mean, "running_mean", "batch_norm")
  checks.optional_tensor(running_var, "running_var", "batch_norm")
  checks.optional_tensor(weight, "weight", "batch_norm")
  checks.optional_tensor(bias, "bias", "batch_norm")
  if (running_mean == nil) ~= (running_var == nil) then
    error("batch_norm: running_mean and running_var go together (both tensors or both nil)", 2)
  end
  if momentum ~= nil then checks.number(momentum, "momentum", "batch_norm") end
  if eps ~= nil then checks.number(eps, "eps", "batch_norm") end
  if x:dim() < 2 then error("batch_norm: input must be [N, C, ...], got " .. x:shape_string(), 2) end
  momentum, eps = momentum or 0.1, eps or 1e-5
  -- an empty batch (a last batch of nothing) comes back empty, as in torch,
  -- the running statistics untouched
  if x:numel() == 0 then return x * 1 end
  local N, channels = x:size(1), x:size(2)
  local y
  if (training or running_mean == nil) and F._batch_norm_available(x) then
    return F._batch_norm_train_then(x, running_mean, running_var, weight, bias, momentum, eps)
  elseif training or running_mean == nil then
    local flat = x:reshape(N, channels, -1)
    local n = N * flat:size(3)
    if n == 1 then
      error(string.format("batch_norm: expected more than 1 value per channel when training, got input %s",
        x:shape_string()), 2)
    end
    local mean = flat:mean(3, true):mean(1, true) -- [1, C, 1]
    local centered = flat - mean
    local var = (centered * centered):mean(3, true):mean(1, true)
    y = (centered / (var + eps):sqrt()):view(x:shape())
    if running_mean ~= nil then
      lm.no_grad(function()
        running_mean:mul_(1 - momentum):add_(mean:detach():view(channels) * momentum)
        running_var:mul_(1 - momentum):add_(var:detach():view(channels) * (momentum * n / (n - 1)))
      end)
    end
  else
    return F._batch_norm_eval_then(x, running_mean, running_var, weight, bias, eps)
  end
  if weight ~= nil then y = y * channel_view(weight, x) end
  if bias ~= nil then y = y + channel_view(bias, x) end
  return y
end

--- (internal) A batch norm with the batch's statistics in the fused kernel
--- (two passes forward and two backward: core/cpu_norm.c, kernels/cuda_norm.cu), then +
--- residual (a tensor of x's shape, or nil) and a ReLU when relu, in the
--- same passes: the values of F.batch_norm, the sum and the ReLU op by op.
--- running_mean / running_var (or nil) move as F.batch_norm moves them.
function F._batch_norm_train_then(x, running_mean, running_var, weight, bias, momentum, eps, residual, relu)
  local out, mean, var = C._batch_norm(x, weight, bias, eps, residual, relu == true)
  if running_mean ~= nil then
    local n = x:numel() // x:size(2)
    lm.no_grad(function()
      running_mean:mul_(1 - momentum):add_(mean * momentum)
      running_var:mul_(1 - momentum):add_(var * (momentum * n / (n - 1)))
    end)
  end
  return out
end

-- a batch norm in evaluation as one affine map per channel: x * scale + shift
local function eval_affine(running_mean, running_var, weight, bias, eps)
  local scale = 1 / (running_var + (eps or 1e-5)):sqrt()
  if weight ~= nil then scale = scale * weight end
  local shift = -running_mean * scale
  if bias ~= nil then shift = shift + bias end
  return scale, shift
end

--- (internal) A batch norm in evaluation (running statistics), then +
--- residual (a tensor, or nil) and a ReLU when relu: one per-channel affine
--- map, x * scale + shift, with scale and shift folded on the C-vectors,
--- and with what follows it in one pass where nothing records gradients
--- (C._channel_affine); else op by op. The same values either way.

function F._batch_norm_eval_then(x, running_mean, running_var, weight, bias, eps, residual, relu)
  local scale, shift = eval_affine(running_mean, running_var, weight, bias, eps)
  local records = lm.is_grad_enabled() and (x:requires_grad() or scale:requires_grad() or shift:requires_grad()
    or (residual ~= nil and residual:requires_grad()))
  local fits = residual == nil or (residual:dtype() == "float32" and residual:device() == x:device()
    and residual:shape_string() == x:shape_string())
  if not records and fits then return C._channel_affine(x, scale, shift, residual, relu == true) end
  local y = x * channel_view(scale, x) + channel_view(shift, x)
  if residual ~= nil then y = y + residual end
  if relu == true then y = y:relu() end
  return y
end

--- (internal) F._batch_norm_eval_then(F.conv2d(x, conv_weight, nil,
--- conv_opts), ...): where nothing records gradients and the residual (if
--- any) is a float32 tensor of the convolution's output shape on its
--- device, one op (C._conv2d_affine) that maps each output plane as the
--- convolution writes it, instead of a second pass over the output. The
--- same values either way.
function F._conv_batch_norm_eval_then(x, conv_weight, conv_opts, running_mean, running_var, weight, bias, eps,
                                      residual, relu)
  local scale, shift = eval_affine(running_mean, running_var, weight, bias, eps)
  local records = lm.is_grad_enabled() and (x:requires_grad() or conv_weight:requires_grad()
    or scale:requires_grad() or shift:requires_grad() or (residual ~= nil and residual:requires_grad()))
  local fits = residual == nil
  if not fits and lm.is_tensor(residual) and residual:dtype() == "float32" and residual:device() == x:device()
    and x:dim() == 4 and conv_weight:dim() == 4 and residual:dim() == 4 then
    local s, p, d = conv_opts.stride or 1, conv_opts.padding or 0, conv_opts.dilation or 1
    local function at(v, i) return type(v) == "table" and v[i] or v end
    fits = type(p) ~= "string" and residual:size(1) == x:size(1) and residual:size(2) == conv_weight:size(1)
    for i = 1, 2 do
      fits = fits and residual:size(2 + i)
        == (x:size(2 + i) + 2 * at(p, i) - at(d, i) * (conv_weight:size(2 + i) - 1) - 1) // at(s, i) + 1
    end
  end
  -- (padding 'same' that pads unevenly is F.conv2d's, not the fused op's)
  if not records and fits and type(conv_opts.padding) ~= "string" then
    return C._conv2d_affine(x, conv_weight, conv_opts, scale, shift, residual, relu == true)
  end
  return F._batch_norm_eval_then(F.conv2d(x, conv_weight, nil, conv_opts), running_mean, running_var, weight, bias,
    eps, residual, relu)
end

--- Group normalisation, as torch.nn.functional.group_norm: the channels of
--- x [N, C, ...] fall into num_groups groups, each normalised per sample
--- with its mean and biased variance; optional per-channel weight and bias.
function F.group_norm(x, num_groups, weight, bias, eps)
  checks.tensor(x, "input", "group_norm")
  if not (checks.is_whole(num_groups) and num_groups >= 1) then
    error("group_norm: num_groups must be a positive integer, got " .. checks.shown(num_groups), 2)
  end
  checks.optional_tensor(weight, "weight", "group_norm")
  checks.optional_tensor(bias, "bias", "group_norm")
  if eps ~= nil then checks.number(eps, "eps", "group_norm") end
  eps = eps or 1e-5
  if x:dim() < 2 or x:size(2) % num_groups ~= 0 then
    error(string.format("group_norm: input must be [N, C, ...] with C divisible by %d groups, got %s",
      num_groups, x:shape_string()), 2)
  end
  local g = x:reshape(x:size(1), num_groups, -1)
  local centered = g - g:mean(3, true)
  local var = (centered * centered):mean(3, true)
  local y = (centered / (var + eps):sqrt()):view(x:shape())
  if weight ~= nil then y = y * channel_view(weight, x) end
  if bias ~= nil then y = y + channel_view(bias, x) end
  return y
end

--- x * sigmoid(x) (also called swish), one fused op.
function F.silu(x)
  if not is_tensor(x) then checks.tensor(x, "input", "silu") end
  return lm._functional._activation(x, "silu")
end

-- torch's adaptive pooling windows along one dimension of size n into m
-- cells: cell i (0-based) covers [floor(i n / m), ceil((i + 1) n / m))
local function adaptive_mean(x, d, m)
  local n = x:size(d)
  if m == n then return x end
  if m == 1 then return x:mean(d, true) end
  if n % m == 0 then -- equal windows: one reshape and one mean
    local shape = x:shape()
    shape[d] = m
    table.insert(shape, d + 1, n // m)
    return x:reshape(shape):mean(d + 1)
  end
  local parts = {}
  for i = 0, m - 1 do
    local start, stop = (i * n) // m, -((-(i + 1) * n) // m)
    parts[#parts + 1] = x:narrow(d, start + 1, stop - start):mean(d, true)
  end
  return lm.cat(parts, d)
end

--- Adaptive average pooling of x [N, C, H, W] (or [C, H, W]) to
--- output_size (a number or {h, w}), with PyTorch's windows: output cell i
--- of a dimension of size n into m averages inputs floor(i n / m) to
--- ceil((i + 1) n / m) - 1 (0-based).
function F.adaptive_avg_pool2d(x, output_size)
  checks.tensor(x, "input", "adaptive_avg_pool2d")
  local oh, ow
  if type(output_size) == "table" then oh, ow = output_size[1], output_size[2]
  else oh, ow = output_size, output_size end
  if math.type(oh) ~= "integer" or math.type(ow) ~= "integer" or oh < 1 or ow < 1
      or type(output_size) == "table" and #output_size ~= 2 then
    local given = checks.shown(output_size)
    if type(output_size) == "table" then
      local parts = {}
      for i, v in ipairs(output_size) do parts[i] = checks.shown(v) end
      given = "{" .. table.concat(parts, ", ") .. "}"
    end
    error("adaptive_avg_pool2d: output_size must be a positive integer or {h, w}, got " .. given, 2)
  end
  if x:dim() ~= 4 and x:dim() ~= 3 then
    error("adaptive_avg_pool2d: input must be [N, C, H, W] or [C, H, W], got " .. x:shape_string(), 2)
  end
  -- an empty plane has nothing to average (torch refuses it too); an empty batch is fine
  if x:size(-1) == 0 or x:size(-2) == 0 or x:dim() == 4 and x:size(2) == 0 then
    error("adaptive_avg_pool2d: the input's channels and planes must not be empty, got " .. x:shape_string(), 2)
  end
  local d = x:dim() - 1
  return adaptive_mean(adaptive_mean(x, d, oh), d + 1, ow)
end

--- Channel dropout, as torch.nn.functional.dropout2d: each channel of each
--- sample of x [N, C, H, W] is zeroed with probability p and the rest scaled
--- by 1/(1-p); the identity when not training. The mask comes from the
--- seeded RNG.
function F.dropout2d(x, p, training)
  checks.tensor(x, "input", "dropout2d")
  if type(p) ~= "number" or p < 0 or p > 1 then
    error(string.format("dropout2d: p must be in [0, 1], got %s", tostring(p)), 2)
  end
  if not training or p == 0 then return x end
  if x:dim() ~= 4 then error("dropout2d: input must be [N, C, H, W], got " .. x:shape_string(), 2) end
  if p == 1 then return x * 0 end
  local keep = lm.no_grad(function()
    return lm.rand({x:size(1), x:size(2), 1, 1}, x:device()):lt(1 - p) * (1 / (1 - p))
  end)
  return x * keep
end

--- Stochastic depth, as torchvision.ops.stochastic_depth: in training,
--- mode 'row' zeroes each sample of x (its first dimension) with
--- probability p and scales the rest by 1/(1-p); mode 'batch' does so to
--- the whole batch at once. The identity when not training or p = 0. The
--- mask comes from the seeded RNG.
function F.stochastic_depth(x, p, mode, training)
  checks.tensor(x, "input", "stochastic_depth")
  if type(p) ~= "number" or p ~= p or p < 0 or p > 1 then
    error("stochastic_depth: p must be a number in [0, 1], got " .. checks.shown(p), 2)
  end
  if mode ~= "row" and mode ~= "batch" then
    error("stochastic_depth: mode must be 'row' or 'batch', got " .. checks.shown(mode), 2)
  end
  if not training or p == 0 then return x end
  if x:dim() == 0 then error("stochastic_depth: input must have at least one dimension, got a scalar", 2) end
  local shape = {}
  for d = 1, x:dim() do shape[d] = 1 end
  if mode == "row" then shape[1] = x:size(1) end
  local keep = lm.no_grad(function()
    local mask = lm.rand(shape, x:device()):lt(1 - p)
    return p < 1 and mask * (1 / (1 - p)) or mask
  end)
  return x * keep
end

-- rows of a one-hot matrix handled at once in the embedding's backward
local ONE_HOT_ELEMENTS = 1 << 22

local Embedding = lm.autograd.Function{
  name = "embedding",
  forward = function(ctx, weight, flat, padding_idx)
    ctx.flat, ctx.padding_idx, ctx.rows = flat, padding_idx, weight:size(1)
    return weight:index_select(flat)
  end,
  -- the weight's gradient: one_hot(indices)^T grad, a block of rows at a time
  backward = function(ctx, grad)
    local flat, rows = ctx.flat, ctx.rows
    local n, dim = flat:size(1), grad:size(2)
    -- row numbers and indices compared as int32: a float32 holds every
    -- integer only up to 2^24, and larger tables would mix neighbouring rows
    local classes = lm.arange(1, rows, 'int32'):view(1, rows):to(grad:device())
    local block = math.max(1, ONE_HOT_ELEMENTS // rows)
    local total
    for start = 1, n, block do
      local len = math.min(block, n - start + 1)
      local idx = flat:narrow(1, start, len):view(len, 1)
      local one_hot = idx:eq(classes)
      if ctx.padding_idx then one_hot = one_hot * idx:ne(ctx.padding_idx) end
      -- a sum of rows, not a product: float32 under autocast too
      local part = lm.autocast(false, lm.matmul, one_hot:t(), grad:narrow(1, start, len))
      total = total and total + part or part
    end
    return total or lm.zeros({rows, dim}, 'float32', grad:device())
  end,
}

--- Rows of weight [num, dim] picked by the 1-based int32 indices idx (any
--- shape): [idx..., dim], differentiable in weight. The row padding_idx
--- (1-based, negative from the end; optional) gets no gradient.
function F.embedding(idx, weight, padding_idx)
  if not lm.is_tensor(idx) or idx:dtype() ~= "int32" then
    error("embedding: indices must be an int32 tensor (1-based), got " ..
      (lm.is_tensor(idx) and idx:dtype() or type(idx)), 2)
  end
  checks.tensor(weight, "weight", "embedding")
  if weight:dim() ~= 2 then error("embedding: weight must be [num, dim], got " .. weight:shape_string(), 2) end
  if padding_idx ~= nil then padding_idx = checks.row(padding_idx, weight:size(1), "padding_idx", "embedding") end
  local shape = idx:shape()
  shape[#shape + 1] = weight:size(2)
  local flat = idx:reshape(-1)
  if flat:device() ~= weight:device() then flat = flat:to(weight:device()) end
  local ok, out = pcall(function()
    return weight:requires_grad() and lm.is_grad_enabled() and Embedding(weight, flat, padding_idx)
      or weight:index_select(flat)
  end)
  if not ok then
    if flat:numel() > 0 and flat:min():item() == 0 then -- most likely torch's 0-based indices
      error(string.format("embedding: index 0 in the indices: Lumen's indices are 1-based (1..%d), "
        .. "add 1 to 0-based ones", weight:size(1)), 2)
    end
    local bad = out:match("index_select: (index %-?%d+ out of range for %d+ rows)")
    error(bad and "embedding: " .. bad .. " of the weight" or out, 2)
  end
  return out:view(shape)
end

-- ---- transformer layers (lua/lumen/nn/transformer_layers.lua) ----------------------------------

--- GELU, x Phi(x): opts.approximate = 'none' (exact, with erf; the default)
--- or 'tanh' (0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))), PyTorch's two
--- forms; F.gelu(x, 'tanh') also works.
function F.gelu(x, opts)
  if not is_tensor(x) then checks.tensor(x, "input", "gelu") end
  if type(opts) == "table" then opts = checks.opts(opts, "gelu", {"approximate"}).approximate end
  if opts ~= nil and type(opts) ~= "string" then
    error("gelu: approximate must be 'none' or 'tanh', got " .. checks.shown(opts), 2)
  end
  return x:gelu(opts or "none")
end

--- Layer normalisation over the trailing dimensions `normalized_shape` (a
--- number or a list of sizes): (x - mean) / sqrt(var + eps) with the biased
--- variance, then * weight + bias when given (each of normalized_shape), as
--- torch.nn.functional.layer_norm.
function F.layer_norm(x, normalized_shape, weight, bias, eps)
  if not lm.is_tensor(x) then error("layer_norm: input must be a tensor, got a " .. type(x), 2) end
  local dims = type(normalized_shape) == "table" and normalized_shape or {normalized_shape}
  for i = 1, #dims do
    if not checks.is_whole(dims[i]) then
      error("layer_norm: normalized_shape must be a size or a list of sizes, got " .. checks.shown(normalized_shape), 2)
    end
  end
  local k, n = #dims, 1
  local ok = x:dim() >= k
  for i = 1, k do
    n = n * dims[i]
    ok = ok and x:size(x:dim() - k + i) == dims[i]
  end
  if not ok then
    error(string.format("layer_norm: input %s does not end with normalized_shape %s", x:shape_string(),
      table.concat(dims, "x")), 2)
  end
  -- one op where the device has it (the same values to rounding), else composed
  if x:dtype() == "float32" and F._layer_norm_available(x) then
    local done, y = pcall(F._layer_norm, x, k, weight, bias, eps or 1e-5)
    if not done then checks.reraise(y, 2) end -- at the caller's line
    return y
  end
  return F._layer_norm_composed(x, k, weight, bias, eps)
end

-- F.layer_norm's definition from tensor ops (devices without the fused op,
-- and the reference tests/lua/layer_norm_spec.lua checks the op against):
-- x's last k dimensions normalised, as F.layer_norm after its checks.
function F._layer_norm_composed(x, k, weight, bias, eps)
  local flat, n = {}, 1
  for i = 1, x:dim() - k do flat[i] = x:size(i) end
  for i = x:dim() - k + 1, x:dim() do n = n * x:size(i) end
  flat[#flat + 1] = n
  local v = x:reshape(flat)
  local centred = v - v:mean(-1, true)
  local y = centred / ((centred * centred):mean(-1, true) + (eps or 1e-5)):sqrt()
  y = y:reshape(x:shape())
  if weight then y = y * weight end
  if bias then y = y + bias end
  return y
end

-- torch's pooling ceil_mode and count_include_pad = false around the core's pooling
require('lumen.nn.pool_modes')(F)
-- torch's other activations (hardswish, mish, selu, ..., prelu, glu, softmin)
require('lumen.nn.activation_functions')(F)

-- torch's losses (binary cross entropy, L1, smooth L1, Huber, NLL, KL divergence)
require('lumen.nn.loss_functions')(F)
-- torch's padding and resampling (F.pad, F.interpolate)
require('lumen.nn.resample')(F)

return F
