-- Every differentiable op, layer and loss of Lumen against PyTorch (Debian's
-- python3-torch, run with /usr/bin/python3), forward and backward.
--
-- The reference defines the cases: tests/torch/reference.py generates each
-- case's inputs (seeded float32, distinct values, so max, min and max pooling
-- have no ties), computes the output and the gradients of sum(output * r) in
-- float64, and writes them with a manifest (see its docstring for the layout
-- and conventions: dims and positions 0-based as in PyTorch, indices and
-- labels 1-based as in Lumen). Here `implementations[name](inputs, options)`
-- writes each case with Lumen's API; every manifest case must have one, every
-- expected tensor (output, indices, each gradient) must be produced and match
-- to a relative error max|lumen - ref| / max(max|ref|, tiny) <= 1e-5 (integer
-- outputs exactly), and the number of cases checked must equal the
-- manifest's count. Without PyTorch the file is skipped (a failure under CI,
-- which installs it).
--
-- Conventions where Lumen's documented choice is followed by the reference:
-- var/std are unbiased (n - 1, also PyTorch's default); avg_pool2d counts the
-- padding in its divisor (count_include_pad=True, PyTorch's default); mse is
-- DESIGN.md's 1/2 sum over features, mean over the batch ('none': the [N]
-- per-sample errors), not torch's mse_loss; mmd is DESIGN.md's kernel
-- exp(-|a-b|^2 / (bw D)), biased estimate, summed over a list of bandwidths,
-- times opts.weight.
--
-- Differentiable (or gradient-carrying) operations NOT compared here, and why:
--   - F.dropout / nn.Dropout in training with p > 0: the mask comes from
--     Lumen's Philox stream, which PyTorch cannot reproduce (evaluation mode
--     and p = 0 are compared: both are the identity).
--   - lm.autograd.Function: a user-written backward; there is no fixed op to
--     compare (tests/lua/autograd_spec.lua covers the mechanism).
--   - x:to('cuda') / x:to('cpu') and tensors on the GPU: this comparison is
--     CPU only (the GPU tests compare CUDA ops with the CPU ones).
--   - x:float() / x:to('float32') of a float32 tensor: returns x itself
--     (nothing to differentiate); int32 tensors cannot require gradients.
--   - the internal unary op LM_POW_SCALAR: x ^ number reaches it, compared
--     as pow_scalar_*.
--   - lm.nn modules (Linear, Conv2d, ELU, pools, ...): thin wrappers over
--     lm.nn.functional, which is compared.
-- Not differentiable in Lumen (no gradient recorded), so nothing to compare:
-- comparisons (eq, ne, lt, le, gt, ge), isnan/isinf/isfinite (their outputs
-- are compared, forward only), argmax/argmin (their integer outputs are
-- compared, forward only), topk, index_select, and in-place ops. gather and
-- scatter_add are differentiable in the input and src, not in the index.
--
-- Cases with the option `special` have NaN, infinities and signed zeros
-- among their inputs: each element is compared on its own (NaN where the
-- reference has NaN, infinities and zeros exactly, the sign of an output's
-- zero included, the others to the relative tolerance).
local lm = require 'lumen'
local F = lm.nn.functional

local py = dofile("tests/helpers/python.lua")
local TOLERANCE, TINY = 1e-5, 1e-30

if not py.can_import("torch") then
  skip(py.python .. " cannot import torch: Debian's python3-torch is not installed", true)
end

-- ---- the reference ---------------------------------------------------------------------------------

local ref_path = os.tmpname()
local ran, output = py.run("tests/torch/reference.py", "'" .. ref_path .. "'")
if not ran then
  os.remove(ref_path)
  error("tests/torch/reference.py failed:\n" .. output, 0)
end
local tensors, metadata = lm.load(ref_path)
os.remove(ref_path)
local manifest = lm.json.decode(metadata.manifest)

-- ---- Lumen's side of each case ---------------------------------------------------------------------

-- manifest dims are PyTorch's (0-based, negative from the end); Lumen's are 1-based
local function dim(d) return d >= 0 and d + 1 or d end
local function dims(list)
  local out = {}
  for i, d in ipairs(list) do out[i] = dim(d) end
  return out
end

local implementations = {}
local I = implementations

-- elementwise binary: operators for some forms, methods for others
local binary = {
  add = {function(a, b) return a + b end, function(a, b) return a:add(b) end},
  sub = {function(a, b) return a - b end, function(a, b) return a:sub(b) end},
  mul = {function(a, b) return a * b end, function(a, b) return a:mul(b) end},
  div = {function(a, b) return a / b end, function(a, b) return a:div(b) end},
}
for op, f in pairs(binary) do
  local operator, method = f[1], f[2]
  I[op .. "_same_shape"] = function(t) return operator(t.a, t.b) end
  I[op .. "_broadcast"] = function(t) return method(t.a, t.b) end
  I[op .. "_broadcast_both"] = function(t) return operator(t.a, t.b) end
  I[op .. "_transposed"] = function(t) return operator(t.a:t(), t.b) end
  I[op .. "_one_grad"] = function(t) return method(t.a, t.b) end
end
I.mul_self = function(t) return t.x * t.x end
I.mul_int_operand = function(t) return t.a * t.n end
I.div_by_int_operand = function(t) return t.a / t.n end
I.pow_tensor = function(t) return t.a ^ t.b end
I.pow_tensor_broadcast = function(t) return t.a:pow(t.b) end
I.maximum = function(t) return t.a:maximum(t.b) end
I.minimum = function(t) return t.a:minimum(t.b) end

-- tensor and number
I.add_scalar = function(t, o) return t.x + o.scalar end
I.sub_scalar = function(t, o) return t.x - o.scalar end
I.mul_scalar = function(t, o) return t.x * o.scalar end
I.div_scalar = function(t, o) return t.x / o.scalar end
I.radd_scalar = function(t, o) return o.scalar + t.x end
I.rsub_scalar = function(t, o) return o.scalar - t.x end
I.rmul_scalar = function(t, o) return o.scalar * t.x end
I.rdiv_scalar = function(t, o) return o.scalar / t.x end
for _, p in ipairs({"2", "3", "0.5", "-1", "1.5"}) do
  I["pow_scalar_" .. p] = function(t, o) return t.x ^ o.exponent end
end
I.rpow_scalar = function(t, o) return o.base ^ t.x end
I.maximum_scalar = function(t, o) return t.x:maximum(o.scalar) end
I.minimum_scalar = function(t, o) return t.x:minimum(o.scalar) end

-- elementwise unary
I.neg = function(t) return t.x:neg() end
I.unm = function(t) return -t.x end
I.exp = function(t) return t.x:exp() end
I.log = function(t) return t.x:log() end
I.sqrt = function(t) return t.x:sqrt() end
I.abs = function(t) return t.x:abs() end
I.sign = function(t) return t.x:sign() end
I.tanh = function(t) return F.tanh(t.x) end
I.sigmoid = function(t) return F.sigmoid(t.x) end
I.relu = function(t) return F.relu(t.x) end
I.elu = function(t) return F.elu(t.x) end
I.exp_transposed = function(t) return t.x:t():exp() end
I.tanh_transposed = function(t) return t.x:t():tanh() end
I.sigmoid_transposed = function(t) return t.x:t():sigmoid() end
I.relu_transposed = function(t) return t.x:t():relu() end
I.elu_transposed = function(t) return t.x:t():elu() end
I.gelu_none = function(t, o) return t.x:gelu(o.approximate) end
I.gelu_tanh = function(t, o) return F.gelu(t.x, {approximate = o.approximate}) end
I.gelu_none_transposed = function(t) return F.gelu(t.x:t()) end
I.gelu_tanh_transposed = function(t) return t.x:t():gelu('tanh') end
I["elu_alpha_0.5"] = function(t, o) return F.elu(t.x, o.alpha) end
I["elu_alpha_2.0"] = function(t, o) return t.x:elu(o.alpha) end
I.clamp = function(t, o) return t.x:clamp(o.min, o.max) end
I.clamp_min = function(t, o) return t.x:clamp(o.min) end
I.clamp_max = function(t, o) return t.x:clamp(nil, o.max) end
I.where = function(t) return lm.where(t.cond, t.a, t.b) end
I.where_broadcast_cond = I.where

-- reductions
I.sum_all = function(t) return t.x:sum() end
I.mean_all = function(t) return t.x:mean() end
for _, d in ipairs({0, 1, 2, -1}) do
  for _, keep in ipairs({false, true}) do
    local suffix = "dim" .. d .. (keep and "_keepdim" or "")
    I["sum_" .. suffix] = function(t, o) return t.x:sum(dim(o.dim), o.keepdim) end
    I["mean_" .. suffix] = function(t, o) return t.x:mean(dim(o.dim), o.keepdim) end
    I["max_" .. suffix] = function(t, o)
      local v, i = t.x:max(dim(o.dim), o.keepdim)
      return v, {indices = i}
    end
    I["min_" .. suffix] = function(t, o)
      local v, i = t.x:min(dim(o.dim), o.keepdim)
      return v, {indices = i}
    end
    I["var_" .. suffix] = function(t, o) return t.x:var(dim(o.dim), o.keepdim) end
    I["std_" .. suffix] = function(t, o) return t.x:std(dim(o.dim), o.keepdim) end
  end
end
I.sum_transposed = function(t, o) return t.x:t():sum(dim(o.dim)) end
I.max_all = function(t) return t.x:max() end
I.min_all = function(t) return t.x:min() end
I.var_all = function(t) return t.x:var() end
I.std_all = function(t) return t.x:std() end
I.max_dim_transposed = function(t, o)
  local v, i = t.x:t():max(dim(o.dim))
  return v, {indices = i}
end
I.argmax_dim1 = function(t, o) return t.x:argmax(dim(o.dim)) end
I.argmin_dim1 = function(t, o) return t.x:argmin(dim(o.dim)) end
I.argmax_all = function(t) return t.x:argmax() end
I.argmin_all = function(t) return t.x:argmin() end

-- softmax
for _, name in ipairs({"softmax", "log_softmax"}) do
  local f = F[name]
  for d = 0, 2 do I[name .. "_dim" .. d] = function(t, o) return f(t.x, dim(o.dim)) end end
  I[name .. "_default"] = function(t) return f(t.x) end
  I[name .. "_transposed"] = function(t, o) return f(t.x:t(), dim(o.dim)) end
end

-- pooling
for _, g in ipairs({{2, 2, 0}, {3, 2, 1}, {3, 1, 1}, {2, 1, 0}}) do
  local suffix = string.format("_k%d_s%d_p%d", g[1], g[2], g[3])
  I["max_pool2d" .. suffix] = function(t, o)
    return F.max_pool2d(t.x, o.kernel, {stride = o.stride, padding = o.padding})
  end
  I["avg_pool2d" .. suffix] = function(t, o)
    return F.avg_pool2d(t.x, o.kernel, {stride = o.stride, padding = o.padding})
  end
end
I.max_pool2d_default_stride = function(t, o) return F.max_pool2d(t.x, o.kernel) end
I.global_avg_pool2d = function(t) return F.global_avg_pool2d(t.x) end

-- cat / stack
for d = 0, 2 do
  I["cat_dim" .. d] = function(t, o) return lm.cat({t.a, t.b, t.c}, dim(o.dim)) end
  I["stack_dim" .. d] = function(t, o) return lm.stack({t.a, t.b, t.c}, dim(o.dim)) end
end
I.cat_partial_grad = I.cat_dim0

-- views
I.narrow = function(t, o) return t.x:narrow(dim(o.dim), o.start + 1, o.length) end
I.select = function(t, o) return t.x:select(dim(o.dim), o.index + 1) end
I.index = function(t, o) return t.x[o.index + 1] end
I.transpose = function(t, o) return t.x:transpose(dim(o.dim0), dim(o.dim1)) end
I.t = function(t) return t.x:t() end
I.permute = function(t, o) return t.x:permute(table.unpack(dims(o.dims))) end
I.view = function(t, o) return t.x:view(o.shape) end
I.view_infer = function(t, o) return t.x:view(table.unpack(o.shape)) end
I.reshape_transposed = function(t, o) return t.x:t():reshape(o.shape) end
I.unsqueeze = function(t, o) return t.x:unsqueeze(dim(o.dim)) end
I.squeeze_dim = function(t, o) return t.x:squeeze(dim(o.dim)) end
I.squeeze_all = function(t) return t.x:squeeze() end
I.expand = function(t, o) return t.x:expand(o.shape) end
I.contiguous_transposed = function(t) return t.x:t():contiguous() end
I.clone = function(t) return t.x:clone() end
I.narrow_of_transposed = function(t, o) return t.x:t():narrow(dim(o.dim), o.start + 1, o.length) * 2 end

-- matmul
for _, name in ipairs({"2d", "batched", "broadcast_batch", "batch_by_2d", "2d_by_batch", "vec_mat",
                       "mat_vec", "vec_vec", "batch_vec"}) do
  I["matmul_" .. name] = function(t) return lm.matmul(t.a, t.b) end
end
I.matmul_large = function(t) return t.a:matmul(t.b) end
I.matmul_transposed = function(t) return lm.matmul(t.a:t(), t.b:t()) end

-- layers
I.linear = function(t) return F.linear(t.x, t.w, t.b) end
I.linear_no_bias = function(t) return F.linear(t.x, t.w) end
I.linear_3d_input = I.linear
I.linear_1d_input = I.linear
for _, name in ipairs({"s2_p1", "s1_p0_no_bias", "s1_p1", "1x1", "rect_kernel_s2_p2", "s3_no_bias", "winograd_p1",
    "winograd_p0_no_bias", "winograd_p2"}) do
  -- t.b is nil without a bias: the call nn.Conv2d makes
  I["conv2d_" .. name] = function(t, o) return F.conv2d(t.x, t.w, t.b, {stride = o.stride, padding = o.padding}) end
end
I.dropout_eval = function(t, o) return F.dropout(t.x, o.p, o.training) end
I.dropout_p0_training = I.dropout_eval

-- losses
for _, name in ipairs({"mse_mean", "mse_none", "mse_3d_mean", "mse_3d_none", "mse_target_no_grad"}) do
  I[name] = function(t, o) return F.mse(t.y_hat, t.y, {reduction = o.reduction}) end
end
I.cross_entropy = function(t) return F.cross_entropy(t.logits, t.labels) end
I.cross_entropy_wide = I.cross_entropy
for _, name in ipairs({"default", "bw_0.1", "bw_1", "bw_10", "multiscale", "multiscale_weight", "bw_2_weight_d3",
    "multiscale_weight_130x70", "bw_3_d5_65x129"}) do
  I["mmd_" .. name] = function(t, o)
    if o.bw == nil and o.weight == nil then return F.mmd(t.z, t.p) end
    return F.mmd(t.z, t.p, {bw = o.bw, weight = o.weight})
  end
end

-- elementwise ops added later, each also on NaN, infinities and signed zeros (x_special)
for _, name in ipairs({"leaky_relu", "floor", "ceil", "round", "trunc", "log1p", "expm1", "log2", "log10",
    "reciprocal", "rsqrt", "square", "erf"}) do
  I[name] = function(t) return t.x[name](t.x) end
  I[name .. "_special"] = I[name]
end
I.leaky_relu = function(t) return F.leaky_relu(t.x) end
I["leaky_relu_slope_0.2_transposed"] = function(t, o) return t.x:t():leaky_relu(o.negative_slope) end
I["leaky_relu_slope_-0.5_transposed"] = function(t, o) return F.leaky_relu(t.x:t(), o.negative_slope) end
I.leaky_relu_module = function(t) return lm.nn.LeakyReLU()(t.x) end
I.softplus = function(t) return F.softplus(t.x) end
I.softplus_special = I.softplus
I.softplus_beta_2_threshold_5 = function(t, o) return F.softplus(t.x, o.beta, o.threshold) end
I.isnan_special = function(t) return t.x:isnan() end
I.isinf_special = function(t) return t.x:isinf() end
I.isfinite_special = function(t) return t.x:isfinite() end

-- large inputs: the threaded and chunked kernel paths
I.exp_large = function(t) return t.x:exp() end
I.add_broadcast_large = function(t) return t.a + t.b end
I.sum_all_large = function(t) return t.x:sum() end
I.mean_dim0_large = function(t, o) return t.x:mean(dim(o.dim)) end
I.var_dim1_large = function(t, o) return t.x:var(dim(o.dim)) end
I.max_dim0_large = function(t, o)
  local v, i = t.x:max(dim(o.dim))
  return v, {indices = i}
end
I.softmax_dim1_large = function(t, o) return F.softmax(t.x, dim(o.dim)) end
I.log_softmax_dim0_large = function(t, o) return F.log_softmax(t.x, dim(o.dim)) end
I.matmul_2d_large = function(t) return lm.matmul(t.a, t.b) end
I.conv2d_large = function(t, o) return F.conv2d(t.x, t.w, t.b, {stride = o.stride, padding = o.padding}) end
I.max_pool2d_large = function(t, o) return F.max_pool2d(t.x, o.kernel, {stride = o.stride, padding = o.padding}) end
I.avg_pool2d_large = function(t, o) return F.avg_pool2d(t.x, o.kernel, {stride = o.stride, padding = o.padding}) end

-- gather, scatter_add and cumsum (index values 1-based in the file, as Lumen takes them)
for _, d in ipairs({"0", "1", "-1", "-2"}) do
  I["gather_dim" .. d] = function(t, o) return t.x:gather(dim(o.dim), t.index) end
end
I.gather_3d = I.gather_dim0
I.gather_transposed = function(t, o) return t.x:t():gather(dim(o.dim), t.index) end
I.gather_large = I.gather_dim0
for _, d in ipairs({"0", "1", "-1"}) do
  I["scatter_add_dim" .. d] = function(t, o) return t.x:scatter_add(dim(o.dim), t.index, t.src) end
end
I.scatter_add_transposed = function(t, o) return t.x:t():scatter_add(dim(o.dim), t.index, t.src:t()) end
I.scatter_add_src_only = I.scatter_add_dim0
for _, d in ipairs({"0", "1", "2", "-1"}) do
  I["cumsum_dim" .. d] = function(t, o) return t.x:cumsum(dim(o.dim)) end
end
I.cumsum_transposed = function(t, o) return t.x:t():cumsum(dim(o.dim)) end
I.cumsum_large = I.cumsum_dim0

-- ---- the comparison --------------------------------------------------------------------------------

local function relative_error(mine, ref)
  return lm.no_grad(function()
    local scale = math.max(ref:abs():max():item(), TINY)
    return (mine:float() - ref):abs():max():item() / scale
  end)
end

local function compare(mine, ref, what)
  truthy(mine ~= nil, "Lumen produced no " .. what)
  truthy(lm.is_tensor(mine), what .. " is a tensor")
  eq(mine:shape_string(), ref:shape_string(), what .. " shape")
  if ref:dtype() == "int32" then
    eq(mine:dtype(), "int32", what .. " dtype")
    local differ = lm.no_grad(function() return mine:ne(ref):sum():item() end)
    eq(differ, 0, what .. ": elements that differ")
  else
    eq(mine:dtype(), "float32", what .. " dtype")
    local err = relative_error(mine, ref)
    truthy(err <= TOLERANCE, string.format("%s: relative error %.3g > %g", what, err, TOLERANCE))
  end
end

-- Element by element, for the `special` cases (1-D): NaN where ref has NaN,
-- infinities exactly, zeros exactly (with their sign when signed_zero), the
-- others to TOLERANCE relative to the element.
local function compare_special(mine, ref, what, signed_zero)
  truthy(lm.is_tensor(mine), what .. " is a tensor")
  eq(mine:shape_string(), ref:shape_string(), what .. " shape")
  eq(mine:dtype(), "float32", what .. " dtype")
  local got, want = mine:detach():totable(), ref:totable()
  for i, r in ipairs(want) do
    local m, at = got[i], string.format("%s element %d: %.9g where torch gives %.9g", what, i, got[i], r)
    if r ~= r then
      truthy(m ~= m, at)
    elseif r == 0 or r == math.huge or r == -math.huge then
      truthy(m == r and (not signed_zero or 1 / m == 1 / r), at)
    else
      truthy(math.abs(m - r) <= TOLERANCE * math.abs(r), at)
    end
  end
end

-- Runs one case: returns what Lumen produced, by expected name ("out",
-- "indices", "grad/x"), or raises.
local function run_case(c, impl)
  local t = {}
  for _, name in ipairs(c.inputs) do
    t[name] = assert(tensors["inputs/" .. c.name .. "/" .. name], "input " .. name .. " missing from the file")
  end
  for _, name in ipairs(c.grad) do t[name]:requires_grad(true) end
  local out, extra = impl(t, c.options)
  truthy(lm.is_tensor(out), "the implementation returns a tensor")
  local got = {out = out}
  for k, v in pairs(extra or {}) do got[k] = v end
  if #c.grad > 0 then
    local r = assert(tensors["r/" .. c.name], "r missing from the file")
    ;(out * r):sum():backward()
    for _, name in ipairs(c.grad) do got["grad/" .. name] = t[name].grad end
  end
  return got
end

describe("against PyTorch", function()
  local checked, seen = 0, {}
  for _, c in ipairs(manifest.cases) do
    seen[c.name] = true
    local impl, got, failure = implementations[c.name], nil, nil
    it(c.name .. " runs", function()
      truthy(impl, "implementations[\"" .. c.name .. "\"] in torch_spec.lua")
      local ok, res = pcall(run_case, c, impl)
      if not ok then
        failure = tostring(res)
        error(res, 0)
      end
      got = res
    end)
    for _, what in ipairs(c.expected) do
      it(c.name .. " " .. what, function()
        truthy(got, "the case ran (" .. (failure or "no implementation") .. ")")
        local ref = assert(tensors["expected/" .. c.name .. "/" .. what], what .. " missing from the file")
        if c.options.special then
          compare_special(got[what], ref, c.name .. " " .. what, what == "out")
        else
          compare(got[what], ref, c.name .. " " .. what)
        end
      end)
    end
    if got then checked = checked + 1 end
  end

  it("checks every case of the manifest", function()
    eq(#manifest.cases, manifest.count, "cases listed in the manifest")
    eq(checked, manifest.count, "cases checked")
  end)

  it("has no implementation without a case in the manifest", function()
    local stale = {}
    for name in pairs(implementations) do
      if not seen[name] then stale[#stale + 1] = name end
    end
    table.sort(stale)
    eq(table.concat(stale, ", "), "", "implementations the reference no longer defines")
  end)
end)
