-- What a PyTorch user reaches for, composed in Lua from Lumen's ops (no new
-- kernels): tensor methods (softmax, log_softmax, softplus, masked_fill,
-- sort, argsort, any, all; sum, mean, var and std over a list of
-- dimensions) and creation functions (zeros_like, ones_like,
-- full_like, rand_like, randn_like, linspace, eye, randint). Each checks its
-- arguments and raises its errors at the caller's line, naming itself.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'
local F = require 'lumen.nn.functional'

local methods = lm._tensor_metatable.methods

-- fn(...) with its error raised at the line calling the function that calls
-- this; never as a tail call (`local y = at_caller(...) return y`), which
-- would take that function's frame off the stack
local function at_caller(fn, ...)
  local results = table.pack(pcall(fn, ...))
  if not results[1] then checks.reraise(results[2], 3) end
  return table.unpack(results, 2, results.n)
end

-- at_caller's, the error named as `fname`'s (an inner "rand: ..." becomes
-- "randint: ...")
local function named_at_caller(fname, fn, ...)
  local results = table.pack(pcall(fn, ...))
  if not results[1] then
    checks.reraise((checks.message(results[2]):gsub("^[%w_.]+: ", "")), 3, fname .. ": ")
  end
  return table.unpack(results, 2, results.n)
end

-- the softmax methods' dim, checked here: F's own message counts the
-- arguments of the function, one off for a method
local function softmax_dim(dim, fname)
  if dim ~= nil and math.type(dim) ~= "integer" then
    error(string.format("%s: dim must be an integer, got %s", fname, checks.shown(dim)), 3)
  end
end

--- x:softmax([dim]): F.softmax(x, dim) (default: the last dimension).
function methods.softmax(x, dim)
  softmax_dim(dim, "softmax")
  local y = at_caller(F.softmax, x, dim)
  return y
end

--- x:log_softmax([dim]): F.log_softmax(x, dim) (default: the last dimension).
function methods.log_softmax(x, dim)
  softmax_dim(dim, "log_softmax")
  local y = at_caller(F.log_softmax, x, dim)
  return y
end

--- x:softplus([beta [, threshold]]): F.softplus(x, beta, threshold).
function methods.softplus(x, beta, threshold) local y = at_caller(F.softplus, x, beta, threshold) return y end

--- x:masked_fill(mask, value): x with `value` where mask is nonzero, x and
--- mask broadcast together as torch's out-of-place masked_fill does;
--- differentiable in x (no gradient where filled).
function methods.masked_fill(x, mask, value)
  checks.tensor(mask, "mask", "masked_fill")
  checks.number(value, "value", "masked_fill")
  if mask:dtype() == "uint8" then mask = mask:int() end
  local ok, y = pcall(lm.where, mask, lm.full({}, value, x:dtype(), x:device()), x)
  if not ok then
    if y:find("broadcast", 1, true) then
      error(string.format("masked_fill: the mask's shape %s and the input's shape %s do not broadcast",
        mask:shape_string(), x:shape_string()), 2)
    end
    checks.reraise(y, 2)
  end
  return y
end

-- the 1-based dimension d of x (negative from the end), or an error naming fname
local function dimension(x, d, fname)
  local n = x:dim()
  if math.type(d) ~= "integer" or d == 0 or d > n or d < -n then
    error(string.format("%s: dimension %s out of range for a %d-D tensor", fname, checks.shown(d), n), 3)
  end
  return d < 0 and n + 1 + d or d
end

local c_topk = methods.topk -- the C method: per row of a 2-D tensor

-- x:topk(k [, largest [, dim]]) on any float32 tensor of one dimension or
-- more: dim moves last, the rows go through the C method, and back
local function topk(x, k, largest, dim, fname)
  if x:dim() == 2 and (dim == nil or dim == -1 or dim == 2) then return c_topk(x, k, largest) end
  if x:dtype() ~= "float32" then error(fname .. ": needs a float32 tensor, got " .. x:dtype(), 2) end
  if x:dim() == 0 then error(fname .. ": needs at least one dimension, got a 0-D tensor", 2) end
  local d = dimension(x, dim or -1, fname)
  local n = x:dim()
  local moved = d == n and x or x:transpose(d, n)
  local shape = moved:shape()
  local rows = moved:contiguous():reshape(x:numel() // math.max(shape[n], 1), shape[n])
  local values, indices = c_topk(rows, k, largest)
  shape[n] = values:shape()[2]
  values, indices = values:reshape(shape), indices:reshape(shape)
  if d ~= n then values, indices = values:transpose(d, n):contiguous(), indices:transpose(d, n):contiguous() end
  return values, indices
end

--- x:topk(k [, largest [, dim]]): the k smallest (largest) values along dim
--- (default -1), sorted, and their 1-based int32 indices, for a float32
--- tensor of any number of dimensions (the C method's rows of a 2-D tensor
--- otherwise: NaN never ranks, ties keep their order).
function methods.topk(x, k, largest, dim)
  local values, indices = at_caller(topk, x, k, largest, dim, "topk")
  return values, indices
end

--- x:sort([dim [, descending]]): values and 1-based int32 indices along dim
--- (default -1), ascending unless descending; float32 only; through x:topk.
--- Ties keep their order (stable); NaN come last in both directions
--- (torch's puts them first when descending). The values carry no gradient.
--- The CPU's topk merge sorts a row for a k above 64 (n log n); the GPU's
--- inserts (up to n^2 steps a row).
local function sort(x, dim, descending, fname)
  if x:dtype() ~= "float32" then error(fname .. ": needs a float32 tensor, got " .. x:dtype(), 2) end
  if x:dim() == 0 then error(fname .. ": needs at least one dimension, got a 0-D tensor", 2) end
  local d = dimension(x, dim or -1, fname)
  descending = checks.flag(descending, false, "descending", fname)
  local n = x:dim()
  if x:numel() == 0 then return x:detach():clone(), lm.zeros(x:shape(), "int32", x:device()) end
  local moved = d == n and x or x:transpose(d, n)
  local shape = moved:shape()
  local values, indices = c_topk(moved:contiguous():reshape(-1, shape[n]), shape[n], descending)
  values, indices = values:reshape(shape), indices:reshape(shape)
  if d ~= n then values, indices = values:transpose(d, n):contiguous(), indices:transpose(d, n):contiguous() end
  return values, indices
end
function methods.sort(x, dim, descending)
  local values, indices = at_caller(sort, x, dim, descending, "sort")
  return values, indices
end

--- x:argsort([dim [, descending]]): the indices of x:sort(dim, descending).
function methods.argsort(x, dim, descending)
  local _, indices = at_caller(sort, x, dim, descending, "argsort")
  return indices
end

-- ---- reductions over a list of dimensions ----

-- x:sum(dims [, keepdim]), and mean, var and std the same way, where dims
-- lists dimensions (torch's x.sum((2, 3))): the C methods call this with
-- their name (std: the variance; its square root is theirs). The listed
-- dimensions move last and merge into one, reduced once, so var sees their
-- elements together; an empty list reduces all, as torch 1.13. Errors name
-- the line calling the method (level 3: this, the method, its caller).
debug.getregistry()["lumen.reduce_dims"] = function(fname, x, dims, keepdim)
  local n, shape = x:dim(), x:shape()
  local listed, size = {}, 1
  for i = 1, #dims do
    local d = dims[i]
    if math.type(d) ~= "integer" then
      error(string.format("%s: dims must hold whole numbers, got %s at position %d", fname, checks.shown(d), i), 3)
    end
    if d == 0 or d > n or d < -n then
      error(string.format("%s: dimension %d out of range for a %d-D tensor", fname, d, n), 3)
    end
    if d < 0 then d = n + 1 + d end
    if listed[d] then error(string.format("%s: dimension %d is listed twice", fname, d), 3) end
    listed[d] = true
  end
  if #dims == 0 then for d = 1, n do listed[d] = true end end
  local perm, kept, kept_dims = {}, {}, {}
  for d = 1, n do
    if not listed[d] then perm[#perm + 1] = d; kept[#kept + 1] = shape[d] end
  end
  for d = 1, n do
    if listed[d] then perm[#perm + 1] = d; size = size * shape[d] end
    kept_dims[d] = listed[d] and 1 or shape[d]
  end
  kept[#kept + 1] = size
  local y = (n > 0 and x:permute(table.unpack(perm)) or x):reshape(table.unpack(kept))
  if fname == "sum" then y = y:sum(#kept) elseif fname == "mean" then y = y:mean(#kept) else y = y:var(#kept) end
  if keepdim and n > 0 then y = y:view(table.unpack(kept_dims)) end
  return y
end

-- whether some element of x is (`zero`: equal to 0; else: not 0), for
-- any/all; a maximum of the 0/1 mask, exact at any size (a float32 sum of
-- it stops counting at 2^24)
local function some(x, zero, fname, extra)
  if extra ~= nil then
    error(fname .. ": takes no arguments (a whole-tensor test: no dim), got " .. checks.shown(extra), 3)
  end
  if x:numel() == 0 then return false end
  if x:dtype() == "uint8" then x = x:int() end
  return lm.no_grad(function() return (zero and x:eq(0) or x:ne(0)):max():item() > 0 end)
end

--- x:any(): true when some element is nonzero (NaN counts), false for an empty tensor.
function methods.any(x, extra)
  local found = some(x, false, "any", extra) -- (not a tail call: its errors count this frame)
  return found
end

--- x:all(): true when every element is nonzero (NaN counts), true for an empty tensor.
function methods.all(x, extra)
  local found = some(x, true, "all", extra)
  return not found
end

-- ---- creation functions ----

local DTYPES = {float32 = true, float = true, int32 = true, int = true, uint8 = true, byte = true}
local function check_dtype(dtype, fname)
  if dtype ~= nil and not DTYPES[dtype] then
    error(fname .. ": dtype must be 'float32', 'int32' or 'uint8', got " .. checks.shown(dtype), 3)
  end
end

--- lm.zeros_like(x [, dtype]): zeros of x's shape, dtype (or `dtype`) and device.
function lm.zeros_like(x, dtype)
  checks.tensor(x, "x", "zeros_like")
  check_dtype(dtype, "zeros_like")
  local y = at_caller(lm.zeros, x:shape(), dtype or x:dtype(), x:device())
  return y
end

--- lm.ones_like(x [, dtype]): ones of x's shape, dtype (or `dtype`) and device.
function lm.ones_like(x, dtype)
  checks.tensor(x, "x", "ones_like")
  check_dtype(dtype, "ones_like")
  local y = at_caller(lm.ones, x:shape(), dtype or x:dtype(), x:device())
  return y
end

--- lm.full_like(x, value [, dtype]): `value` everywhere, x's shape, dtype (or `dtype`) and device.
function lm.full_like(x, value, dtype)
  checks.tensor(x, "x", "full_like")
  check_dtype(dtype, "full_like")
  checks.number(value, "value", "full_like")
  local y = at_caller(lm.full, x:shape(), value, dtype or x:dtype(), x:device())
  return y
end

local function random_like(x, fname, draw)
  checks.tensor(x, "x", fname, 4)
  if x:dtype() ~= "float32" then
    error(string.format("%s: x must be float32 (random numbers are floats), got %s", fname, x:dtype()), 3)
  end
  local ok, out = pcall(draw, x:shape(), x:device())
  if not ok then checks.reraise(out, 3, fname .. ": ") end
  return out
end

--- lm.rand_like(x): uniform in [0, 1), x's shape and device (x float32).
function lm.rand_like(x) local y = random_like(x, "rand_like", lm.rand) return y end

--- lm.randn_like(x): standard normal, x's shape and device (x float32).
function lm.randn_like(x) local y = random_like(x, "randn_like", lm.randn) return y end

-- x rounded to float32 (to nearest, ties to even)
local function f32(x) return (string.unpack("f", string.pack("f", x))) end

-- float32 x * k + z in one rounding, as a fused multiply-add: x and z float32,
-- k a whole number below 2^29 (x * k is exact in a double). The double sum's
-- error (TwoSum) settles a float32 tie the double's own rounding made.
local function fma32(x, k, z)
  local p = x * k
  local s = p + z
  local v = s - p
  local err = (p - (s - v)) + (z - v)
  local r = f32(s)
  local d = s - r
  if err == 0 or d == 0 or d ~= d then return r end
  local other = r + 2 * d -- a float32 only when s lies halfway between r and it
  if f32(other) ~= other then return r end
  return (err > 0) == (d > 0) and other or r
end

--- lm.linspace(start, stop, steps): `steps` float32 values from start to
--- stop, evenly spaced, bit for bit as torch's CPU kernel computes them:
--- step = (stop - start) / (steps - 1) in float32; element i (0-based) is
--- start + i step in the first half and stop - (steps - 1 - i) step in the
--- second, each one fused multiply-add (one rounding); except that torch
--- fills whole blocks of 16 eight at a time: there element i is base + (i -
--- b) step (two roundings), with b = i rounded down to a multiple of 8 and
--- base element b's value by the formula (torch's 8-wide vectors: AVX2 or
--- its default build; an AVX-512 build's 16-wide ones could differ by an ulp).
function lm.linspace(start, stop, steps)
  checks.number(start, "start", "linspace")
  checks.number(stop, "stop", "linspace")
  if not checks.is_whole(steps) or steps < 0 then
    error("linspace: steps must be a non-negative integer, got " .. checks.shown(steps), 2)
  end
  steps = math.tointeger(steps)
  if steps == 0 then return lm.zeros(0) end
  local a, b = f32(start), f32(stop)
  if steps == 1 then return lm.tensor{a} end
  local step = f32(f32(b - a) / (steps - 1))
  local half, blocked = steps // 2, steps - steps % 16
  local function formula(i)
    if i < half then return fma32(step, i, a) end
    return fma32(-step, steps - 1 - i, b)
  end
  local values = {}
  for i = 0, steps - 1 do
    if i < blocked then
      local first = i - i % 8
      values[i + 1] = f32(formula(first) + f32((i - first) * step))
    else
      values[i + 1] = formula(i)
    end
  end
  return lm.tensor(values)
end

--- lm.eye(n [, m]): the n x m (default n x n) float32 identity matrix.
function lm.eye(n, m)
  if not checks.is_whole(n) or n < 0 then error("eye: n must be a non-negative integer, got " .. checks.shown(n), 2) end
  if m ~= nil and (not checks.is_whole(m) or m < 0) then
    error("eye: m must be a non-negative integer, got " .. checks.shown(m), 2)
  end
  n = math.tointeger(n)
  m = m and math.tointeger(m) or n
  -- the n x m result first: a size that cannot be had fails here, at once,
  -- before the two ranges are made
  local out = named_at_caller("eye", lm.zeros, n, m)
  if n == 0 or m == 0 then return out end
  local function diagonal() return out:copy_(lm.arange(1, n):view(n, 1):eq(lm.arange(1, m):view(1, m))) end
  local y = named_at_caller("eye", diagonal)
  return y
end

--- lm.randint(low, high, shape...): int32 numbers uniform over [low, high)
--- (high - low at most 2^24), from the seeded stream: floor(low + u (high -
--- low)) of float32 uniforms u, so uniform to float32's resolution.
function lm.randint(low, high, ...)
  if not checks.is_whole(low) then error("randint: low must be an integer, got " .. checks.shown(low), 2) end
  if not checks.is_whole(high) then error("randint: high must be an integer, got " .. checks.shown(high), 2) end
  if high <= low then error(string.format("randint: high (%d) must be greater than low (%d)", high, low), 2) end
  if high - low > 2 ^ 24 or low < -2 ^ 31 or high > 2 ^ 31 then
    error("randint: the range must lie in int32's and span at most 2^24 values", 2)
  end
  local shape = ...
  if type(shape) ~= "table" then shape = {...} end
  if #shape == 0 then error("randint: give a shape (sizes or a table)", 2) end
  local u = named_at_caller("randint", lm.rand, shape)
  return (u * (high - low)):floor():clamp(0, high - low - 1):int() + math.tointeger(low)
end
