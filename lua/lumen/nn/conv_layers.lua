-- The layers of modern convolutional networks, twins of torch.nn's: the same
-- defaults, semantics, parameter and buffer names and layouts, so their
-- state dicts go both ways (BatchNorm's running_mean, running_var and
-- num_batches_tracked included). Each forward is a composition of
-- differentiable tensor operations (lm.nn.functional), so they run on the
-- CPU and on CUDA and the tape gives their backward.
--
-- Decided here:
--   * num_batches_tracked is a 0-D int32 tensor (torch keeps a 0-D int64;
--     torch's load_state_dict converts either way, and Lumen loads torch's
--     I64 file as int32).
--   * nn.Embedding takes 1-based int32 indices, as every index in Lumen;
--     padding_idx is 1-based too (negative counts from the end: -1 is the
--     last row). Its backward builds one-hot rows a block at a time
--     (one_hot^T @ grad), as Lumen has no scatter-add.
local lm = require 'lumen'
local F = require 'lumen.nn.functional'
local checks = require 'lumen.nn.checks'

return function(nn)
  local Module = nn.Module

  local check_size, check_opts = checks.size, checks.opts

  -- ---- normalisation ----------------------------------------------------------------------------

  local BN_OPTS = {eps = true, momentum = true, affine = true, track_running_stats = true}

  -- the shared body of BatchNorm1d and BatchNorm2d (torch's _BatchNorm)
  local function batch_norm_class(name, dims, shapes)
    local class = Module:extend(name)
    -- states saved without num_batches_tracked load with it 0, as torch's
    -- BatchNorm fills it in (it matters to momentum = false, torch's None)
    class.optional_state = {num_batches_tracked = function(t) t:zero_() end}

    --- num_features channels; opts.eps (1e-5), opts.momentum (0.1; false:
    --- a cumulative average, torch's None), opts.affine (true: weight 1 and
    --- bias 0, trained), opts.track_running_stats (true: running_mean 0,
    --- running_var 1 and num_batches_tracked buffers, used in evaluation).
    function class:init(num_features, opts)
      check_size(num_features, "num_features", name)
      opts = check_opts(opts, name, BN_OPTS)
      self.num_features = num_features
      self.eps = checks.eps(opts.eps, 1e-5, "eps", name)
      if opts.momentum == nil then self.momentum = 0.1 else self.momentum = opts.momentum end
      if self.momentum ~= false and not checks.is_finite(self.momentum) then
        error(string.format("%s: momentum must be a finite number (or false: a cumulative average), got %s", name,
          checks.shown(self.momentum)), 3)
      end
      self.affine = checks.flag(opts.affine, true, "affine", name)
      self.track_running_stats = checks.flag(opts.track_running_stats, true, "track_running_stats", name)
      if self.affine then
        self:param("weight", lm.ones(num_features))
        self:param("bias", lm.zeros(num_features))
      end
      if self.track_running_stats then
        self:buffer("running_mean", lm.zeros(num_features))
        self:buffer("running_var", lm.ones(num_features))
        self:buffer("num_batches_tracked", lm.tensor(0, "int32"))
      end
    end

    -- errors at `level` from the caller
    function class:_check_input(x, level)
      if not lm.is_tensor(x) or not dims[x:dim()] then
        error(string.format("%s: input must be %s, got %s", name, shapes,
          lm.is_tensor(x) and x:shape_string() or type(x)), level + 1)
      end
      if x:size(2) ~= self.num_features then
        error(string.format("%s: input %s has %d channels (dimension 2), the layer %d", name,
          x:shape_string(), x:size(2), self.num_features), level + 1)
      end
    end

    -- This call's statistics: whether the batch's normalise it, the running
    -- statistics to use or move (nil, nil: none), and the factor that moves
    -- them (the batch counted first in training).
    function class:_statistics()
      local factor = self.momentum or 0
      if self.training and self.track_running_stats then
        lm.no_grad(function() self.num_batches_tracked:add_(1) end)
        if not self.momentum then factor = 1 / self.num_batches_tracked:item() end
      end
      local use_batch = self.training or not self.track_running_stats
      local rm, rv
      if not use_batch or self.track_running_stats then rm, rv = self.running_mean, self.running_var end
      return use_batch, rm, rv, factor
    end

    function class:forward(x)
      self:_check_input(x, 2)
      local use_batch, rm, rv, factor = self:_statistics()
      return F.batch_norm(x, rm, rv, self.weight, self.bias, use_batch, factor, self.eps)
    end

    --- Sets the running statistics back to mean 0, variance 1, no batches.
    function class:reset_running_stats()
      if not self.track_running_stats then return end
      lm.no_grad(function()
        self.running_mean:zero_()
        self.running_var:fill_(1)
        self.num_batches_tracked:zero_()
      end)
    end

    function class:extra_repr()
      local parts = {tostring(self.num_features)}
      if self.eps ~= 1e-5 then parts[#parts + 1] = "eps = " .. self.eps end
      if self.momentum ~= 0.1 then parts[#parts + 1] = "momentum = " .. tostring(self.momentum) end
      if not self.affine then parts[#parts + 1] = "affine = false" end
      if not self.track_running_stats then parts[#parts + 1] = "track_running_stats = false" end
      return table.concat(parts, ", ")
    end
    return class
  end

  nn.BatchNorm1d = batch_norm_class("nn.BatchNorm1d", {[2] = true, [3] = true}, "[N, C] or [N, C, L]")
  nn.BatchNorm2d = batch_norm_class("nn.BatchNorm2d", {[4] = true}, "[N, C, H, W]")
  nn._fusable_class(nn.BatchNorm1d)
  nn._fusable_class(nn.BatchNorm2d)

  -- A batch norm and the ReLU after it (an nn.ReLU, or nil) as Lumen
  -- defines them (no hooks, nothing replaced, F.batch_norm not wrapped by
  -- other code): bn_then may run them, with a residual sum between, as one
  -- op. fusable: in evaluation with running statistics (any device);
  -- batch_fusable: normalised by the batch's statistics (training), which
  -- the CPU and CUDA fuse.
  local plain_batch_norm = F.batch_norm
  local function plain(bn, relu)
    return F.batch_norm == plain_batch_norm
      and (nn._is_plain(bn, nn.BatchNorm2d) or nn._is_plain(bn, nn.BatchNorm1d))
      and (relu == nil or nn._is_plain(relu, nn.ReLU))
  end
  local function fusable(bn, relu)
    return plain(bn, relu) and not bn.training and bn.track_running_stats
  end
  local function batch_fusable(bn, relu)
    return plain(bn, relu) and (bn.training or not bn.track_running_stats)
  end

  -- whether x and the residual suit the fused training kernel (else the
  -- sum would broadcast, the device has no such kernel, or the batch is
  -- empty, which F.batch_norm returns as it is)
  local function fits_batch_kernel(x, residual)
    return lm.is_tensor(x) and x:dtype() == "float32" and x:numel() > 0 and F._batch_norm_available(x)
      and (residual == nil or (lm.is_tensor(residual) and residual:device() == x:device()
        and residual:dtype() == "float32" and residual:shape_string() == x:shape_string()))
  end

  -- relu(bn(x) + residual), residual and relu optional: in one pass over x
  -- in evaluation (F._batch_norm_eval_then), in the batch norm's own passes
  -- in training (F._batch_norm_train_then), each when fusable and
  -- the calling module's `fuse` is not false (the same values), else module
  -- by module.
  local function bn_then(bn, x, residual, relu, fuse)
    if fuse ~= false and fusable(bn, relu) then
      bn:_check_input(x, 3)
      return F._batch_norm_eval_then(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps, residual,
        relu ~= nil)
    end
    if fuse ~= false and batch_fusable(bn, relu) and fits_batch_kernel(x, residual) then
      bn:_check_input(x, 3)
      local _, rm, rv, factor = bn:_statistics()
      return F._batch_norm_train_then(x, rm, rv, bn.weight, bn.bias, factor, bn.eps, residual, relu ~= nil)
    end
    local y = bn(x)
    if residual ~= nil then y = y + residual end
    if relu ~= nil then y = relu(y) end
    return y
  end
  nn._bn_then = bn_then
  -- for Sequential: a batch norm followed by a ReLU that bn_then would fuse
  function nn._bn_fusable(bn, relu) return relu ~= nil and (fusable(bn, relu) or batch_fusable(bn, relu)) end

  -- A convolution without bias as Lumen defines it, and the batch norm (in
  -- evaluation) and ReLU that bn_then would fuse after it: conv_bn_then may
  -- run all three, with a residual sum before the ReLU, as one op.
  local plain_conv2d = F.conv2d
  local function conv_fusable(conv, bn, relu)
    return F.conv2d == plain_conv2d and nn._is_plain(conv, nn.Conv2d) and rawget(conv, "bias") == nil
      and nn._is_plain(bn, nn.BatchNorm2d) and fusable(bn, relu) and conv.outputs == bn.num_features
  end

  -- relu(bn(conv(x)) + residual), residual and relu optional: each output
  -- plane mapped as the convolution writes it when fusable
  -- (F._conv_batch_norm_eval_then: the same values), else bn_then(bn, conv(x), ...).
  local function conv_bn_then(conv, bn, x, residual, relu, fuse)
    if fuse ~= false and conv_fusable(conv, bn, relu) and lm.is_tensor(x) then
      return F._conv_batch_norm_eval_then(x, conv.weight, conv:_conv_opts(),
        bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps, residual, relu ~= nil)
    end
    return bn_then(bn, conv(x), residual, relu, fuse)
  end
  nn._conv_bn_then = conv_bn_then
  -- for Sequential: a convolution and a batch norm (then perhaps a ReLU) that
  -- conv_bn_then would fuse
  function nn._conv_bn_fusable(conv, bn, relu) return conv_fusable(conv, bn, relu) end

  nn.GroupNorm = Module:extend("nn.GroupNorm")

  --- num_channels in num_groups groups, normalised per sample; opts.eps
  --- (1e-5), opts.affine (true: per-channel weight 1 and bias 0).
  function nn.GroupNorm:init(num_groups, num_channels, opts)
    check_size(num_groups, "num_groups", "nn.GroupNorm")
    check_size(num_channels, "num_channels", "nn.GroupNorm")
    if num_channels % num_groups ~= 0 then
      error(string.format("nn.GroupNorm: num_channels (%d) must be divisible by num_groups (%d)",
        num_channels, num_groups), 2)
    end
    opts = check_opts(opts, "nn.GroupNorm", {eps = true, affine = true})
    self.num_groups, self.num_channels = num_groups, num_channels
    self.eps = checks.eps(opts.eps, 1e-5, "eps", "nn.GroupNorm")
    self.affine = checks.flag(opts.affine, true, "affine", "nn.GroupNorm")
    if self.affine then
      self:param("weight", lm.ones(num_channels))
      self:param("bias", lm.zeros(num_channels))
    end
  end

  function nn.GroupNorm:forward(x)
    if not lm.is_tensor(x) or x:dim() < 2 or x:size(2) ~= self.num_channels then
      error(string.format("nn.GroupNorm: input must be [N, %d, ...], got %s", self.num_channels,
        lm.is_tensor(x) and x:shape_string() or type(x)), 2)
    end
    return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
  end

  function nn.GroupNorm:extra_repr()
    return string.format("%d groups, %d channels%s%s", self.num_groups, self.num_channels,
      self.eps ~= 1e-5 and ", eps = " .. self.eps or "", self.affine and "" or ", affine = false")
  end

  nn.LayerNorm2d = Module:extend("nn.LayerNorm2d")

  --- torchvision.models.convnext.LayerNorm2d: a layer norm over the channels
  --- of [N, C, H, W] (each pixel's C values normalised on their own);
  --- opts.eps (1e-5, torch's; ConvNeXt gives 1e-6), opts.elementwise_affine
  --- (true: weight 1 and bias 0, [C]).
  function nn.LayerNorm2d:init(num_channels, opts)
    check_size(num_channels, "num_channels", "nn.LayerNorm2d")
    opts = check_opts(opts, "nn.LayerNorm2d", {eps = true, elementwise_affine = true})
    self.num_channels = num_channels
    self.eps = checks.eps(opts.eps, 1e-5, "eps", "nn.LayerNorm2d")
    self.elementwise_affine = checks.flag(opts.elementwise_affine, true, "elementwise_affine", "nn.LayerNorm2d")
    if self.elementwise_affine then
      self:param("weight", lm.ones(num_channels))
      self:param("bias", lm.zeros(num_channels))
    end
  end

  function nn.LayerNorm2d:forward(x)
    if not lm.is_tensor(x) or x:dim() ~= 4 or x:size(2) ~= self.num_channels then
      error(string.format("nn.LayerNorm2d: input must be [N, %d, H, W], got %s", self.num_channels,
        lm.is_tensor(x) and x:shape_string() or type(x)), 2)
    end
    -- channels last as a view, the fused row kernel (which copies the view
    -- into rows of C), channels first again as a view. Measured against the
    -- composed form over dimension 2 (mean, centre, variance, scale: a pass
    -- each): half its time forward and backward on [8, 96, 56, 56].
    local y = F.layer_norm(x:permute(1, 3, 4, 2), self.num_channels, self.weight, self.bias, self.eps)
    return y:permute(1, 4, 2, 3)
  end

  function nn.LayerNorm2d:extra_repr()
    return string.format("%d channels, eps = %s%s", self.num_channels, tostring(self.eps),
      self.elementwise_affine and "" or ", no affine")
  end

  -- ---- activations, pooling, dropout ----------------------------------------------------------

  nn.SiLU = Module:extend("nn.SiLU")
  function nn.SiLU:forward(x) return F.silu(x) end

  nn.AdaptiveAvgPool2d = Module:extend("nn.AdaptiveAvgPool2d")

  --- Average pooling to a fixed output size (a number or {h, w}), whatever
  --- the input's size, with PyTorch's windows.
  function nn.AdaptiveAvgPool2d:init(output_size)
    local h, w = output_size, output_size
    if type(output_size) == "table" then
      if #output_size ~= 2 then
        error("nn.AdaptiveAvgPool2d: output_size must be a size or {h, w}, got " .. #output_size .. " sizes", 2)
      end
      h, w = output_size[1], output_size[2]
    end
    check_size(h, "output height", "nn.AdaptiveAvgPool2d")
    check_size(w, "output width", "nn.AdaptiveAvgPool2d")
    self.output_size = {h, w}
  end

  function nn.AdaptiveAvgPool2d:forward(x) return F.adaptive_avg_pool2d(x, self.output_size) end
  function nn.AdaptiveAvgPool2d:extra_repr() return self.output_size[1] .. "x" .. self.output_size[2] end

  nn.Dropout2d = Module:extend("nn.Dropout2d")

  --- Zeroes whole channels of [N, C, H, W] with probability p (default 0.5)
  --- and scales the rest by 1/(1-p), in training only.
  function nn.Dropout2d:init(p)
    p = p or 0.5
    checks.p(p, "p", "nn.Dropout2d", true)
    self.p = p
  end

  function nn.Dropout2d:forward(x) return F.dropout2d(x, self.p, self.training) end
  function nn.Dropout2d:extra_repr() return "p = " .. self.p end

  nn.StochasticDepth = Module:extend("nn.StochasticDepth")

  --- torchvision.ops.StochasticDepth(p, mode): in training, drops a residual
  --- branch per sample (mode 'row') or for the whole batch ('batch') with
  --- probability p and scales what it keeps by 1/(1-p); the identity in
  --- evaluation mode. No parameters, nothing in the state dict.
  function nn.StochasticDepth:init(p, mode)
    checks.p(p, "p", "nn.StochasticDepth", true)
    if mode ~= "row" and mode ~= "batch" then
      error("nn.StochasticDepth: mode must be 'row' or 'batch', got " .. checks.shown(mode), 3)
    end
    self.p, self.mode = p, mode
  end

  function nn.StochasticDepth:forward(x) return F.stochastic_depth(x, self.p, self.mode, self.training) end
  function nn.StochasticDepth:extra_repr() return "p = " .. self.p .. ", mode = " .. self.mode end

  -- ---- embedding --------------------------------------------------------------------------------

  nn.Embedding = Module:extend("nn.Embedding")

  --- A table of num_embeddings vectors of embedding_dim, weight
  --- [num_embeddings, embedding_dim] ~ N(0, 1) as in torch; called on
  --- 1-based int32 indices of any shape, it returns [shape..., dim].
  --- opts.padding_idx (1-based; negative from the end): that row starts at
  --- zero and gets no gradient.
  function nn.Embedding:init(num_embeddings, embedding_dim, opts)
    check_size(num_embeddings, "num_embeddings", "nn.Embedding")
    check_size(embedding_dim, "embedding_dim", "nn.Embedding")
    opts = check_opts(opts, "nn.Embedding", {padding_idx = true})
    self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
    local pad = opts.padding_idx
    if pad ~= nil then
      pad = checks.row(pad, num_embeddings, "padding_idx", "nn.Embedding")
      self.padding_idx = pad
    end
    local weight = lm.randn(num_embeddings, embedding_dim)
    if pad then weight[pad] = 0 end
    self:param("weight", weight)
  end

  function nn.Embedding:forward(idx)
    return F.embedding(idx, self.weight, self.padding_idx)
  end

  function nn.Embedding:extra_repr()
    return string.format("%d x %d%s", self.num_embeddings, self.embedding_dim,
      self.padding_idx and ", padding_idx = " .. self.padding_idx or "")
  end
end
