-- ConvNeXt (Liu et al. 2022) with torchvision's architecture, defaults,
-- initialisation and state-dict names (features.0.0, features.1.0.block.0,
-- features.1.0.layer_scale, features.2.1, ..., classifier.2), so a
-- torchvision checkpoint loads strictly and Lumen's file loads into
-- torchvision.models.convnext_tiny (and the others) with strict=True.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(models)
  local nn = lm.nn

  -- torchvision's init of every ConvNeXt convolution and Linear: weight
  -- N(0, 0.02^2) truncated to [-2, 2] (torch's absolute bounds), bias 0
  local function trunc_normal_init(m)
    nn.init.trunc_normal_(m.weight, {std = 0.02})
    nn.init.zeros_(m.bias)
  end

  local CNBlock = nn.Module:extend("models.CNBlock")
  models.CNBlock = CNBlock

  --- ConvNeXt's block on [N, dim, H, W]: a 7x7 depthwise convolution, then
  --- channels last for a layer norm (eps 1e-6) and an MLP (Linear to 4 dim,
  --- GELU, Linear back), channels first again; scaled per channel by
  --- layer_scale ([dim, 1, 1], every value `layer_scale`), dropped by
  --- stochastic depth ('row') with probability `p` in training, added to
  --- the input. Children `block` (a Sequential: 0 the convolution, 2 the
  --- norm, 3 and 5 the Linears, as torchvision's) and `stochastic_depth`.
  function CNBlock:init(dim, layer_scale, p)
    checks.size(dim, "dim", "lm.models.CNBlock")
    if not checks.is_finite(layer_scale) then
      error("lm.models.CNBlock: layer_scale must be a finite number, got " .. checks.shown(layer_scale), 3)
    end
    checks.p(p, "stochastic depth", "lm.models.CNBlock", true)
    self:child("block", nn.Sequential(
      nn.Conv2d(dim, dim, 7, {padding = 3, groups = dim}),
      nn.Permute{1, 3, 4, 2},
      nn.LayerNorm(dim, {eps = 1e-6}),
      nn.Linear(dim, 4 * dim),
      nn.GELU(),
      nn.Linear(4 * dim, dim),
      nn.Permute{1, 4, 2, 3}))
    self:param("layer_scale", lm.full({dim, 1, 1}, layer_scale))
    self:child("stochastic_depth", nn.StochasticDepth(p, "row"))
    self.dim = dim
  end

  function CNBlock:forward(x)
    return self.stochastic_depth(self.layer_scale * self.block(x)) + x
  end

  function CNBlock:extra_repr()
    return string.format("%d channels, stochastic depth %s", self.dim, tostring(self.stochastic_depth.p))
  end

  local KNOWN = {num_classes = true, classes = true, stochastic_depth_prob = true, layer_scale = true, stem = true,
    in_channels = true}

  local function positive_integer(v) return math.type(v) == "integer" and v >= 1 end

  -- {{channels, num_layers}, ...} checked; level as error's from the
  -- caller of the function that calls this one
  local function check_block_setting(stages, name, level)
    local ok = type(stages) == "table" and #stages > 0
    for i = 1, ok and #stages or 0 do
      local s = stages[i]
      ok = ok and type(s) == "table" and #s == 2 and positive_integer(s[1]) and positive_integer(s[2])
    end
    if not ok then
      error(name .. ": block_setting must be a non-empty list of {channels, num_layers} pairs of positive "
        .. "integers, got " .. checks.shown(stages), level + 1)
    end
  end

  -- the options, checked, with the constructor's default stochastic depth;
  -- errors at the constructor's caller (level 4 from here: this function,
  -- ConvNeXt:init, the class's construct, the caller)
  local function convnext_options(opts, name, known, default_p)
    opts = checks.opts(opts, name, known, nil, 5)
    local o = {classes = models._classes(opts, name, 5), in_channels = opts.in_channels or 3,
      p = opts.stochastic_depth_prob or default_p, layer_scale = opts.layer_scale or 1e-6,
      stem = opts.stem or "imagenet"}
    for what, v in pairs{num_classes = o.classes, in_channels = o.in_channels} do
      if not positive_integer(v) then
        error(string.format("%s: %s must be a positive integer, got %s", name, what, checks.shown(v)), 4)
      end
    end
    if type(o.p) ~= "number" or not (o.p >= 0 and o.p <= 1) then
      error(string.format("%s: stochastic_depth_prob must be a number in [0, 1], got %s", name, checks.shown(o.p)), 4)
    end
    if not checks.is_finite(o.layer_scale) then
      error(string.format("%s: layer_scale must be a finite number, got %s", name, checks.shown(o.layer_scale)), 4)
    end
    if o.stem ~= "imagenet" and o.stem ~= "cifar" then
      error(name .. ": stem must be 'imagenet' (a 4x4 stride-4 patchify convolution) or 'cifar' "
        .. "(2x2 stride 2, for 32x32 images), got " .. checks.shown(o.stem), 4)
    end
    if known.block_setting then check_block_setting(opts.block_setting, name, 4) end
    return o, opts.block_setting
  end

  local ConvNeXt = nn.Module:extend("models.ConvNeXt")

  -- stages: {{channels, num_layers}, ...}; known: the options the
  -- constructor takes; default_p: its stochastic depth probability
  function ConvNeXt:init(name, stages, opts, known, default_p)
    local o, given = convnext_options(opts, name, known, default_p)
    stages = stages or given
    self.arch, self.stem, self.num_classes = name:match("[^.]+$"), o.stem, o.classes

    local function layer_norm2d(c) return nn.LayerNorm2d(c, {eps = 1e-6}) end
    local first = stages[1][1]
    local patch = o.stem == "imagenet" and 4 or 2
    local features = nn.Sequential(nn.Sequential(nn.Conv2d(o.in_channels, first, patch, {stride = patch}),
      layer_norm2d(first)))
    local total = 0
    for _, s in ipairs(stages) do total = total + s[2] end
    local index = 0
    for i, s in ipairs(stages) do
      local channels, stage = s[1], nn.Sequential()
      for _ = 1, s[2] do
        -- rising linearly from 0 at the first block to p at the last (one
        -- block: 0, where torchvision divides by zero)
        stage:add(CNBlock(channels, o.layer_scale, total > 1 and o.p * index / (total - 1) or 0))
        index = index + 1
      end
      features:add(stage)
      local next_stage = stages[i + 1]
      if next_stage then
        features:add(nn.Sequential(layer_norm2d(channels), nn.Conv2d(channels, next_stage[1], 2, {stride = 2})))
      end
    end
    self:child("features", features)
    self:child("avgpool", nn.AdaptiveAvgPool2d(1))
    local last = stages[#stages][1]
    self:child("classifier", nn.Sequential(layer_norm2d(last), nn.Flatten(), nn.Linear(last, o.classes)))
    for _, m in ipairs(self:modules()) do
      local class = getmetatable(m)
      if class == nn.Conv2d or class == nn.Linear then trunc_normal_init(m) end
    end
  end

  --- net:block_names(): its stages (features.1, features.3, ...; the
  --- downsamplings between them are left out).
  function ConvNeXt:block_names()
    local names = {}
    for i = 1, #self.features - 1, 2 do names[#names + 1] = "features." .. i end
    return names
  end

  function ConvNeXt:forward(x)
    return self.classifier(self.avgpool(self.features(x)))
  end

  function ConvNeXt:extra_repr()
    return string.format("%s, %s stem, %d classes", self.arch, self.stem, self.num_classes)
  end

  -- torchvision's stages ({channels, blocks}; each stage after the first
  -- starts with a downsampling to its channels) and stochastic depth
  local CONFIGS = {
    convnext_tiny = {stochastic_depth_prob = 0.1, block_setting = {{96, 3}, {192, 3}, {384, 9}, {768, 3}}},
    convnext_small = {stochastic_depth_prob = 0.4, block_setting = {{96, 3}, {192, 3}, {384, 27}, {768, 3}}},
    convnext_base = {stochastic_depth_prob = 0.5, block_setting = {{128, 3}, {256, 3}, {512, 27}, {1024, 3}}},
    convnext_large = {stochastic_depth_prob = 0.5, block_setting = {{192, 3}, {384, 3}, {768, 27}, {1536, 3}}},
  }
  models._convnext_configs = CONFIGS -- (the spec checks them against torchvision's without building the models)
  for arch, config in pairs(CONFIGS) do
    local name = "lm.models." .. arch
    models[arch] = function(opts)
      return ConvNeXt(name, config.block_setting, opts, KNOWN, config.stochastic_depth_prob)
    end
  end

  local GENERAL = {block_setting = true}
  for k in pairs(KNOWN) do GENERAL[k] = true end

  --- torchvision's ConvNeXt class with its own stages: opts.block_setting
  --- {{channels, num_layers}, ...} is torchvision's block_setting
  --- [CNBlockConfig(c1, c2, n1), CNBlockConfig(c2, c3, n2), ...,
  --- CNBlockConfig(ck, None, nk)]; stochastic_depth_prob 0 by default (the
  --- class's); the other options as convnext_tiny's.
  models.convnext = function(opts) return ConvNeXt("lm.models.convnext", nil, opts, GENERAL, 0) end
end
