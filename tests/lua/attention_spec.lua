-- Self-attention as one op (F._self_attention, the CPU's fused kernel):
-- nn.MultiheadAttention takes it when no weights are asked for, and it must
-- give the composed form's values and gradients (its dropout's mask too) (the composed form is
-- itself compared with PyTorch in torch_transformer_spec.lua), with every
-- mask, layout and edge the composed form accepts; its own gradient is
-- checked by finite differences, and its misuse gives clear errors.
local lm = require 'lumen'
local nn, F = lm.nn, lm.nn.functional

-- counts the fused op's calls while fn runs
local function fused_calls(fn)
  local real, calls = F._self_attention, 0
  F._self_attention = function(...) calls = calls + 1; return real(...) end
  local ok, err = pcall(fn)
  F._self_attention = real
  if not ok then error(err, 0) end
  return calls
end

-- output, input gradient and every parameter's gradient of mha(x, x, x, opts)
-- with the output weighted by w (a fixed random tensor)
local function run(mha, x, opts, w)
  mha:zero_grad()
  local xi = x:clone():requires_grad(true)
  local out = mha(xi, xi, xi, opts)
  local loss = (out * w):sum()
  loss:backward()
  local grads = {x = xi.grad:clone()}
  for _, np in ipairs(mha:named_parameters()) do grads[np[1]] = np[2].grad:clone() end
  return out:detach(), grads
end

local function compare(mha, x, opts, what)
  lm.manual_seed(11)
  local w = lm.randn(mha(x, x, x, {need_weights = false, attn_mask = opts.attn_mask,
    key_padding_mask = opts.key_padding_mask}):shape())
  local fused_opts = {need_weights = false, attn_mask = opts.attn_mask, key_padding_mask = opts.key_padding_mask}
  local composed_opts = {need_weights = true, attn_mask = opts.attn_mask, key_padding_mask = opts.key_padding_mask}
  local out_f, g_f, out_c, g_c
  -- the same seed before each: an attention dropout draws the same mask on both paths
  local calls = fused_calls(function() lm.manual_seed(99); out_f, g_f = run(mha, x, fused_opts, w) end)
  eq(calls, 1, what .. ": fused op used")
  calls = fused_calls(function() lm.manual_seed(99); out_c, g_c = run(mha, x, composed_opts, w) end)
  eq(calls, 0, what .. ": composed form used")
  truthy(rel_error(out_f, out_c) < 1e-6, what .. ": output " .. rel_error(out_f, out_c))
  for name, g in pairs(g_c) do
    truthy(rel_error(g_f[name], g) < 1e-5, what .. ": gradient of " .. name .. " " .. rel_error(g_f[name], g))
  end
end

describe("fused self-attention against the composed form", function()
  it("gives the same outputs and gradients without a mask, with 1 to 4 heads", function()
    for _, heads in ipairs({1, 2, 4}) do
      lm.manual_seed(heads)
      local mha = nn.MultiheadAttention(8, heads)
      compare(mha, lm.randn(3, 5, 8), {}, heads .. " heads")
    end
    -- the ViT's shape: 65 tokens (more than a 16-lane block, not a multiple of it)
    lm.manual_seed(7)
    compare(nn.MultiheadAttention(12, 3), lm.randn(2, 65, 12), {}, "65 tokens")
  end)

  it("draws the attention dropout's mask the composed form draws", function()
    lm.manual_seed(20)
    local mha = nn.MultiheadAttention(12, 3, {dropout = 0.3})
    compare(mha, lm.randn(4, 9, 12), {}, "dropout 0.3")
    local padding = lm.tensor({{0, 0, 0, 0, 0, 0, 0, 0, 1}, {0, 0, 0, 0, 0, 0, 0, 1, 1}, {0, 0, 0, 0, 0, 0, 0, 0, 0},
      {0, 0, 0, 0, 0, 0, 0, 0, 1}}, 'int32')
    compare(mha, lm.randn(4, 9, 12), {key_padding_mask = padding}, "dropout 0.3 with key padding")
    -- the stream moves on by the same count: the next draw agrees too
    local x = lm.randn(2, 5, 12)
    lm.manual_seed(5)
    mha(x, x, x, {need_weights = false})
    local after_fused = lm.rand(3)
    lm.manual_seed(5)
    mha(x, x, x)
    local after_composed = lm.rand(3)
    same(after_fused:totable(), after_composed:totable())
    -- and about 30 % of the probabilities are dropped: outputs differ from evaluation's
    mha:eval()
    local eval_out = mha(x, x, x, {need_weights = false})
    mha:train()
    truthy(rel_error(mha(x, x, x, {need_weights = false}), eval_out) > 1e-2, "dropout changed the output")
  end)

  it("applies attention and key padding masks as the composed form does", function()
    lm.manual_seed(2)
    local mha = nn.MultiheadAttention(8, 2)
    local x = lm.randn(3, 6, 8)
    local above, minus_inf = {}, {}
    for i = 1, 6 do
      above[i], minus_inf[i] = {}, {}
      for j = 1, 6 do above[i][j] = j > i and 1 or 0; minus_inf[i][j] = j > i and -math.huge or 0 end
    end
    local causal = lm.tensor(minus_inf)
    compare(mha, x, {attn_mask = causal}, "float causal mask")
    compare(mha, x, {attn_mask = lm.tensor(above, 'int32')}, "int causal mask")
    local padding = lm.tensor({{0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 1}, {0, 0, 0, 0, 1, 1}}, 'int32')
    compare(mha, x, {key_padding_mask = padding}, "key padding")
    compare(mha, x, {attn_mask = causal, key_padding_mask = padding}, "both masks")
    compare(mha, x, {attn_mask = lm.randn(3 * 2, 6, 6)}, "per-head float mask")
  end)

  it("keeps sequence-first and unbatched inputs' layouts", function()
    lm.manual_seed(4)
    local mha = nn.MultiheadAttention(6, 3, {batch_first = false})
    compare(mha, lm.randn(5, 2, 6), {}, "sequence first")
    local single = nn.MultiheadAttention(6, 2)
    local calls = fused_calls(function()
      local x = lm.randn(4, 6)
      local out = single(x, x, x, {need_weights = false})
      same(out:shape(), {4, 6})
      local want = single(x, x, x)
      truthy(rel_error(out, want) < 1e-6, "unbatched output")
    end)
    eq(calls, 1, "the unbatched call fused")
  end)

  it("gives NaN for a fully masked row, as the composed form", function()
    local mha = nn.MultiheadAttention(4, 2)
    local x = lm.randn(1, 3, 4)
    local all = lm.full({3, 3}, -math.huge)
    local fused = mha(x, x, x, {need_weights = false, attn_mask = all})
    local composed = mha(x, x, x, {attn_mask = all})
    local function nans(t) return t:ne(t):sum():item() end
    eq(nans(fused), nans(composed), "NaN count")
    eq(nans(fused), 12, "every output")
  end)

  it("returns the composed form's attention weights where no gradient is recorded", function()
    lm.manual_seed(8)
    local padding = lm.tensor({{0, 0, 0, 0, 1}, {0, 0, 0, 0, 0}, {0, 0, 0, 1, 1}}, 'int32')
    -- the composed form, forced by a softmax that is not Lumen's own
    local function composed(fn)
      local real = F.softmax
      F.softmax = function(...) return real(...) end
      local ok, a, b = pcall(fn)
      F.softmax = real
      if not ok then error(a, 0) end
      return a, b
    end
    for _, c in ipairs{{batch_first = true, x = lm.randn(3, 5, 8)}, {batch_first = false, x = lm.randn(5, 3, 8)},
        {batch_first = true, x = lm.randn(5, 8), unbatched = true}} do
      local mha = nn.MultiheadAttention(8, 2, {batch_first = c.batch_first, dropout = 0.2}):eval()
      for _, opts in ipairs{{}, {average_attn_weights = false},
          {key_padding_mask = not c.unbatched and padding or nil, average_attn_weights = false}} do
        local what = string.format("batch_first %s, unbatched %s, averaged %s, padding %s", c.batch_first,
          c.unbatched, opts.average_attn_weights ~= false, opts.key_padding_mask ~= nil)
        local out, weights
        eq(fused_calls(function() out, weights = lm.no_grad(function() return mha(c.x, c.x, c.x, opts) end) end), 1,
          what .. ": fused op used")
        local want_out, want_weights = composed(function()
          return lm.no_grad(function() return mha(c.x, c.x, c.x, opts) end)
        end)
        eq(weights:shape_string(), want_weights:shape_string(), what .. ": weights' shape")
        truthy(rel_error(weights, want_weights) < 1e-6, what .. ": weights " .. rel_error(weights, want_weights))
        truthy(rel_error(out, want_out) < 1e-6, what .. ": output " .. rel_error(out, want_out))
      end
    end
    -- where the weights could be differentiated, or dropout changes them, the composed form gives them
    local mha = nn.MultiheadAttention(8, 2, {dropout = 0.2})
    local x = lm.randn(2, 4, 8)
    eq(fused_calls(function() mha(x, x, x) end), 0, "weights under gradient recording")
    eq(fused_calls(function() lm.no_grad(function() return mha(x, x, x) end) end), 0, "weights under dropout")
    mha:eval()
    local _, weights = mha(x, x, x)
    truthy(weights:requires_grad(), "differentiable weights")
  end)

  it("runs inside an encoder layer in training and evaluation, and is left out under autocast", function()
    lm.manual_seed(5)
    local layer = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0})
    local x = lm.randn(2, 5, 8)
    eq(fused_calls(function() layer(x) end), 1, "dropout 0 in training")
    local dropping = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0.1})
    eq(fused_calls(function() dropping(x) end), 1, "dropout 0.1 in training")
    dropping:eval()
    eq(fused_calls(function() dropping(x) end), 1, "dropout 0.1 in evaluation")
    eq(fused_calls(function() lm.autocast('bfloat16', function() layer(x) end) end), 0, "under autocast")
  end)
end)

describe("F._self_attention", function()
  it("passes the finite-difference gradient check", function()
    lm.manual_seed(6)
    local qkv = lm.randn(2, 4, 12):requires_grad(true)
    local ok, msg = lm.autograd.gradcheck(function(t) return F._self_attention(t, 2, nil, 0.5) end, {qkv})
    truthy(ok, msg)
    local mask = lm.randn(2, 1, 4, 4)
    ok, msg = lm.autograd.gradcheck(function(t) return F._self_attention(t, 4, mask, 0.7) end, {qkv})
    truthy(ok, msg)
    -- with dropout, reseeded at each call so that every evaluation drops the same probabilities
    ok, msg = lm.autograd.gradcheck(function(t) lm.manual_seed(3); return F._self_attention(t, 2, nil, 0.5, 0.6) end,
      {qkv})
    truthy(ok, msg)
  end)

  it("matches a hand-written single-head attention", function()
    local q = lm.tensor({{{1, 0}, {0, 1}}})
    local k = lm.tensor({{{1, 0}, {1, 1}}})
    local v = lm.tensor({{{1, 2}, {3, 4}}})
    local out = F._self_attention(lm.cat({q, k, v}, 3), 1, nil, 1)
    -- row 1: scores (1, 1) -> weights (1/2, 1/2) -> (2, 3); row 2: scores (0, 1)
    local e = math.exp(1)
    local w1, w2 = 1 / (1 + e), e / (1 + e)
    same(out:totable(), {{{2, 3}, {w1 * 1 + w2 * 3, w1 * 2 + w2 * 4}}}, 1e-6)
  end)

  -- the composed form written out for one qkv and a mask [N, heads, L, L] or nil
  local function reference(qkv, heads, mask, scale)
    local N, L, E = qkv:size(1), qkv:size(2), qkv:size(3) // 3
    local function split(t) return t:reshape(N, L, heads, E // heads):transpose(2, 3) end
    local q, k, v = split(qkv:narrow(3, 1, E)), split(qkv:narrow(3, E + 1, E)), split(qkv:narrow(3, 2 * E + 1, E))
    local scores = lm.matmul(q, k:transpose(3, 4)) * scale
    if mask then scores = scores + mask end
    return lm.matmul(F.softmax(scores, -1), v):transpose(2, 3):reshape(N, L, E)
  end

  it("takes single tokens, one-feature heads and masks of any strides", function()
    lm.manual_seed(12)
    local cases = {
      {qkv = lm.randn(3, 1, 6), heads = 2},                                   -- L = 1
      {qkv = lm.randn(2, 5, 12), heads = 4},                                  -- D = 1
      {qkv = lm.randn(2, 5, 12), heads = 2, mask = lm.randn(5, 1)},           -- broadcast over keys
      {qkv = lm.randn(2, 5, 12), heads = 2, mask = lm.randn(5, 5):t()},       -- transposed view
      {qkv = lm.randn(2, 5, 12), heads = 2, mask = lm.randn(2, 1, 1, 5)},     -- key padding's shape
      {qkv = lm.randn(2, 5, 12), heads = 2, mask = lm.randn(2, 7, 5):narrow(2, 2, 5):reshape(2, 1, 5, 5)},
      {qkv = lm.randn(2, 5, 12), heads = 2, mask = lm.randn(5, 5, 2, 2):permute(3, 4, 1, 2)},
    }
    for i, c in ipairs(cases) do
      local want_mask = c.mask and c.mask:expand(c.qkv:size(1), c.heads, c.qkv:size(2), c.qkv:size(2))
      local got = F._self_attention(c.qkv, c.heads, c.mask, 0.6)
      local want = reference(c.qkv, c.heads, want_mask, 0.6)
      truthy(rel_error(got, want) < 1e-6, "case " .. i .. ": " .. rel_error(got, want))
    end
  end)

  it("gives the same bits at 1 and 2 threads", function()
    lm.manual_seed(13)
    local qkv, mask, r = lm.randn(4, 9, 24), lm.randn(9, 9), lm.randn(4, 9, 8)
    local threads, results = lm.get_num_threads(), {}
    for _, t in ipairs({1, 2}) do
      lm.set_num_threads(t)
      local x = qkv:clone():requires_grad(true)
      local loss = (F._self_attention(x, 2, mask, 0.5) * r):sum()
      loss:backward()
      results[t] = {loss:item(), x.grad}
    end
    lm.set_num_threads(threads)
    eq(results[1][1], results[2][1], "output")
    eq(rel_error(results[1][2], results[2][2]), 0, "gradient")
  end)

  it("returns empty results for empty batches and sequences", function()
    same(F._self_attention(lm.zeros(0, 3, 6), 2, nil, 1):shape(), {0, 3, 2})
    local qkv = lm.zeros(2, 0, 6):requires_grad(true)
    local out = F._self_attention(qkv, 2, nil, 1)
    same(out:shape(), {2, 0, 2})
    out:sum():backward()
    same(qkv.grad:shape(), {2, 0, 6})
  end)

  it("refuses wrong shapes, heads, masks and dtypes with clear errors", function()
    raises(function() F._self_attention(lm.zeros(2, 3, 7), 1, nil, 1) end,
      "self_attention: qkv must be [N, L, 3E] (queries, keys and values side by side), got [2, 3, 7]")
    raises(function() F._self_attention(lm.zeros(2, 3), 1, nil, 1) end,
      "self_attention: qkv must be [N, L, 3E] (queries, keys and values side by side), got [2, 3]")
    raises(function() F._self_attention(lm.zeros(2, 3, 12), 3, nil, 1) end,
      "self_attention: 4 features do not split into 3 heads")
    raises(function() F._self_attention(lm.zeros(2, 3, 12), 0, nil, 1) end, "heads must be a positive int")
    raises(function() F._self_attention(lm.zeros(2, 3, 12), 2 ^ 32 + 2, nil, 1) end, "heads must be a positive int")
    raises(function() F._self_attention(lm.zeros(2, 3, 12), 2, lm.zeros(3, 4), 1) end,
      "self_attention: the mask must broadcast to [N, heads, L, L] = [2, 2, 3, 3], got [3, 4]")
    raises(function() F._self_attention(lm.zeros(2, 3, 12), 2, lm.zeros(3, 3, 'int32'), 1) end,
      "self_attention: the mask must be float32 (additive), got int32")
    raises(function() F._self_attention(lm.zeros(2, 3, 12), 2, lm.zeros(3, 3):requires_grad(true), 1) end,
      "self_attention: the mask is a constant here")
    raises(function() F._self_attention(lm.zeros(2, 3, 12), 2, nil, math.huge) end,
      "self_attention: scale must be finite, got inf")
    raises(function() F._self_attention(lm.zeros(2, 3, 12), 2, nil, 1, 0) end,
      "self_attention: the dropout's keep probability must be in (0, 1], got 0")
  end)
end)
