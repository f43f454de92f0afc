-- Batch transforms for training data (lm.data.transforms): each is a
-- function from a batch [N, C, H, W] to a batch. Random ones draw from the
-- global stream, which the loader seeds per batch from its own seed, the
-- epoch and the batch number, so an epoch's augmentation is the same on
-- every run and does not depend on other random draws.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

-- a whole number (an integer, or a float with an integer's value)
local whole = checks.is_whole

local T = {}

-- cpu_only: the transform's kernel is the CPU's (crops and flips)
local function check_batch(x, what, cpu_only)
  local tensor = getmetatable(x) == lm._tensor_metatable
  if not tensor or x:dim() ~= 4 then
    error(string.format("%s: expected a batch [N, C, H, W], got %s", what,
      tensor and "a tensor " .. x:shape_string() or "a " .. type(x)), 3)
  end
  if x:dtype() ~= "float32" then
    error(string.format("%s: expected a float32 batch, got %s (lm.data.to_float turns bytes into floats)", what,
      x:dtype()), 3)
  end
  if cpu_only and x:device() ~= "cpu" then
    error(string.format("%s: runs on the CPU, the batch is on %s (transform before moving it)", what, x:device()),
      3)
  end
end

local function pair(size, what)
  local h, w
  if type(size) == "number" then h, w = size, size
  elseif type(size) == "table" and #size == 2 then h, w = size[1], size[2]
  else error(what .. ": size must be a number or {h, w}", 3) end
  local hw = {h, w}
  for k = 1, 2 do
    local v = hw[k]
    if not whole(v) or v < 1 then
      error(string.format("lm.data.transforms.%s: size must be positive integers, got %s", what, checks.shown(v)), 3)
    end
  end
  return h, w
end

--- A random window of `size` (a number or {h, w}) from each image padded by
--- opts.padding zeros (default 0) on every side: the usual CIFAR-10
--- augmentation is random_crop(32, {padding = 4}).
function T.random_crop(size, opts)
  local oh, ow = pair(size, "random_crop")
  local pad = checks.options(opts, "lm.data.transforms.random_crop").padding or 0
  if not whole(pad) or pad < 0 then
    error("lm.data.transforms.random_crop: padding must be an integer >= 0, got " .. checks.shown(pad), 2)
  end
  return function(x)
    check_batch(x, "random_crop", true)
    local n, h, w = x:size(1), x:size(3), x:size(4)
    local span_h, span_w = h + 2 * pad - oh, w + 2 * pad - ow
    if span_h < 0 or span_w < 0 then
      error(string.format("random_crop: a %dx%d window does not fit %dx%d images padded by %d", oh, ow, h, w, pad), 2)
    end
    local r = lm.rand(n, 2):totable()
    local tops, lefts, flips = {}, {}, {}
    for i = 1, n do
      tops[i] = math.min(span_h, math.floor(r[i][1] * (span_h + 1)))
      lefts[i] = math.min(span_w, math.floor(r[i][2] * (span_w + 1)))
      flips[i] = false
    end
    return lm.image._crop_flip(x, oh, ow, tops, lefts, flips, pad)
  end
end

--- Mirrors each image left-right with probability p (default 0.5).
function T.horizontal_flip(p)
  p = p or 0.5
  if type(p) ~= "number" or not (p >= 0 and p <= 1) then
    error("lm.data.transforms.horizontal_flip: p must be a probability in [0, 1], got " .. checks.shown(p), 2)
  end
  return function(x)
    check_batch(x, "horizontal_flip", true)
    local n = x:size(1)
    local r = lm.rand(n):totable()
    local zeros, flips = {}, {}
    for i = 1, n do zeros[i], flips[i] = 0, r[i] < p end
    return lm.image._crop_flip(x, x:size(3), x:size(4), zeros, zeros, flips, 0)
  end
end

--- (x - mean) / std per channel: mean and std are numbers or one value per channel.
function T.normalize(mean, std)
  for _, arg in ipairs{{mean, "mean"}, {std, "std"}} do
    local v, ok = arg[1], type(arg[1]) == "number"
    if type(v) == "table" then
      ok = #v > 0
      for _, e in ipairs(v) do ok = ok and type(e) == "number" end
    end
    if not ok then
      error(string.format("lm.data.transforms.normalize: %s must be a number or a list of numbers (one a "
        .. "channel), got %s", arg[2], checks.shown(v)), 2)
    end
  end
  local m = type(mean) == "table" and lm.tensor(mean) or lm.tensor{mean}
  local s = type(std) == "table" and lm.tensor(std) or lm.tensor{std}
  if m:numel() ~= s:numel() then error("normalize: mean and std need as many values", 2) end
  for _, v in ipairs(type(std) == "table" and std or {std}) do
    if v <= 0 or v ~= v then -- a zero or negative std makes infinities or flips the images; NaN neither
      error("lm.data.transforms.normalize: std must be > 0 in every channel, got " .. tostring(v), 2)
    end
  end
  local c = m:numel()
  m, s = m:view(1, c, 1, 1), s:view(1, c, 1, 1)
  return function(x)
    check_batch(x, "normalize")
    if c > 1 and x:size(2) ~= c then
      error(string.format("normalize: %d channel means for images with %d channels", c, x:size(2)), 2)
    end
    if x:device() ~= m:device() then m, s = m:to(x:device()), s:to(x:device()) end
    return (x - m) / s
  end
end

--- The transforms of a list applied in order.
function T.compose(list)
  checks.table(list, "list", "lm.data.transforms.compose")
  for i, t in ipairs(list) do
    if type(t) ~= "function" then
      error("compose: entry " .. i .. " is a " .. type(t) .. ", expected a transform", 2)
    end
  end
  return function(x)
    for _, t in ipairs(list) do x = t(x) end
    return x
  end
end

--- The seed of batch i of an epoch of a loader seeded with `seed` (and of
--- shard `shard`, 0 for one process): the four numbers mixed (splitmix64's
--- finaliser), so no two batches of any epochs or shards share a seed.
function T.batch_seed(seed, epoch, i, shard)
  local args = {seed, epoch, i, shard or 0}
  for k = 1, 4 do
    local v = args[k]
    if not whole(v) then
      error(string.format("lm.data.transforms.batch_seed: %s must be an integer, got %s",
        ({"seed", "epoch", "i", "shard"})[k], checks.shown(v)), 2)
    end
  end
  local h = 0
  for _, v in ipairs{seed, epoch, i, shard or 0} do
    h = (h ~ v) * -7046029254386353131 -- 0x9E3779B97F4A7C15: wraps, as the mixing wants
    h = (h ~ (h >> 30)) * -4658895280553007687
    h = (h ~ (h >> 27)) * -7723592293110705685
    h = h ~ (h >> 31)
  end
  return h
end

--- Runs transform(x) with the global stream seeded by `seed`, restoring the
--- stream afterwards (the loaders' reproducible augmentation).
function T.apply_seeded(transform, x, seed)
  checks.callable(transform, "transform", "lm.data.transforms.apply_seeded")
  if not whole(seed) then
    error("lm.data.transforms.apply_seeded: seed must be an integer, got " .. checks.shown(seed), 2)
  end
  local state, offset = lm.rng_state()
  lm.manual_seed(seed)
  local ok, y = pcall(transform, x)
  lm.set_rng_state(state, offset)
  if not ok then error(y, 0) end
  return y
end

return T
