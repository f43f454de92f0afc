-- Data readers on small generated files (the real data sets are optional),
-- malformed files, splits and loaders.
local lm = require 'lumen'

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

local function write(name, bytes)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(bytes)
  f:close()
  return dir .. "/" .. name
end

local function be32(n) return string.pack(">I4", n) end

-- an IDX image file of n images of r x c bytes, pixel value (i + k) % 256
local function idx_images(n, r, c)
  local px = {}
  for i = 0, n * r * c - 1 do px[#px + 1] = string.char(i % 256) end
  return "\0\0\8\3" .. be32(n) .. be32(r) .. be32(c) .. table.concat(px)
end

local function idx_labels(labels)
  local b = {}
  for i, v in ipairs(labels) do b[i] = string.char(v) end
  return "\0\0\8\1" .. be32(#labels) .. table.concat(b)
end

-- An MNIST folder dir/<sub>mnist: the train images (an IDX file's bytes)
-- and labels given, two 28x28 test images labelled 1 and 2.
local function mnist_folder(sub, train_images, train_labels)
  os.execute("mkdir -p " .. dir .. "/" .. sub .. "mnist")
  write(sub .. "mnist/train-images-idx3-ubyte", train_images)
  write(sub .. "mnist/train-labels-idx1-ubyte", idx_labels(train_labels))
  write(sub .. "mnist/t10k-images-idx3-ubyte", idx_images(2, 28, 28))
  write(sub .. "mnist/t10k-labels-idx1-ubyte", idx_labels{1, 2})
end

local function cifar_records(labels)
  local out = {}
  for _, l in ipairs(labels) do out[#out + 1] = string.char(l) .. string.rep(string.char(l * 20), 3072) end
  return table.concat(out)
end

describe("IDX reader", function()
  it("reads images scaled to [0, 1] and labels as 1-based classes, gzipped or raw", function()
    mnist_folder("", idx_images(3, 28, 28), {0, 9, 4})
    os.execute("gzip " .. dir .. "/mnist/train-images-idx3-ubyte")
    local d = lm.data.mnist{dir = dir}
    same(d.train.x:shape(), {3, 784})
    same(d.train.y:totable(), {1, 10, 5})
    near(d.train.x[1][2], 1 / 255, 1e-7)
    near(d.train.x[1][256], 255 / 255, 1e-7)
    same(d.test.y:totable(), {2, 3})
    eq(d.classes[1], "0")
  end)

  it("checks a gzip file to its end: a cut trailer and bytes after the data are errors", function()
    -- zlib's gzread returned every byte of both and no error
    local src = write("gz_labels", idx_labels{1, 2, 3})
    os.execute("gzip -kf " .. src)
    local f = assert(io.open(src .. ".gz", "rb"))
    local gz = f:read("a")
    f:close()
    same(lm._idx_load(src .. ".gz", "int32"):totable(), {1, 2, 3})
    raises(function() lm._idx_load(write("gz_cut", gz:sub(1, #gz - 3)), "int32") end,
      "gz_cut': the compressed file ends early (truncated)")
    raises(function() lm._idx_load(write("gz_junk", gz .. "junk"), "int32") end,
      "gz_junk' has bytes after its compressed data that are not another gzip member")
    raises(function() lm._cifar_load(write("junk.bin.gz", gz .. "junk")) end,
      "junk.bin.gz' has bytes after its compressed data that are not another gzip member")
    local bad = gz:sub(1, #gz - 8) .. string.char((gz:byte(#gz - 7) + 1) % 256) .. gz:sub(#gz - 6)
    raises(function() lm._idx_load(write("gz_crc", bad), "int32") end,
      "gz_crc': the compressed data are corrupt (incorrect data check)")
    -- as gzip and Python read them: zero padding after the data, and two
    -- members (cat a.gz b.gz) whose data follow each other
    same(lm._idx_load(write("gz_padded", gz .. "\0\0\0"), "int32"):totable(), {1, 2, 3})
    local whole = idx_labels{1, 2, 3}
    local a, b = write("part_a", whole:sub(1, 6)), write("part_b", whole:sub(7))
    os.execute("gzip -kf " .. a .. " " .. b)
    local fa, fb = assert(io.open(a .. ".gz", "rb")), assert(io.open(b .. ".gz", "rb"))
    local two = fa:read("a") .. fb:read("a")
    fa:close()
    fb:close()
    same(lm._idx_load(write("gz_two", two), "int32"):totable(), {1, 2, 3})
  end)

  it("refuses MNIST images that are not 28x28, naming the file and its dimensions", function()
    -- they loaded as [N, 756] before; the generic IDX reader still takes any shape
    mnist_folder("odd/", idx_images(3, 28, 27), {0, 9, 4})
    raises(function() lm.data.mnist{dir = dir .. "/odd"} end, "'" .. dir .. "/odd/mnist/train-images-idx3-ubyte' holds "
      .. "3x28x27 images (N x rows x columns); MNIST and Fashion-MNIST images are 28x28")
    same(lm._idx_load(dir .. "/odd/mnist/train-images-idx3-ubyte", "uint8"):shape(), {3, 28, 27})
  end)

  it("names the file and the problem for malformed files", function()
    raises(function() lm._idx_load(write("bad_magic", "\1\2\8\1" .. be32(1) .. "\0"), "int32") end, "not an IDX file")
    raises(function() lm._idx_load(write("bad_type", "\0\0\13\1" .. be32(1) .. "\0\0\0\0"), "int32") end,
      "type 0x0d is not supported")
    raises(function() lm._idx_load(write("truncated", "\0\0\8\1" .. be32(10) .. "abc"), "int32") end,
      "is truncated: its header describes 10 bytes of data, the file can hold at most 3")
    -- found by fuzz/fuzz_idx.c: a header claiming 3 GB in a 31-byte file was
    -- allocated before the short read; now it is refused first
    raises(function() lm._idx_load(write("huge_claim", "\0\0\8\2" .. be32(3) .. be32(0x3f000000) ..
      string.rep("\7", 19)), "int32") end, "describes 3170893824 bytes of data, the file can hold at most 19")
    -- found by fuzz/fuzz_idx.c: an empty dimension followed by huge ones
    -- overflowed the strides; such shapes are refused
    raises(function() lm._idx_load(write("zero_then_huge", "\0\0\8\3" .. be32(0) .. be32(0x7fffffff) ..
      be32(0x7fffffff)), "int32") end, "shape is too large")
    -- dimensions whose product wraps past 2^64 (131072 x 131072 x 2^30 = 2^64):
    -- refused before the product, naming the file
    raises(function() lm._idx_load(write("wrapping", "\0\0\8\3" .. be32(131072) .. be32(131072) ..
      be32(1 << 30)), "int32") end, "wrapping': IDX dimensions describe over 16 GiB of data")
    -- the same claim inside a gzip file is bounded by deflate's ratio
    local gz = write("huge_claim_gz_src", "\0\0\8\2" .. be32(3) .. be32(0x3f000000) .. string.rep("\7", 19))
    os.execute("gzip -kf " .. gz)
    raises(function() lm._idx_load(gz .. ".gz", "int32") end, "the file can hold at most")
    raises(function() lm._idx_load(write("short_header", "\0\0\8"), "int32") end, "truncated")
    raises(function() lm._idx_load(write("long", "\0\0\8\1" .. be32(2) .. "\1\2\3"), "int32") end,
      "more data than its header")
    raises(function() lm._idx_load(write("label_range", idx_labels{1, 12}), "int32", 1, 9) end,
      "value 12 at position 2 is out of range")
    raises(function() lm._idx_load(dir .. "/missing", "int32") end, "cannot open")
  end)

  it("refuses a shuffling loader with no whole batch, and labels that are not class numbers", function()
    raises(function() lm.data.loader({x = lm.zeros(100, 2), y = lm.ones(100):int()}, {batch_size = 128}) end,
      "loader: 100 samples make no whole batch of 128")
    local l = lm.data.loader({x = lm.zeros(100, 2), y = lm.ones(100):int()}, {batch_size = 128, drop_last = false})
    eq(#l, 1, "without drop_last the partial batch is the epoch")
    raises(function() lm.data.one_hot(lm.tensor{1.5, 2}, 3) end, "one_hot: labels must be int32 (or uint8)")
    raises(function() lm.data.one_hot(lm.tensor({0, 2}, "int32"), 3) end, "one_hot: label 0 out of range for 3 classes")
  end)

  it("refuses an image and label count mismatch", function()
    mnist_folder("mismatch/", idx_images(3, 28, 28), {0, 1})
    raises(function() lm.data.mnist{dir = dir .. "/mismatch"} end, "has 3 images but")
    write("mismatch/mnist/train-images-idx3-ubyte", idx_images(0, 28, 28))
    write("mismatch/mnist/train-labels-idx1-ubyte", idx_labels{})
    raises(function() lm.data.mnist{dir = dir .. "/mismatch"} end,
      "'" .. dir .. "/mismatch/mnist/train-images-idx3-ubyte' holds no images")
  end)

  it("lists where it looked when the data is missing", function()
    local roots = lm.data.default_roots
    lm.data.default_roots = {dir .. "/also-nowhere"} -- the machine's own data folders are not part of the test
    local saved_env = os.getenv("LUMEN_DATA")
    local err = raises(function() lm.data.mnist{kind = "fashion"} end, "Fashion-MNIST not found")
    truthy(err:find("also-nowhere", 1, true), err)
    truthy(err:find("dataset-fashion-mnist", 1, true), err)
    -- a folder the caller names is the only place searched
    err = raises(function() lm.data.mnist{dir = dir .. "/nowhere", kind = "fashion"} end, "Fashion-MNIST not found")
    lm.data.default_roots = roots
    truthy(err:find(dir .. "/nowhere", 1, true), err)
    truthy(not err:find("also-nowhere", 1, true), "only the named folder: " .. err)
    truthy(saved_env == nil or err:find(saved_env, 1, true) == nil, "not $LUMEN_DATA either")
    -- a named folder that does not exist is reported as such
    truthy(err:find("Fashion-MNIST not found: the folder '" .. dir .. "/nowhere' does not exist", 1, true), err)
    -- one that exists but lacks the files lists where it looked and how to get them
    err = raises(function() lm.data.mnist{dir = dir, kind = "fashion"} end, "Fashion-MNIST not found. Looked in: ")
    truthy(err:find("dataset-fashion-mnist", 1, true), err)
  end)
end)

describe("CIFAR-10 reader", function()
  it("reads records as [N, 3, 32, 32] images and 1-based labels", function()
    local x, y = lm._cifar_load(write("batch.bin", cifar_records{3, 0, 9}))
    same(x:shape(), {3, 3, 32, 32})
    same(y:totable(), {4, 1, 10})
    near(x[1][2][5][7], 60 / 255, 1e-7)
    os.execute("gzip -k " .. dir .. "/batch.bin")
    local xz = lm._cifar_load(dir .. "/batch.bin.gz")
    same(xz:shape(), {3, 3, 32, 32})
    -- the gzip stream without its trailer: every record inflates, but the file is cut
    local f = assert(io.open(dir .. "/batch.bin.gz", "rb"))
    local gz = f:read("a")
    f:close()
    raises(function() lm._cifar_load(write("cut.bin.gz", gz:sub(1, #gz - 8))) end,
      "cut.bin.gz': the compressed file ends early (truncated)")
  end)

  it("names the file and the problem for malformed batches", function()
    raises(function() lm._cifar_load(write("partial.bin", cifar_records{1}:sub(1, 3000))) end,
      "not a whole number of CIFAR-10 records")
    raises(function() lm._cifar_load(write("badlabel.bin", cifar_records{1, 2} .. "\12" .. string.rep("\0", 3072))) end,
      "record 3 has label 12")
    raises(function() lm._cifar_load(write("empty.bin", "")) end, "0 bytes")
  end)

  it("loads a folder with the first-1000 test batch and says so", function()
    os.execute("mkdir -p " .. dir .. "/cifar10")
    for i = 1, 5 do write("cifar10/data_batch_" .. i .. ".bin", cifar_records{i, i + 1}) end
    write("cifar10/test_batch_first1000.bin", cifar_records{0})
    write("cifar10/batches.meta.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n")
    local d = lm.data.cifar10{dir = dir}
    same(d.train.x:shape(), {10, 3, 32, 32})
    same(d.train.y:narrow(1, 1, 4):totable(), {2, 3, 3, 4})
    truthy(d.test_note:find("first 1,000", 1, true), d.test_note)
    eq(d.classes[3], "c")
    -- a folder missing one training batch is not loaded as the whole set
    for _, gone in ipairs{3, 1} do
      os.rename(dir .. "/cifar10/data_batch_" .. gone .. ".bin", dir .. "/cifar10/aside.bin")
      raises(function() lm.data.cifar10{dir = dir} end,
        "Incomplete: " .. dir .. "/cifar10 lacks data_batch_" .. gone .. ".bin.")
      os.rename(dir .. "/cifar10/aside.bin", dir .. "/cifar10/data_batch_" .. gone .. ".bin")
    end
    same(lm.data.cifar10{dir = dir}.train.x:shape(), {10, 3, 32, 32})
    -- a folder without a test batch trains: its test set is nil, as api.md says
    os.rename(dir .. "/cifar10/test_batch_first1000.bin", dir .. "/cifar10/aside.bin")
    local no_test = lm.data.cifar10{dir = dir}
    eq(no_test.test, nil)
    eq(no_test.test_note, nil)
    os.rename(dir .. "/cifar10/aside.bin", dir .. "/cifar10/test_batch_first1000.bin")
  end)
end)

describe("splits and loaders", function()
  local x = lm.arange(1, 100):view(100, 1)
  local y = lm.arange(1, 100, 'int32')
  local set = {x = x, y = y}

  it("splits reproducibly without touching the global stream", function()
    lm.manual_seed(5)
    local before = {lm.rng_state()}
    local tr, va = lm.data.split(set, {fraction = 0.2, seed = 3})
    same({lm.rng_state()}, before)
    eq(tr.x:size(1), 80)
    eq(va.x:size(1), 20)
    local tr2 = lm.data.split(set, {fraction = 0.2, seed = 3})
    same(tr2.y:totable(), tr.y:totable())
    -- x and y stay paired, and every sample lands in exactly one part
    same(tr.x:view(-1):totable(), tr.y:float():totable())
    eq(tr.y:sum():item() + va.y:sum():item(), 5050)
  end)

  it("takes the first and the last samples as views, pairs kept", function()
    local first, last = lm.data.head(set, 3), lm.data.tail(set, 4)
    same(first.y:totable(), {1, 2, 3})
    same(last.y:totable(), {97, 98, 99, 100})
    same(last.x:view(-1):totable(), {97, 98, 99, 100})
    eq(lm.data.tail(set, 500).x:size(1), 100)
    last.x[1]:fill_(-1) -- a view: the set sees the write
    eq(set.x[97]:item(), -1)
    set.x[97]:fill_(97)
  end)

  it("refuses a set that is not {x, y} with a message that says what a set is", function()
    raises(function() lm.data.loader({x}) end, "the set must be {x = inputs [N, ...], y = labels [N]}")
    raises(function() lm.data.loader({x = x}) end, "got no tensor y")
    raises(function() lm.data.loader({x = x, y = {1, 2}}) end, "got no tensor y")
    raises(function() lm.data.loader(x) end, "got userdata")
    raises(function() lm.data.loader({x = x, y = y:narrow(1, 1, 99)}) end, "the set has 100 inputs but 99 labels")
    for _, b in ipairs{0, -1, 2.5, 3.0, "8"} do
      raises(function() lm.data.loader(set, {batch_size = b}) end, "loader: batch_size must be an integer >= 1, got")
    end
    raises(function() lm.data.loader({x = y:view(100, 1), y = y}) end,
      "loader: inputs must be float32 or uint8 (images as bytes), got int32")
    raises(function() lm.data.loader(set, {normalize = {{0.5, 0.5, 0.5}, {0.2, 0.2, 0.2}}}) end,
      "loader: normalize must be {mean, std} numbers with std > 0 (per channel: a transform")
    raises(function() lm.data.loader(set, {normalize = {0.5, 0}}) end, "normalize must be {mean, std} numbers")
  end)

  it("seeds each batch's augmentation apart across batches, epochs and shards", function()
    local T = require 'lumen.transforms'
    local seen = {}
    for _, key in ipairs{{1, 1, 65538, 0}, {1, 2, 1, 0}, {1, 1, 1, 0}, {1, 1, 1, 1}, {2, 1, 1, 0}, {1, 1, 2, 0}} do
      local s = T.batch_seed(table.unpack(key))
      eq(seen[s], nil, table.concat(key, ","))
      seen[s] = true
    end
    eq(T.batch_seed(1, 1, 1, 0), T.batch_seed(1, 1, 1), "shard 0 is one process")
    -- two shards of one global batch draw different augmentations
    local noisy = function(xb) return xb + lm.rand(xb:shape()) end
    local rows = {}
    for r = 0, 1 do
      local loader = lm.data.loader(set, {batch_size = 4, shuffle = false, transform = noisy,
        shard = {index = r, count = 2}})
      local xb = loader:epoch_iter()()
      rows[r] = (xb - x:narrow(1, 4 * r + 1, 4)):totable() -- the noise drawn
    end
    truthy(math.abs(rows[0][1][1] - rows[1][1][1]) > 1e-6, "shard 0 and shard 1 draw apart")
  end)

  it("drops a last global batch with fewer rows than shards, so that no shard gets none", function()
    -- 7 samples, 3 shards of batch 2: one global batch of 6, and 1 row left for 3 shards
    local small = {x = lm.arange(1, 7):view(7, 1), y = lm.arange(1, 7, 'int32')}
    local seen = 0
    for r = 0, 2 do
      local loader = lm.data.loader(small, {batch_size = 2, shuffle = false, drop_last = false,
        shard = {index = r, count = 3}})
      eq(#loader, 1, "shard " .. r)
      for xb in loader:epoch_iter() do
        truthy(xb:size(1) > 0, "shard " .. r .. " gets rows")
        seen = seen + xb:size(1)
      end
    end
    eq(seen, 6)
    -- 8 samples: the last global batch of 2 rows still has fewer than 3: dropped; 9: 3 rows, one each
    for n, want in pairs{[8] = 1, [9] = 2} do
      local set_n = {x = lm.arange(1, n):view(n, 1), y = lm.arange(1, n, 'int32')}
      eq(#lm.data.loader(set_n, {batch_size = 2, shuffle = false, drop_last = false, shard = {index = 0, count = 3}}),
        want, n .. " samples")
    end
  end)

  it("shuffles every epoch with drop_last and reused buffers", function()
    local loader = lm.data.loader(set, {batch_size = 32, seed = 1})
    eq(#loader, 3)
    local seen, buffers = {}, {}
    for xb, yb in loader:epoch_iter() do
      buffers[xb] = true
      for _, v in ipairs(yb:totable()) do seen[#seen + 1] = v end
    end
    eq(#seen, 96)
    local first_epoch = table.concat(seen, ",")
    local count = 0
    for _ in pairs(buffers) do count = count + 1 end
    eq(count, 1, "one batch buffer for the whole epoch")
    seen = {}
    for _, yb in loader:epoch_iter() do for _, v in ipairs(yb:totable()) do seen[#seen + 1] = v end end
    truthy(table.concat(seen, ",") ~= first_epoch, "a new order each epoch")
    local ordered = lm.data.loader(set, {batch_size = 32, shuffle = false})
    eq(#ordered, 4)
    local last
    for _, yb in ordered:epoch_iter() do last = yb end
    same(last:totable(), {97, 98, 99, 100})
  end)

  it("adds noise with a fixed or a per-batch random sigma", function()
    local zeros = {x = lm.zeros(2000, 10), y = lm.ones(2000, 'int32')}
    lm.manual_seed(1)
    local fixed = lm.data.loader(zeros, {batch_size = 1000, noise = {sigma = 0.3}})
    local it = fixed:epoch_iter()
    local xb = it()
    near(xb:std():item(), 0.3, 0.01)
    local random = lm.data.loader(zeros, {batch_size = 1000, noise = {sigma_max = 1}, clip = {0, 1}})
    local stds = {}
    for b in random:epoch_iter() do
      stds[#stds + 1] = b:std():item()
      truthy(b:min():item() >= 0 and b:max():item() <= 1, "clipped")
    end
    truthy(stds[1] ~= stds[2], "sigma differs between batches")
  end)

  it("clips the inputs with or without noise, and refuses a range upside down", function()
    local two = {x = lm.tensor{{-2, 0.5}, {3, 0.25}}, y = lm.ones(2, 'int32')}
    local xb = lm.data.loader(two, {batch_size = 2, shuffle = false, clip = {0, 1}}):epoch_iter()()
    same(xb:totable(), {{0, 0.5}, {1, 0.25}})
    raises(function() lm.data.loader(two, {clip = {1, 0}}) end,
      "lm.data.loader: clip must be {lo, hi} with lo <= hi, got {1, 0}")
    raises(function() lm.data.loader(two, {drop_last = "no"}) end,
      'lm.data.loader: drop_last must be true or false, got "no"')
  end)

  it("one-hot encodes 1-based labels", function()
    same(lm.data.one_hot(lm.tensor({2, 1}, 'int32'), 3):totable(), {{0, 1, 0}, {1, 0, 0}})
    eq(lm.data.one_hot(lm.zeros(0, 'int32'), 4):shape_string(), "0x4")
    raises(function() lm.data.one_hot(lm.zeros(0, 'int32')) end, "no labels to take the class count from")
    raises(function() lm.data.one_hot(lm.ones({2, 2}, 'int32')) end,
      "lm.data.one_hot: labels must be a list [N] of class numbers, got shape 2x2")
  end)

  it("refuses a set whose inputs and labels differ in count, and a seed that is not whole", function()
    local bad = {x = lm.zeros(5, 2), y = lm.ones(4, 'int32')}
    for _, f in ipairs{function() return lm.data.split(bad) end, function() return lm.data.head(bad, 2) end} do
      raises(f, "has inputs 5x2 and labels 4: a data set holds one label a sample")
    end
    raises(function() lm.data.split({x = lm.zeros(10, 2), y = lm.ones(10, 'int32')}, {seed = 1.5}) end,
      "lm.data.split: seed must be an integer, got 1.5")
  end)

  it("refuses transforms that would make infinities or read bytes", function()
    raises(function() lm.data.transforms.normalize(0, 0) end, "std must be > 0 in every channel, got 0")
    raises(function() lm.data.transforms.normalize({0, 0}, {1, -1}) end, "std must be > 0 in every channel, got -1")
    raises(function() lm.data.transforms.horizontal_flip()(lm.zeros({2, 3, 4, 4}, "uint8")) end,
      "horizontal_flip: expected a float32 batch, got uint8 (lm.data.to_float turns bytes into floats)")
    raises(function() lm.data.transforms.random_crop(2)(lm.zeros({2, 3, 4, 4}, "uint8")) end,
      "random_crop: expected a float32 batch, got uint8")
  end)
end)

os.execute("rm -rf " .. dir)
