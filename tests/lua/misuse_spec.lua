-- The misuse suite: wrong calls from Lua, each a Lua error with a specific
-- message and never a crash (the process survives every one). Wrong types
-- and counts, shape mismatches in every op family, out-of-range indices and
-- dimensions, freed tensors, autograd misuse, optimisers, devices, corrupt
-- safetensors files and missing data folders.
local lm = require 'lumen'

local F = lm.nn.functional
local tmp = os.tmpname()
local function write(path, bytes) local f = assert(io.open(path, "wb")); f:write(bytes); f:close() end
local function st_file(header, data)
  return string.pack("<I8", #header) .. header .. (data or "")
end
local x = lm.ones(2, 3)
local cases = {
  -- types and counts
  {"add a string", function() return x + "a" end},
  {"matmul with a number", function() return lm.matmul(x, 3) end},
  {"zeros with a bad size", function() return lm.zeros(-2) end},
  {"zeros with a fractional size", function() return lm.zeros(2.5) end},
  {"tensor from a ragged table", function() return lm.tensor{{1, 2}, {3}} end},
  {"tensor from strings", function() return lm.tensor{{"a"}} end},
  {"int tensor from fractions", function() return lm.tensor({1.5}, 'int32') end},
  -- found by fuzz/fuzz_tensor_table.c: the int32 check itself converted out-of-range doubles
  {"int tensor from a huge number", function() return lm.tensor({1e300}, 'int32') end},
  {"unknown dtype", function() return lm.zeros(2, 'float16') end},
  {"unknown device", function() return x:to('tpu') end},
  {"view with no size", function() return x:view() end},
  {"method on a non-tensor", function() return lm.Tensor.sum(42) end},
  {"clamp with min > max", function() return x:clamp(2, 1) end},
  {"rand with low > high", function() return x:uniform_(1, 0) end},
  {"randn with negative std", function() return x:normal_(0, -1) end},
  {"bernoulli p outside [0,1]", function() return lm.bernoulli(1.5, 3) end},
  {"randperm negative", function() return lm.randperm(-1) end},
  {"set_num_threads 0", function() lm.set_num_threads(0) end},
  -- shapes, every op family
  {"broadcast mismatch", function() return x + lm.ones(4) end},
  {"where mismatch", function() return lm.where(lm.ones(2), x, lm.ones(5)) end},
  {"matmul inner mismatch", function() return lm.matmul(x, lm.ones(4, 2)) end},
  {"matmul 0-d", function() return lm.matmul(lm.tensor(1), x) end},
  {"batched matmul batch mismatch", function() return lm.matmul(lm.ones(2, 2, 3), lm.ones(3, 3, 2)) end},
  {"view wrong numel", function() return x:view(4) end},
  {"view two -1", function() return x:view(-1, -1) end},
  {"view of transposed", function() return x:t():view(6) end},
  {"expand non-1 dim", function() return x:expand(4, 3) end},
  {"permute wrong length", function() return x:permute(1) end},
  {"permute repeated", function() return x:permute(1, 1) end},
  {"cat shape mismatch", function() return lm.cat({x, lm.ones(2, 4)}, 1) end},
  {"cat empty list", function() return lm.cat({}, 1) end},
  {"stack mismatch", function() return lm.stack({x, lm.ones(3, 2)}) end},
  {"linear features mismatch", function() return F.linear(x, lm.ones(4, 5)) end},
  {"linear bias mismatch", function() return F.linear(x, lm.ones(4, 3), lm.ones(5)) end},
  {"conv2d 3-d input", function() return F.conv2d(lm.ones(3, 5, 5), lm.ones(2, 3, 3, 3)) end},
  {"conv2d channel mismatch", function() return F.conv2d(lm.ones(1, 2, 5, 5), lm.ones(2, 3, 3, 3)) end},
  {"conv2d kernel larger", function() return F.conv2d(lm.ones(1, 3, 2, 2), lm.ones(2, 3, 3, 3)) end},
  {"conv2d stride 0", function() return F.conv2d(lm.ones(1, 3, 5, 5), lm.ones(2, 3, 3, 3), {stride = 0}) end},
  {"max_pool2d kernel 0", function() return F.max_pool2d(lm.ones(1, 1, 4, 4), 0) end},
  {"softmax dim out of range", function() return F.softmax(x, 3) end},
  {"mse shape mismatch", function() return F.mse(x, lm.ones(3, 2)) end},
  {"cross_entropy float labels", function() return F.cross_entropy(x, lm.ones(2)) end},
  {"cross_entropy label out of range", function() return F.cross_entropy(x, lm.tensor({1, 9}, 'int32')) end},
  {"mmd dims", function() return F.mmd(lm.ones(3, 2), lm.ones(3, 3)) end},
  {"dropout p = 1", function() return F.dropout(x, 1, true) end},
  -- ranges
  {"sum dim out of range", function() return x:sum(3) end},
  {"select index out of range", function() return x:select(1, 3) end},
  {"narrow past the end", function() return x:narrow(2, 3, 2) end},
  {"element index out of range", function() return x[5] end},
  {"item of many", function() return x:item() end},
  {"index_select out of range", function() return x:index_select(lm.tensor({3}, 'int32')) end},
  {"index_select float index", function() return x:index_select(lm.tensor({1})) end},
  {"topk k too large", function() return x:topk(4) end},
  {"one_hot label above classes", function() return lm.data.one_hot(lm.tensor({3}, 'int32'), 2) end},
  -- autograd state
  {"backward twice", function()
    local a = lm.ones(3):requires_grad(true); local l = (a * a):sum(); l:backward(); l:backward() end},
  {"backward non-scalar", function() local a = lm.ones(3):requires_grad(true); (a * 2):backward() end},
  {"backward without grad", function() lm.ones(3):sum():backward() end},
  {"backward grad shape", function() local a = lm.ones(3):requires_grad(true); (a * 2):backward(lm.ones(4)) end},
  {"in-place on leaf", function() local a = lm.ones(3):requires_grad(true); a:add_(1) end},
  {"modified saved tensor", function()
    local a = lm.ones(3):requires_grad(true); local b = a * 1; local c = b * b; b:add_(1); c:sum():backward() end},
  {"requires_grad on non-leaf", function() local a = lm.ones(3):requires_grad(true); (a * 2):requires_grad(true) end},
  {"requires_grad on int", function() lm.tensor({1}, 'int32'):requires_grad(true) end},
  -- freed tensors
  {"use after free", function() local a = lm.ones(3); a:free(); return a + 1 end},
  -- optimisers and modules
  {"optimizer without params", function() return lm.optim.SGD({}, {lr = 0.1}) end},
  {"optimizer on non-grad tensor", function() return lm.optim.Adam({lm.ones(3)}) end},
  {"optimizer lr negative", function() return lm.optim.SGD({lm.ones(3):requires_grad(true)}, {lr = -1}) end},
  {"module wrong input", function() return lm.nn.Linear(3, 2)(lm.ones(2, 4)) end},
  {"load into wrong architecture", function()
    lm.nn.Linear(3, 2):save(tmp); lm.nn.Linear(4, 2):load(tmp) end},
  {"load missing file", function() lm.nn.Linear(3, 2):load("/nonexistent/x.safetensors") end},
  -- devices
  {"to cuda without a GPU", function() return x:to('cuda') end},
  {"zeros on cuda without a GPU", function() return lm.zeros(2, 'cuda') end},
  -- files
  {"safetensors huge header", function() write(tmp, string.pack("<I8", 1 << 40) .. "{}"); return lm.load(tmp) end},
  {"safetensors offsets past end", function()
    write(tmp, st_file('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', "12345678")); return lm.load(tmp) end},
  {"safetensors overlap", function()
    write(tmp, st_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
      string.rep("\0", 12))); return lm.load(tmp) end},
  {"safetensors unknown dtype", function()
    write(tmp, st_file('{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}', "1234")); return lm.load(tmp) end},
  {"safetensors shape/size mismatch", function()
    write(tmp, st_file('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', "12345678")); return lm.load(tmp) end},
  {"safetensors bad json", function() write(tmp, st_file('{"a":', "")); return lm.load(tmp) end},
  {"safetensors truncated", function() write(tmp, "abc"); return lm.load(tmp) end},
  {"save to a missing folder", function() lm.save("/nonexistent/dir/x.safetensors", {a = x}) end},
  {"save a non-tensor", function() lm.save(tmp, {a = 3}) end},
  {"idx wrong magic", function() write(tmp, "\7\7\8\3" .. string.rep("\0", 12)); return lm._idx_load(tmp, "float32", 1) end},
  {"mnist missing folder", function() return lm.data.mnist{dir = "/nonexistent/mnist"} end},
  {"cifar missing folder", function() return lm.data.cifar10{dir = "/nonexistent/cifar"} end},
  {"json bad text", function() return lm.json.decode("{oops") end},
}

local expected = {
  ["add a string"] = "add: expected tensors or numbers, got userdata and string",
  ["matmul with a number"] = "expected a tensor, got number",
  ["zeros with a bad size"] = "zeros: size 1 of the shape must be a non-negative integer",
  ["zeros with a fractional size"] = "zeros: size 1 of the shape must be a non-negative integer",
  ["tensor from a ragged table"] = "tensor: ragged nested table: row [2] has 1 elements, expected 2",
  ["tensor from strings"] = "element 1 at depth 2 is a string, expected a number",
  ["int tensor from fractions"] = "(1.5) is not an int32",
  ["int tensor from a huge number"] = "element 1 at depth 1 (1e+300) is not an int32",
  ["unknown dtype"] = "unknown dtype 'float16'",
  ["unknown device"] = "to: unknown device or dtype 'tpu'",
  ["view with no size"] = "view: shape of 1 elements asked for a tensor of 6",
  ["method on a non-tensor"] = "expected a tensor, got number",
  ["clamp with min > max"] = "clamp: min (2) is greater than max (1)",
  ["rand with low > high"] = "rand: low (1) must not exceed high (0)",
  ["randn with negative std"] = "randn: std must be >= 0, got -1",
  ["bernoulli p outside [0,1]"] = "bernoulli: p must be in [0, 1], got 1.5",
  ["randperm negative"] = "randperm: n must be in [0, 2^31), got -1",
  ["set_num_threads 0"] = "set_num_threads: n must be in 1..64, got 0",
  ["broadcast mismatch"] = "add: shapes [2, 3] and [4] cannot be broadcast",
  ["where mismatch"] = "where: shapes [2, 3] and [5] cannot be broadcast",
  ["matmul inner mismatch"] = "matmul: inner dimensions differ: [2, 3] @ [4, 2]",
  ["matmul 0-d"] = "matmul: operands must have at least 1 dimension",
  ["batched matmul batch mismatch"] = "matmul (batch dimensions): shapes [2] and [3] cannot be broadcast",
  ["view wrong numel"] = "view: shape of 4 elements asked for a tensor of 6 ([2, 3])",
  ["view two -1"] = "view: only one size may be -1",
  ["view of transposed"] = "do not allow that shape without a copy (use reshape or contiguous)",
  ["expand non-1 dim"] = "expand: size 2 of dimension 1 cannot become 4",
  ["permute wrong length"] = "permute: 1 dimensions given for a 2-D tensor",
  ["permute repeated"] = "permute: dimension 1 repeated",
  ["cat shape mismatch"] = "cat: tensor 2 has shape [2, 4], tensor 1 has [2, 3]",
  ["cat empty list"] = "cat: needs a non-empty list of tensors",
  ["stack mismatch"] = "tensor 2 has shape [1, 3, 2], tensor 1 has [1, 2, 3]",
  ["linear features mismatch"] = "linear: input has 3 features, weight expects 5",
  ["linear bias mismatch"] = "linear: bias must be [4], got [5]",
  ["conv2d 3-d input"] = "conv2d: input must be [N, C, H, W], got [3, 5, 5]",
  ["conv2d channel mismatch"] = "conv2d: input has 2 channels, weight expects 3",
  ["conv2d kernel larger"] = "conv2d: kernel 3x3 is larger than the padded input [1, 3, 2, 2]",
  ["conv2d stride 0"] = "conv2d: kernel and stride must be >= 1 and padding >= 0",
  ["max_pool2d kernel 0"] = "pool: kernel size must be >= 1",
  ["softmax dim out of range"] = "softmax: dimension 3 out of range for a 2-D tensor",
  ["mse shape mismatch"] = "mse: prediction [2, 3] and target [3, 2] must have the same shape",
  ["cross_entropy float labels"] = "cross_entropy: labels must be an int32 tensor of 1-based classes, got float32",
  ["cross_entropy label out of range"] = "cross_entropy: label 9 out of range for 3 classes",
  ["mmd dims"] = "mmd: needs z [N, D] and prior samples [M, D], got 3x2 and 3x3",
  ["dropout p = 1"] = "dropout: p must be in [0, 1), got 1",
  ["sum dim out of range"] = "sum: dimension 3 out of range for a 2-D tensor",
  ["select index out of range"] = "index 3 out of range for dimension 1 of size 2",
  ["narrow past the end"] = "narrow: elements 3 to 4 out of range for dimension 2 of size 3",
  ["element index out of range"] = "index 5 out of range for dimension 1 of size 2",
  ["item of many"] = "item: the tensor has 6 elements, item needs exactly 1",
  ["index_select out of range"] = "index_select: index 3 out of range for 2 rows",
  ["index_select float index"] = "index_select: indices must be int32",
  ["topk k too large"] = "topk: k = 4 out of range for rows of 3",
  ["one_hot label above classes"] = "one_hot: label 3 out of range for 2 classes",
  ["backward twice"] = "was already freed by an earlier backward; call backward(nil, true) (retain_graph)",
  ["backward non-scalar"] = "backward: a gradient can be created implicitly only for a one-element output, this one has shape [3]",
  ["backward without grad"] = "backward: this tensor does not require gradients",
  ["backward grad shape"] = "backward: gradient of shape [4] for an output of shape [3]",
  ["in-place on leaf"] = "add_: in-place change of a leaf tensor that requires gradients",
  ["modified saved tensor"] = "a tensor saved by mul for the gradient was modified in place afterwards",
  ["requires_grad on non-leaf"] = "requires_grad: can only be set on leaf tensors (this one was computed by mul",
  ["requires_grad on int"] = "requires_grad: only float32 tensors can require gradients, this one is int32",
  ["use after free"] = "this tensor has been freed",
  ["optimizer without params"] = "SGD: needs a non-empty list of parameters",
  ["optimizer on non-grad tensor"] = "Adam: parameter 1 does not require gradients",
  ["optimizer lr negative"] = "SGD: lr must be a number >= 0",
  ["module wrong input"] = "linear: input has 4 features, weight expects 3",
  ["load into wrong architecture"] = "load: parameter 'weight' has shape 2x3 in",
  ["load missing file"] = "cannot open '/nonexistent/x.safetensors': No such file or directory",
  ["to cuda without a GPU"] = "CUDA is not available",
  ["zeros on cuda without a GPU"] = "CUDA is not available",
  ["safetensors huge header"] = "header length 1099511627776 is impossible for a file of 10 bytes",
  ["safetensors offsets past end"] = "tensor 'a' ends at byte 16 of the data, past its end (8 bytes; the file may be truncated)",
  ["safetensors overlap"] = "the data of tensors 'a' and 'b' overlap",
  ["safetensors unknown dtype"] = "tensor 'a' has dtype 'BF16', which Lumen cannot read",
  ["safetensors shape/size mismatch"] = "tensor 'a' has 8 bytes of data but its shape needs 12",
  ["safetensors bad json"] = "invalid JSON at byte 5",
  ["safetensors truncated"] = "is too short to be a safetensors file (3 bytes)",
  ["save to a missing folder"] = "cannot create a file beside '/nonexistent/dir/x.safetensors'",
  ["save a non-tensor"] = "save: 'a' is a number, expected a tensor",
  ["idx wrong magic"] = "is not an IDX file (magic number 07070803)",
  ["mnist missing folder"] = "MNIST not found. Looked in: /nonexistent/mnist/mnist",
  ["cifar missing folder"] = "CIFAR-10 not found. Looked in: /nonexistent/cifar/cifar10",
  ["json bad text"] = "json",
}

describe("misuse", function()
  it("has at least 60 cases, each with an expected message", function()
    truthy(#cases >= 60, #cases .. " cases")
    for _, c in ipairs(cases) do truthy(expected[c[1]], "an expected message for " .. c[1]) end
  end)
  for _, c in ipairs(cases) do
    it(c[1], function() raises(c[2], expected[c[1]]) end)
  end
  it("a view keeps its storage when the tensor it came from is freed", function()
    local a = lm.ones(3)
    local v = a:view(3)
    a:free()
    eq(v:sum():item(), 3)
    os.remove(tmp)
  end)
end)
