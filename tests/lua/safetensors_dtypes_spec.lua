-- Half-precision and integer safetensors files, both ways, against PyTorch's
-- own conversions (tests/torch/dtype_reference.py): every dtype PyTorch
-- writes in a state_dict loads as float32 / int32 with torch's values, and
-- lm.save(..., {dtype = 'float16' | 'bfloat16'}) stores exactly the halves
-- torch's float32 conversion gives, ties to even and overflow included.
local lm = require 'lumen'

local py = dofile("tests/helpers/python.lua")
local function have_torch() return py.can_import("torch") end

local dir = os.tmpname()
os.remove(dir)
lm.mkdir(dir)

-- bit-for-bit equal, NaN matching NaN
local function same_values(a, b)
  local x, y = a:view(-1):totable(), b:view(-1):totable()
  if #x ~= #y then return false, "sizes " .. #x .. " and " .. #y end
  for i = 1, #x do
    local nan_x, nan_y = x[i] ~= x[i], y[i] ~= y[i]
    if nan_x ~= nan_y or (not nan_x and x[i] ~= y[i]) then
      return false, string.format("element %d: %.9g vs %.9g", i, x[i], y[i])
    end
  end
  return true
end

local function python_run(args) return py.run("tests/torch/dtype_reference.py", args) end

describe("safetensors dtypes without PyTorch", function()
  it("rejects an I64 value int32 cannot hold, naming the tensor and the value", function()
    -- a hand-built file: one I64 tensor holding 2^31
    local header = '{"big":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}'
    header = header .. string.rep(" ", (8 - #header % 8) % 8)
    local path = dir .. "/big.safetensors"
    lm.write_file(path, string.pack("<I8", #header) .. header .. string.pack("<i8", 2 ^ 31))
    raises(function() lm.load(path) end, "tensor 'big' holds 2147483648, which does not fit in int32")
  end)

  it("names the dtypes it reads when a file holds another", function()
    local header = '{"c":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}'
    header = header .. string.rep(" ", (8 - #header % 8) % 8)
    local path = dir .. "/c64.safetensors"
    lm.write_file(path, string.pack("<I8", #header) .. header .. string.rep("\0", 8))
    raises(function() lm.load(path) end, "dtype 'C64', which Lumen cannot read (F32, F64, F16, BF16")
  end)

  it("round-trips float16 and bfloat16 to within their precision, int32 unchanged", function()
    lm.manual_seed(3)
    local x = lm.randn(4, 5)
    local labels = lm.tensor({1, 2, 70000}, 'int32')
    for _, case in ipairs{{"float16", 2 ^ -11}, {"bfloat16", 2 ^ -8}} do
      local path = dir .. "/rt_" .. case[1] .. ".safetensors"
      lm.save(path, {x = x, labels = labels}, {dtype = case[1], metadata = {note = "half"}})
      local back, meta = lm.load(path)
      eq(meta.note, "half")
      same(back.labels:totable(), {1, 2, 70000})
      local rel = ((back.x - x):abs() / x:abs()):max():item()
      truthy(rel <= case[2], case[1] .. " relative error " .. rel)
      truthy(rel > 0, case[1] .. " stored exactly: not narrowed")
    end
  end)

  it("keeps a metadata table whose keys are not options", function()
    local path = dir .. "/meta.safetensors"
    lm.save(path, {x = lm.ones(2)}, {format = "lumen.train", version = "1"})
    local _, meta = lm.load(path)
    eq(meta.format, "lumen.train")
  end)

  it("refuses an unknown dtype and a metadata option that is not a table", function()
    raises(function() lm.save(dir .. "/bad.safetensors", {x = lm.ones(2)}, {dtype = "float8"}) end,
      "dtype must be 'float32', 'float16' or 'bfloat16', got float8")
    raises(function() lm.save(dir .. "/bad.safetensors", {x = lm.ones(2)}, {metadata = 3}) end,
      "options.metadata must be a table")
  end)
end)

describe("safetensors dtypes against PyTorch", function()
  if not have_torch() then
    skip("/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed", true)
    return
  end

  it("loads F16, BF16, F64, I64, I32, I16, U8, I8 and BOOL as torch converts them", function()
    local path = dir .. "/torch_dtypes.safetensors"
    local ok, out = python_run("write '" .. path .. "'")
    truthy(ok, "dtype_reference.py write failed: " .. out)
    local t = lm.load(path)
    local checked = 0
    for name, want in pairs(t) do
      local base = name:match("^(.*)%.expected$")
      if base then
        local got = t[base]
        truthy(got, "no tensor " .. base)
        eq(got:dtype(), want:dtype(), base .. " dtype")
        same(got:shape(), want:shape(), 0, base .. " shape")
        local same, why = same_values(got, want)
        truthy(same, base .. ": " .. tostring(why))
        checked = checked + 1
      end
    end
    eq(checked, 10, "every dtype of the reference file was compared")
  end)

  for _, dtype in ipairs{"float16", "bfloat16"} do
    it("writes " .. dtype .. " exactly as torch rounds float32 to it", function()
      local edge = {0, -0.0, 1, -1, 0.1, 1 / 3, 65504, 65519, 65520, 70000, -70000, 2 ^ -14, 2 ^ -24,
        2 ^ -25, 3 * 2 ^ -25, 1e-8, 1 + 2 ^ -8, 1 + 3 * 2 ^ -8, 1 + 2 ^ -11, 1 + 3 * 2 ^ -11, 3e38,
        -3e38, math.huge, -math.huge, 0 / 0}
      lm.manual_seed(11)
      local tensors = {
        edge = lm.tensor(edge),
        random = lm.randn(64, 33) * 1000,
        small = lm.randn(300) * 1e-5,
        strided = lm.randn(8, 6):t(),
        labels = lm.tensor({3, -4}, 'int32'),
      }
      local f32, half = dir .. "/w32.safetensors", dir .. "/w_" .. dtype .. ".safetensors"
      lm.save(f32, tensors)
      lm.save(half, tensors, {dtype = dtype})
      local ok, out = python_run(string.format("check '%s' '%s' %s", f32, half, dtype))
      truthy(ok and out:find("ok"), "torch disagrees: " .. out)
    end)
  end
end)

os.execute("rm -rf '" .. dir .. "'")
