-- uint8 tensors: bytes that are stored, viewed, copied, gathered, converted,
-- saved and loaded, and refused by every op that computes; image sets kept
-- as bytes give the same batches, recordings and evaluations as float sets.
local lm = require 'lumen'

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

local function f32(v) return (string.unpack("<f", string.pack("<f", v))) end

local function bytes_0_to_255()
  local t = {}
  for i = 0, 255 do t[i + 1] = i end
  return lm.tensor(t, 'uint8')
end

describe("uint8 tensors", function()
  it("are made from tables, filled, printed and read back as integers", function()
    local b = lm.tensor({{0, 1, 255}, {7, 8, 9}}, 'uint8')
    eq(b:dtype(), "uint8")
    same(b:totable(), {{0, 1, 255}, {7, 8, 9}})
    eq(math.type(b[1][3]), "integer")
    eq(b:narrow(2, 3, 1):narrow(1, 1, 1):item(), 255)
    same(lm.zeros(2, 'uint8'):totable(), {0, 0})
    same(lm.full({3}, 200, 'uint8'):totable(), {200, 200, 200})
    same(lm.zeros(2, 'uint8'):fill_(17):totable(), {17, 17})
    truthy(tostring(b):find("uint8 tensor of shape 2x3", 1, true), tostring(b))
  end)

  it("refuses values a byte cannot hold, saying which", function()
    raises(function() lm.tensor({1, 256}, 'uint8') end, "element 2 at depth 1 (256) is not a uint8 (0 to 255)")
    raises(function() lm.tensor({-1}, 'uint8') end, "element 1 at depth 1 (-1) is not a uint8 (0 to 255)")
    raises(function() lm.tensor({1.5}, 'uint8') end, "(1.5) is not a uint8")
    raises(function() lm.full({2}, 300, 'uint8') end, "full: 300 does not fit in uint8 (0 to 255)")
    local z = lm.zeros(2, 'uint8')
    raises(function() z:fill_(-1) end, "fill_: -1 does not fit in uint8 (0 to 255)")
    same(z:totable(), {0, 0}, 0, "a refused fill changes nothing")
    raises(function() lm.arange(1, 3, 'uint8') end, "arange: makes float32 or int32 tensors")
    raises(function() lm.tensor({1}, 'uint16') end, "unknown dtype 'uint16' (expected 'float32', 'int32' or 'uint8')")
  end)

  it("refuses arithmetic with the op's name and what to do", function()
    local b = lm.tensor({1, 2}, 'uint8')
    local want = "uint8 tensors hold data (images, masks) and take no arithmetic: "
      .. "convert with x:float() or x:int() first"
    raises(function() return b + 1 end, "add: " .. want)
    raises(function() return b + lm.ones(2) end, "add: " .. want)
    raises(function() return lm.ones(2) * b end, "mul: " .. want)
    raises(function() return b:sum() end, "sum: " .. want)
    raises(function() return b:max(1) end, "max: " .. want)
    raises(function() return b:eq(b) end, "eq: " .. want)
    raises(function() return b:exp() end, "exp: " .. want)
    raises(function() return lm.nn.functional.relu(b) end, "relu: " .. want)
    raises(function() return lm.matmul(b:view(1, 2), b:view(2, 1)) end, "matmul: needs float32 tensors, got uint8")
    raises(function() b:requires_grad(true) end, "only float32 tensors can require gradients, this one is uint8")
    raises(function() lm.nn.Linear(2, 1)(b:view(1, 2)) end, "uint8")
    same(b:totable(), {1, 2}, 0, "refused ops leave the bytes as they were")
  end)

  it("never reach a float kernel as a gradient, an optimiser state or a bias", function()
    local q = lm.ones(6):requires_grad(true)
    raises(function() q:view(2, 3):backward(lm.zeros({2, 3}, 'uint8')) end,
      "backward: the gradient must be float32, got uint8")
    raises(function() q.grad = lm.zeros({6}, 'uint8') end,
      "grad: the gradient is uint8, the tensor float32: they must match")
    eq(q.grad, nil, "a refused gradient is not set")
    local w, b = lm.ones(6, 1, 2, 2), lm.zeros({6}, 'uint8')
    raises(function() lm.nn.functional.conv2d(lm.ones(1, 1, 2, 2), w, b) end, "conv2d: bias must be float32, got uint8")
    local p = lm.ones(6):requires_grad(true)
    p:sum():backward()
    local opt = lm.optim.Adam({p})
    opt:step()
    local sd = opt:state_dict()
    local before = opt.state[1][1]:clone()
    local bad = {settings = sd.settings,
      tensors = {["state.1.1"] = lm.zeros({6}, 'uint8'), ["state.1.2"] = lm.zeros(6)}}
    raises(function() opt:load_state_dict(bad) end,
      "load_state_dict: state 'state.1.1' is uint8, an optimiser's states are float32")
    eq((opt.state[1][1] - before):abs():max():item(), 0, "a refused load changes no state")
    opt.state[1][2] = lm.zeros({6}, 'uint8')
    raises(function() opt:step() end, "optimizer: state tensor 2 must be float32, got uint8")
  end)

  it("labels stored as bytes are one-hot encoded like int32 labels", function()
    same(lm.data.one_hot(lm.tensor({3, 1}, 'uint8'), 3):totable(), {{0, 0, 1}, {1, 0, 0}})
  end)

  it("views, copies and gathers the right bytes at any offset and stride", function()
    local all = bytes_0_to_255():view(16, 16)
    local part = all:narrow(1, 3, 4):narrow(2, 5, 6) -- offset 36, row stride 16
    local want = {}
    for r = 1, 4 do
      want[r] = {}
      for c = 1, 6 do want[r][c] = (r + 1) * 16 + c + 3 end
    end
    same(part:totable(), want)
    same(part:contiguous():totable(), want)
    same(part:clone():totable(), want)
    same(part:t():contiguous():totable()[2], {want[1][2], want[2][2], want[3][2], want[4][2]})
    local rows = all:narrow(1, 5, 8):index_select(lm.tensor({8, 1, 3}, 'int32'))
    eq(rows:dtype(), "uint8")
    same(rows:select(2, 1):totable(), {11 * 16, 4 * 16, 6 * 16})
    same(lm.cat({part, part:narrow(1, 1, 1)}, 1):totable()[5], want[1])
    local into = lm.zeros(2, 3, 'uint8')
    into:copy_(part:narrow(1, 2, 2):narrow(2, 1, 3))
    same(into:totable(), {{52, 53, 54}, {68, 69, 70}})
  end)

  it("converts to float32 and int32 exactly, and back by truncation and saturation", function()
    local b = bytes_0_to_255()
    local f, i = b:float():totable(), b:int():totable()
    for v = 0, 255 do
      eq(f[v + 1], v, "float of " .. v)
      eq(i[v + 1], v, "int of " .. v)
    end
    same(lm.tensor({-1.5, 0.7, 1.99, 254.9, 255, 300, 0 / 0, -math.huge, math.huge}):byte():totable(),
      {0, 0, 1, 254, 255, 255, 0, 0, 255})
    same(lm.tensor({-7, 3, 1000}, 'int32'):to('uint8'):totable(), {0, 3, 255})
    same(lm.tensor(b, 'float32'):narrow(1, 200, 2):totable(), {199, 200})
  end)

  it("lm.data.to_float gives x / 255 rounded as a float product, and leaves floats alone", function()
    local got = lm.data.to_float(bytes_0_to_255()):totable()
    local scale = f32(1 / 255)
    for v = 0, 255 do eq(got[v + 1], f32(v * scale), "byte " .. v) end
    local x = lm.randn(3)
    truthy(rawequal(lm.data.to_float(x), x), "a float tensor is returned as it is")
    raises(function() lm.data.to_float(lm.tensor({1}, 'int32')) end,
      "to_float: images must be uint8 (bytes) or float32, got int32")
  end)

  it("save as U8 and load back as uint8, read or mapped", function()
    local all = bytes_0_to_255():view(16, 16)
    local part = all:narrow(1, 2, 3) -- a view at an offset
    local path = dir .. "/bytes.safetensors"
    lm.save(path, {all = all, part = part, odd = all:narrow(2, 2, 3)})
    local f = assert(io.open(path, "rb"))
    local n = string.unpack("<I8", f:read(8))
    local header = f:read(n)
    f:close()
    truthy(header:find('"part":{"dtype":"U8","shape":[3,16]', 1, true), header)
    for _, map in ipairs{false, true} do
      local t = lm.load(path, {map = map})
      eq(t.all:dtype(), "uint8")
      same(t.all:totable(), all:totable())
      same(t.part:totable(), part:totable())
      same(t.odd:totable(), all:narrow(2, 2, 3):totable())
    end
  end)

  it("encodes for reports as the values they are", function()
    eq(lm.encode(lm.tensor({0, 7, 255}, 'uint8'), "uint8"), "\0\7\255")
    eq(lm.encode(lm.tensor({2}, 'uint8'), "int32"), "\2\0\0\0")
  end)
end)

-- ---- image sets kept as bytes -----------------------------------------------------------------

local function be32(n) return string.pack(">I4", n) end

local function write(name, bytes)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(bytes)
  f:close()
end

-- an MNIST folder of n training and m test images, pixel (i * 7 + k) % 256
local function mnist_folder(n, m)
  os.execute("mkdir -p " .. dir .. "/mnist")
  local function images(count, seed)
    local px = {}
    for i = 0, count * 784 - 1 do px[#px + 1] = string.char((i * 7 + seed) % 256) end
    return "\0\0\8\3" .. be32(count) .. be32(28) .. be32(28) .. table.concat(px)
  end
  local function labels(count)
    local b = {}
    for i = 1, count do b[i] = string.char(i % 10) end
    return "\0\0\8\1" .. be32(count) .. table.concat(b)
  end
  write("mnist/train-images-idx3-ubyte", images(n, 3))
  write("mnist/train-labels-idx1-ubyte", labels(n))
  write("mnist/t10k-images-idx3-ubyte", images(m, 5))
  write("mnist/t10k-labels-idx1-ubyte", labels(m))
end

describe("image sets as bytes", function()
  mnist_folder(300, 40)

  it("load as the same images, a quarter of the memory", function()
    local d8, df = lm.data.mnist{dir = dir, dtype = "uint8"}, lm.data.mnist{dir = dir}
    eq(d8.train.x:dtype(), "uint8")
    same(d8.train.x:shape(), {300, 784})
    eq((lm.data.to_float(d8.train.x) - df.train.x):abs():max():item(), 0)
    same(d8.test.y:totable(), df.test.y:totable())
    raises(function() lm.data.mnist{dir = dir, dtype = "float64"} end,
      "mnist: dtype must be 'float32' or 'uint8', got 'float64'")
    eq(lm.data.mnist{dir = dir, dtype = "byte"}.test.x:dtype(), "uint8", "the alias 'byte'")
  end)

  it("give a loader the float batches of the float set, with noise and clipping too", function()
    local d8, df = lm.data.mnist{dir = dir, dtype = "uint8"}, lm.data.mnist{dir = dir}
    for _, opts in ipairs{{}, {noise = {sigma = 0.3}, clip = {0, 1}}} do
      opts.batch_size, opts.seed, opts.drop_last = 64, 5, false
      lm.manual_seed(9)
      local batches = {}
      for x, y in lm.data.loader(d8.train, opts):epoch_iter() do batches[#batches + 1] = {x:clone(), y:clone()} end
      lm.manual_seed(9)
      local k = 0
      for x, y in lm.data.loader(df.train, opts):epoch_iter() do
        k = k + 1
        eq(batches[k][1]:dtype(), "float32")
        eq((batches[k][1] - x):abs():max():item(), 0, "batch " .. k)
        same(batches[k][2]:totable(), y:totable())
      end
      eq(k, 5, "every batch, the last partial one included")
      eq(#batches, 5)
    end
  end)

  it("record, evaluate and split like the float set", function()
    local d8, df = lm.data.mnist{dir = dir, dtype = "uint8"}, lm.data.mnist{dir = dir}
    lm.manual_seed(1)
    local net = lm.models.net1()
    local rec = lm.introspect.Recorder(net)
    local h8, o8 = rec:record_set(d8.test.x, {batch_size = 16, progress = false})
    local hf, of = rec:record_set(df.test.x, {batch_size = 16, progress = false})
    eq((h8 - hf):abs():max():item(), 0)
    eq((o8 - of):abs():max():item(), 0)
    local e8, ef = lm.evaluate(net, d8.test), lm.evaluate(net, df.test)
    eq(e8.loss, ef.loss)
    eq(e8.accuracy, ef.accuracy)
    local tr, va = lm.data.split(d8.train, {fraction = 0.2, seed = 4})
    local trf = lm.data.split(df.train, {fraction = 0.2, seed = 4})
    eq(tr.x:dtype(), "uint8")
    eq(va.x:size(1), 60)
    eq((lm.data.to_float(tr.x) - trf.x):abs():max():item(), 0)
  end)

  it("CIFAR-10 batches load as bytes too", function()
    local rec = {}
    for i = 1, 2 do rec[i] = string.char(i) .. string.rep(string.char(i * 100), 3072) end
    write("batch.bin", table.concat(rec))
    local x8, y8 = lm._cifar_load(dir .. "/batch.bin", "uint8")
    local xf = lm._cifar_load(dir .. "/batch.bin")
    eq(x8:dtype(), "uint8")
    same(x8:shape(), {2, 3, 32, 32})
    eq(x8[2][3][32][32], 200)
    same(y8:totable(), {2, 3})
    eq((lm.data.to_float(x8) - xf):abs():max():item(), 0)
    raises(function() lm._cifar_load(dir .. "/batch.bin", "int32") end,
      "CIFAR-10 images load as float32 or uint8, not int32")
  end)
end)

os.execute("rm -rf '" .. dir .. "'")
