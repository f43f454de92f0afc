-- RegNetX and RegNetY (Radosavovic et al. 2020) with torchvision's
-- architecture, stage widths, initialisation and state-dict names (stem.0,
-- trunk_output.block1.block1-0.proj.0, ....f.a.0, ....f.se.fc1, ..., fc), so
-- a torchvision checkpoint loads strictly and Lumen's file loads into
-- torchvision.models.regnet_y_400mf (and the others) with strict=True.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(models)
  local nn = lm.nn

  -- torchvision's init of every RegNet convolution: weight N(0, 2 / fan
  -- out), fan out = k * k * out channels (groups not counted); biases (the
  -- squeeze-and-excitation's) keep torch's default U(-1/sqrt(fan in), ...)
  local function conv(cin, cout, k, stride, groups, bias)
    local c = nn.Conv2d(cin, cout, k, {stride = stride or 1, padding = (k - 1) // 2, groups = groups or 1,
      bias = bias or false, init = "pytorch"})
    lm.no_grad(function() c.weight:normal_(0, math.sqrt(2 / (k * k * cout))) end)
    return c
  end

  -- torchvision's Conv2dNormActivation: conv, batch norm, then a ReLU when
  -- `relu`: children 0, 1 [, 2]
  local function conv_bn(cin, cout, k, stride, groups, relu)
    local seq = nn.Sequential(conv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout))
    if relu then seq:add(nn.ReLU()) end
    return seq
  end

  -- Python's round(): halves to even
  local function round_half_even(v)
    local r = math.floor(v + 0.5)
    if r - v == 0.5 and r % 2 == 1 then r = r - 1 end
    return r
  end

  local Block = nn.Module:extend("models.ResBottleneckBlock")
  models.ResBottleneckBlock = Block

  --- RegNet's block (torchvision's ResBottleneckBlock): f = a 1x1
  --- convolution to w_b = round(out * bottleneck_multiplier) channels, a
  --- 3x3 convolution with `stride` in w_b / group_width groups, squeeze and
  --- excitation to round(se_ratio * in) channels (when se_ratio), a linear
  --- 1x1 projection to `out` (batch norms after each, ReLU after the first
  --- two); relu(proj(x) + f(x)), proj a 1x1 convolution and batch norm where
  --- the shape changes, else relu(x + f(x)). Children `proj` (or none), `f`
  --- (a Sequential with children a, b, se, c) and `activation`.
  function Block:init(width_in, width_out, stride, group_width, bottleneck_multiplier, se_ratio)
    local name = "lm.models.ResBottleneckBlock"
    for what, v in pairs{width_in = width_in, width_out = width_out, stride = stride, group_width = group_width} do
      checks.size(v, what, name)
    end
    if not (checks.is_finite(bottleneck_multiplier) and bottleneck_multiplier > 0) then
      error(name .. ": bottleneck_multiplier must be a positive number, got " .. checks.shown(bottleneck_multiplier), 3)
    end
    if se_ratio ~= nil and not (checks.is_finite(se_ratio) and se_ratio >= 0) then
      error(name .. ": se_ratio must be a number >= 0 (or nil), got " .. checks.shown(se_ratio), 3)
    end
    local bottleneck = round_half_even(width_out * bottleneck_multiplier)
    if bottleneck < group_width or bottleneck % group_width ~= 0 then
      error(string.format("%s: the bottleneck width (%s) must be a multiple of group_width (%d)", name,
        checks.shown(bottleneck), group_width), 3)
    end
    if width_in ~= width_out or stride ~= 1 then
      self:child("proj", conv_bn(width_in, width_out, 1, stride, 1, false))
    end
    local w_b = math.tointeger(round_half_even(width_out * bottleneck_multiplier))
    local f = nn.Sequential()
    f:child("a", conv_bn(width_in, w_b, 1, 1, 1, true))
    f:child("b", conv_bn(w_b, w_b, 3, stride, w_b // group_width, true))
    if se_ratio and se_ratio > 0 then
      local se = models.SqueezeExcitation(w_b, math.tointeger(round_half_even(se_ratio * width_in)), nn.ReLU,
        nn.Sigmoid)
      -- its weights are drawn as RegNet's; its biases keep torch's default
      -- (MobileNetV3 zeroes them)
      lm.no_grad(function()
        for _, c in ipairs{se.fc1, se.fc2} do c.bias:uniform_(-1 / math.sqrt(c.inputs), 1 / math.sqrt(c.inputs)) end
      end)
      f:child("se", se)
    end
    f:child("c", conv_bn(w_b, width_out, 1, 1, 1, false))
    self:child("f", f)
    self:child("activation", nn.ReLU())
    self.width_in, self.width_out, self.stride = width_in, width_out, stride
  end

  function Block:forward(x)
    local proj = rawget(self, "proj")
    return self.activation((proj and proj(x) or x) + self.f(x))
  end

  function Block:extra_repr()
    return string.format("%d -> %d, stride %d%s", self.width_in, self.width_out, self.stride,
      rawget(self, "proj") and ", projection" or "")
  end

  -- a float32 value as torch keeps it (torch computes the block widths on
  -- float32 tensors)
  local function f32(v) return (string.unpack("<f", string.pack("<f", v))) end

  -- torchvision's _make_divisible(v, divisor)
  local function make_divisible(v, divisor)
    local new = math.max(divisor, math.floor(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v then new = new + divisor end
    return math.tointeger(new)
  end

  --- torchvision's BlockParams.from_init_params: the stages ({depth, width,
  --- group_width} each; every stage strides 2) of a RegNet with `depth`
  --- blocks of widths w_0 + w_a * i quantised in log space to powers of w_m
  --- (times w_0), rounded to multiples of 8, and adjusted so the bottleneck
  --- width is a multiple of the group width. Errors name `name`; level as
  --- error's, counted from the caller of this function.
  local function stages_of(p, name, level)
    local depth, w_0, w_a, w_m = p.depth, p.w_0, p.w_a, p.w_m
    local quant = 8
    -- the continuous widths, their capacities and the quantised widths, in
    -- float32 as torch computes them (halves round to even)
    local widths = {}
    for i = 0, depth - 1 do
      local cont = f32(f32(i * f32(w_a)) + w_0)
      local capacity = round_half_even(f32(f32(math.log(f32(cont / w_0))) / f32(math.log(w_m))))
      local width = f32(w_0 * f32(f32(w_m) ^ capacity))
      widths[#widths + 1] = math.tointeger(round_half_even(f32(width / quant)) * quant)
    end
    -- one stage per run of equal widths
    local stages = {}
    for _, w in ipairs(widths) do
      local last = stages[#stages]
      if last and last.width == w then last.depth = last.depth + 1 else stages[#stages + 1] = {depth = 1, width = w} end
    end
    local b = p.bottleneck_multiplier
    for i, s in ipairs(stages) do
      local w_bot = math.floor(s.width * b)
      if w_bot < 1 then
        error(string.format("%s: stage %d's bottleneck width (%d x %s) is below 1", name, i, s.width, tostring(b)),
          level + 1)
      end
      s.group_width = math.min(p.group_width, w_bot)
      s.width = math.tointeger(math.floor(make_divisible(w_bot, s.group_width) / b))
    end
    return stages
  end

  local RegNet = nn.Module:extend("models.RegNet")

  local KNOWN = {num_classes = true, classes = true, stem = true, in_channels = true}
  local GENERAL = {depth = true, w_0 = true, w_a = true, w_m = true, group_width = true, bottleneck_multiplier = true,
    se_ratio = true, stem_width = true}
  for k in pairs(KNOWN) do GENERAL[k] = true end

  local function positive_integer(v) return math.type(v) == "integer" and v >= 1 end

  -- the options, checked (errors at the constructor's caller: level 4 from
  -- here, as in models_convnext.lua); `preset`: the fixed parameters of a
  -- named RegNet, else they are options
  local function regnet_options(opts, name, preset)
    opts = checks.opts(opts, name, preset and KNOWN or GENERAL, nil, 5)
    local function fail(msg) error(name .. ": " .. msg, 5) end
    local o = {classes = models._classes(opts, name, 5), in_channels = opts.in_channels or 3,
      stem = opts.stem or "imagenet", stem_width = opts.stem_width or 32}
    for what, v in pairs{num_classes = o.classes, in_channels = o.in_channels, stem_width = o.stem_width} do
      if not positive_integer(v) then
        fail(string.format("%s must be a positive integer, got %s", what, checks.shown(v)))
      end
    end
    if o.stem ~= "imagenet" and o.stem ~= "cifar" then
      fail("stem must be 'imagenet' (a stride-2 first convolution) or 'cifar' (stride 1, for 32x32 images), got "
        .. checks.shown(o.stem))
    end
    local p = preset or {depth = opts.depth, w_0 = opts.w_0, w_a = opts.w_a, w_m = opts.w_m,
      group_width = opts.group_width, bottleneck_multiplier = opts.bottleneck_multiplier or 1.0,
      se_ratio = opts.se_ratio}
    if not preset then
      for _, what in ipairs{"depth", "w_0", "group_width"} do
        if not positive_integer(p[what]) then
          fail(string.format("%s must be a positive integer, got %s", what, checks.shown(p[what])))
        end
      end
      if p.w_0 % 8 ~= 0 then fail("w_0 must be a multiple of 8, got " .. p.w_0) end
      if not (checks.is_finite(p.w_a) and p.w_a >= 0) then
        fail("w_a must be a finite number >= 0, got " .. checks.shown(p.w_a))
      end
      if not (checks.is_finite(p.w_m) and p.w_m > 1) then
        fail("w_m must be a finite number > 1, got " .. checks.shown(p.w_m))
      end
      if not (checks.is_finite(p.bottleneck_multiplier) and p.bottleneck_multiplier > 0) then
        fail("bottleneck_multiplier must be a positive number, got " .. checks.shown(p.bottleneck_multiplier))
      end
      if p.se_ratio ~= nil and not (checks.is_finite(p.se_ratio) and p.se_ratio >= 0) then
        fail("se_ratio must be a number >= 0 (or nil: no squeeze and excitation), got " .. checks.shown(p.se_ratio))
      end
    end
    o.params = p
    o.stages = stages_of(p, name, 4)
    return o
  end

  function RegNet:init(name, preset, opts)
    local o = regnet_options(opts, name, preset)
    self.arch, self.stem_kind, self.num_classes = name:match("[^.]+$"), o.stem, o.classes
    self.stages = o.stages
    self:child("stem", conv_bn(o.in_channels, o.stem_width, 3, o.stem == "imagenet" and 2 or 1, 1, true))
    local trunk, width = nn.Sequential(), o.stem_width
    local p = o.params
    for i, s in ipairs(o.stages) do
      local stage = nn.Sequential()
      for j = 1, s.depth do
        stage:child(string.format("block%d-%d", i, j - 1), Block(j == 1 and width or s.width, s.width,
          j == 1 and 2 or 1, s.group_width, p.bottleneck_multiplier, p.se_ratio))
      end
      trunk:child("block" .. i, stage)
      width = s.width
    end
    self:child("trunk_output", trunk)
    self:child("avgpool", nn.AdaptiveAvgPool2d(1))
    self:child("fc", nn.Linear(width, o.classes))
    -- torchvision: the Linear N(0, 0.01), bias 0 (batch norms 1 and 0, as made)
    lm.no_grad(function()
      self.fc.weight:normal_(0, 0.01)
      self.fc.bias:zero_()
    end)
  end

  --- net:block_names(): its stages (trunk_output.block1, ...).
  function RegNet:block_names() return models._numbered_children(self.trunk_output, "block", "trunk_output") end

  function RegNet:forward(x)
    x = self.avgpool(self.trunk_output(self.stem(x)))
    return self.fc(x:flatten(2))
  end

  function RegNet:extra_repr()
    return string.format("%s, %s stem, %d classes", self.arch, self.stem_kind, self.num_classes)
  end

  -- torchvision's parameters of each named RegNet (from_init_params')
  local PRESETS = {
    regnet_y_400mf = {depth = 16, w_0 = 48, w_a = 27.89, w_m = 2.09, group_width = 8, se_ratio = 0.25},
    regnet_y_800mf = {depth = 14, w_0 = 56, w_a = 38.84, w_m = 2.4, group_width = 16, se_ratio = 0.25},
    regnet_y_1_6gf = {depth = 27, w_0 = 48, w_a = 20.71, w_m = 2.65, group_width = 24, se_ratio = 0.25},
    regnet_y_3_2gf = {depth = 21, w_0 = 80, w_a = 42.63, w_m = 2.66, group_width = 24, se_ratio = 0.25},
    regnet_y_8gf = {depth = 17, w_0 = 192, w_a = 76.82, w_m = 2.19, group_width = 56, se_ratio = 0.25},
    regnet_y_16gf = {depth = 18, w_0 = 200, w_a = 106.23, w_m = 2.48, group_width = 112, se_ratio = 0.25},
    regnet_y_32gf = {depth = 20, w_0 = 232, w_a = 115.89, w_m = 2.53, group_width = 232, se_ratio = 0.25},
    regnet_y_128gf = {depth = 27, w_0 = 456, w_a = 160.83, w_m = 2.52, group_width = 264, se_ratio = 0.25},
    regnet_x_400mf = {depth = 22, w_0 = 24, w_a = 24.48, w_m = 2.54, group_width = 16},
    regnet_x_800mf = {depth = 16, w_0 = 56, w_a = 35.73, w_m = 2.28, group_width = 16},
    regnet_x_1_6gf = {depth = 18, w_0 = 80, w_a = 34.01, w_m = 2.25, group_width = 24},
    regnet_x_3_2gf = {depth = 25, w_0 = 88, w_a = 26.31, w_m = 2.25, group_width = 48},
    regnet_x_8gf = {depth = 23, w_0 = 80, w_a = 49.56, w_m = 2.88, group_width = 120},
    regnet_x_16gf = {depth = 22, w_0 = 216, w_a = 55.59, w_m = 2.1, group_width = 128},
    regnet_x_32gf = {depth = 23, w_0 = 320, w_a = 69.86, w_m = 2.0, group_width = 168},
  }
  models._regnet_presets = PRESETS
  models._regnet_stages = function(p) return stages_of(p, "lm.models.regnet", 2) end
  for arch, preset in pairs(PRESETS) do
    preset.bottleneck_multiplier = 1.0
    local name = "lm.models." .. arch
    models[arch] = function(opts) return RegNet(name, preset, opts) end
  end

  --- torchvision's RegNet class on BlockParams.from_init_params(depth, w_0,
  --- w_a, w_m, group_width, bottleneck_multiplier = 1, se_ratio = nil) with
  --- stem_width (32); other options as regnet_y_400mf's.
  models.regnet = function(opts) return RegNet("lm.models.regnet", nil, opts) end
end
