-- The CPU's convolution algorithms (lm.set_conv_algorithm): Winograd
-- F(2x2, 3x3), im2col + GEMM and the direct kernels (AVX-512 builds)
-- against a direct loop in double precision, forward and both gradients
-- (Winograd's weight gradient on planes of up to 8x8 outputs, the direct
-- one on larger ones), at odd sizes, every padding Winograd takes, and the
-- layers they must leave to im2col.
local lm = require 'lumen'
local F = lm.nn.functional

-- out, gx, gw of sum(out * g) for x [N, C, H, W], w [O, C, kh, kw], by the definition
local function direct(x, w, g, stride, pad)
  local n, c, h, wd = table.unpack(x:shape())
  local o, _, kh, kw = table.unpack(w:shape())
  local oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
  local X, W, G = x:totable(), w:totable(), g:totable()
  local out, gx, gw = {}, {}, {}
  for i = 1, n do
    gx[i] = {}
    for ci = 1, c do
      gx[i][ci] = {}
      for y = 1, h do gx[i][ci][y] = {}; for z = 1, wd do gx[i][ci][y][z] = 0 end end
    end
  end
  for oi = 1, o do
    gw[oi] = {}
    for ci = 1, c do
      gw[oi][ci] = {}
      for r = 1, kh do gw[oi][ci][r] = {}; for s = 1, kw do gw[oi][ci][r][s] = 0 end end
    end
  end
  for i = 1, n do
    out[i] = {}
    for oi = 1, o do
      out[i][oi] = {}
      for y = 1, oh do
        out[i][oi][y] = {}
        for z = 1, ow do
          local sum = 0
          for ci = 1, c do
            for r = 1, kh do
              local yy = (y - 1) * stride - pad + r
              if yy >= 1 and yy <= h then
                for s = 1, kw do
                  local zz = (z - 1) * stride - pad + s
                  if zz >= 1 and zz <= wd then
                    sum = sum + X[i][ci][yy][zz] * W[oi][ci][r][s]
                    local gv = G[i][oi][y][z]
                    gx[i][ci][yy][zz] = gx[i][ci][yy][zz] + gv * W[oi][ci][r][s]
                    gw[oi][ci][r][s] = gw[oi][ci][r][s] + gv * X[i][ci][yy][zz]
                  end
                end
              end
            end
          end
          out[i][oi][y][z] = sum
        end
      end
    end
  end
  return lm.tensor(out), lm.tensor(gx), lm.tensor(gw)
end

local with_algorithm = dofile("tests/helpers/conv_algorithms.lua").with

-- F.conv2d(x, w, nil, opts) at 1 and at 3 threads (both returned), and with
-- `bias` at 1 thread, which must equal the bias added afterwards, bit for bit
local function at_two_thread_counts(x, w, opts, bias, label)
  local saved, runs = lm.get_num_threads(), {}
  for i, threads in ipairs{1, 3} do
    lm.set_num_threads(threads)
    runs[i] = F.conv2d(x, w, nil, opts)
  end
  lm.set_num_threads(1)
  local with_bias = F.conv2d(x, w, bias, opts)
  lm.set_num_threads(saved)
  eq(rel_error(with_bias, runs[1] + bias:view(1, -1, 1, 1)), 0, label .. ": the bias as a separate add")
  return runs[1], runs[2]
end

-- the direct weight gradient is compiled in AVX-512 builds only
local has_direct = pcall(lm.set_conv_algorithm, "direct")
lm.set_conv_algorithm("auto")

describe("convolution algorithms", function()
  -- {N, C, O, H, W, padding}: odd and even sizes, planes smaller than a tile,
  -- every padding Winograd takes (the input's gradient pads by 2 - padding)
  local shapes = {{2, 3, 4, 5, 7, 1}, {1, 2, 3, 6, 6, 0}, {2, 3, 2, 4, 3, 2}, {1, 4, 5, 1, 1, 1},
    {1, 2, 2, 2, 5, 1}, {3, 1, 2, 7, 4, 1}, {1, 2, 2, 3, 263, 1}} -- the last: rows of more than one segment

  for _, algorithm in ipairs{"winograd", "gemm", has_direct and "direct" or nil} do
    it(algorithm .. " gives the direct loop's output and gradients for 3x3 stride-1 layers", function()
      lm.manual_seed(11)
      for _, s in ipairs(shapes) do
        local n, c, o, h, w, pad = table.unpack(s)
        local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c, 3, 3)
        local g = lm.randn(n, o, h + 2 * pad - 2, w + 2 * pad - 2)
        local want, want_gx, want_gw = direct(x0, w0, g, 1, pad)
        with_algorithm(algorithm, function()
          local x, k = x0:clone():requires_grad(true), w0:clone():requires_grad(true)
          local y = F.conv2d(x, k, nil, {padding = pad})
          same(y:shape(), want:shape())
          ;(y * g):sum():backward()
          local label = algorithm .. " " .. table.concat(s, ",")
          truthy(rel_error(y, want) < 1e-5, label .. " output " .. rel_error(y, want))
          truthy(rel_error(x.grad, want_gx) < 1e-5, label .. " input gradient " .. rel_error(x.grad, want_gx))
          truthy(rel_error(k.grad, want_gw) < 1e-5, label .. " weight gradient " .. rel_error(k.grad, want_gw))
        end)
      end
    end)
  end

  it("add the bias as they write each output: the bits of a separate add afterwards", function()
    lm.manual_seed(14)
    -- {N, C, O, H, W, stride}: a plane of fewer tiles than a row of images
    -- (Winograd's small-plane path), larger planes, many images a chunk
    -- (im2col side by side), a stride-2 layer (im2col only)
    for _, s in ipairs{{2, 3, 4, 5, 7, 1}, {3, 20, 24, 12, 12, 1}, {40, 4, 6, 6, 6, 1}, {2, 5, 7, 9, 9, 2}} do
      local n, c, o, h, w, stride = table.unpack(s)
      local x, k = lm.randn(n, c, h, w), lm.randn(o, c, 3, 3)
      for _, bias in ipairs{lm.randn(o), lm.randn(o, 3):t()[2]} do -- contiguous, and a strided view
        for _, algorithm in ipairs{"winograd", "gemm", "auto"} do
          with_algorithm(algorithm, function()
            local fused = F.conv2d(x, k, bias, {padding = 1, stride = stride})
            local apart = F.conv2d(x, k, nil, {padding = 1, stride = stride}) + bias:contiguous():view(1, o, 1, 1)
            eq((fused - apart):abs():max():item(), 0, algorithm .. " " .. table.concat(s, ","))
          end)
        end
      end
    end
  end)

  it("leaves the layers Winograd cannot take to im2col, even when asked for it", function()
    lm.manual_seed(12)
    -- stride 2, a 5x5 kernel, a 3x2 kernel and padding 3 (the input's gradient would need -1)
    for _, case in ipairs{{{2, 3, 7, 6}, {4, 3, 3, 3}, 2, 1}, {{1, 2, 7, 7}, {3, 2, 5, 5}, 1, 2},
        {{1, 2, 6, 5}, {2, 2, 3, 2}, 1, 1}, {{1, 2, 4, 4}, {2, 2, 3, 3}, 1, 3}} do
      local xs, ws, stride, pad = table.unpack(case)
      local x0, w0 = lm.randn(table.unpack(xs)), lm.randn(table.unpack(ws))
      local oh = (xs[3] + 2 * pad - ws[3]) // stride + 1
      local ow = (xs[4] + 2 * pad - ws[4]) // stride + 1
      local g = lm.randn(xs[1], ws[1], oh, ow)
      local want, want_gx, want_gw = direct(x0, w0, g, stride, pad)
      with_algorithm("winograd", function()
        local x, k = x0:clone():requires_grad(true), w0:clone():requires_grad(true)
        local y = F.conv2d(x, k, nil, {stride = stride, padding = pad})
        ;(y * g):sum():backward()
        truthy(rel_error(y, want) < 1e-5, "output")
        truthy(rel_error(x.grad, want_gx) < 1e-5, "input gradient")
        truthy(rel_error(k.grad, want_gw) < 1e-5, "weight gradient")
      end)
    end
  end)

  it("give an infinite input's infinities, not Winograd's inf - inf (its operands go to im2col)", function()
    for _, case in ipairs{{"input", 2, 2}, {"output gradient", 3, 3}, {"output gradient", 1, 4}} do
      local what, row, col = table.unpack(case)
      local results = {}
      for _, algorithm in ipairs{"winograd", "gemm", has_direct and "direct" or nil} do
        with_algorithm(algorithm, function()
          local x = lm.zeros(1, 16, 4, 4)
          if what == "input" then x[1][1][row][col] = math.huge end
          x:requires_grad(true)
          local k = lm.ones(16, 16, 3, 3):requires_grad(true)
          local y = F.conv2d(x, k, nil, {padding = 1})
          local g = lm.ones(1, 16, 4, 4)
          if what == "output gradient" then g[1][1][row][col] = math.huge end
          ;(y * g):sum():backward()
          results[algorithm] = {y:totable(), x.grad:totable(), k.grad:totable()}
        end)
      end
      local flat = lm.tensor(results.winograd[1]):view(-1):totable()
      truthy(flat[1 + 4 + 1] == math.huge or what ~= "input", what .. ": inf where the kernel meets it")
      for other, result in pairs(results) do
        for i, name in ipairs{"output", "input gradient", "weight gradient"} do
          local a = lm.tensor(result[i]):view(-1):totable()
          local b = lm.tensor(results.gemm[i]):view(-1):totable()
          for j = 1, #a do
            local both_nan = a[j] ~= a[j] and b[j] ~= b[j]
            if not (a[j] == b[j] or both_nan or math.abs(a[j] - b[j]) <= 1e-4 * math.abs(b[j])) then
              error(string.format("%s, %s %d: %s %s, gemm %s", what, name, j, other, a[j], b[j]))
            end
          end
        end
      end
    end
  end)

  it("keep huge finite values finite: operands beyond 2^120 go to im2col (Winograd's sums would overflow)", function()
    -- 1e38 * 9 taps * 16 channels * 1e-3 = 1.44e37, finite; Winograd's input
    -- transform adds four inputs (4e38 > FLT_MAX) before any product
    local results = {}
    for _, algorithm in ipairs{"winograd", "gemm"} do
      with_algorithm(algorithm, function()
        local x = (lm.ones(1, 16, 4, 4) * 1e38):requires_grad(true)
        local k = (lm.ones(16, 16, 3, 3) * 1e-3):requires_grad(true)
        local y = F.conv2d(x, k, nil, {padding = 1})
        ;(y * 1e38):sum():backward()
        results[algorithm] = {y, x.grad}
      end)
    end
    -- operands each well below FLT_MAX whose products are not: +-2^116 and +-2^10 (Winograd's
    -- transformed products overflowed to inf and NaN where im2col's sums were finite)
    lm.manual_seed(3)
    local sx = (lm.rand(1, 16, 8, 8):gt(0.5):float() * 2 - 1) * 2 ^ 116
    local sw = (lm.rand(16, 16, 3, 3):gt(0.5):float() * 2 - 1) * 2 ^ 10
    local outs = {}
    for _, algorithm in ipairs{"winograd", "gemm"} do
      with_algorithm(algorithm, function() outs[algorithm] = F.conv2d(sx, sw, nil, {padding = 1}) end)
    end
    local a, b = outs.winograd:view(-1):totable(), outs.gemm:view(-1):totable()
    for j = 1, #b do
      truthy(a[j] == b[j] or a[j] ~= a[j] and b[j] ~= b[j], "output " .. j .. ": " .. a[j] .. ", im2col " .. b[j])
    end
    -- the float32 operands' product times 144 terms, each sum rounded in
    -- an order the BLAS kernel set chooses: within 144 roundings
    local want = lm.tensor{1e38}:item() * lm.tensor{1e-3}:item() * 144
    near(results.winograd[1][1][1][2][2], want, want * 144 * 2 ^ -24, "an inner output")
    for i = 1, 2 do
      local w = results.winograd[i]:view(-1):totable()
      for j, v in ipairs(w) do truthy(v > -math.huge and v < math.huge, "finite at " .. j .. ": " .. v) end
      same(w, results.gemm[i]:view(-1):totable(), 0)
    end
  end)

  it("give an empty batch an empty output and zero weight and bias gradients", function()
    for _, algorithm in ipairs{"winograd", "gemm"} do
      with_algorithm(algorithm, function()
        local x = lm.randn(0, 16, 8, 8):requires_grad(true)
        local k, b = lm.randn(16, 16, 3, 3):requires_grad(true), lm.randn(16):requires_grad(true)
        local y = F.conv2d(x, k, b, {padding = 1})
        eq(y:shape_string(), "0x16x8x8")
        y:sum():backward()
        eq(k.grad:abs():max():item(), 0, algorithm .. ": the weight's gradient (Winograd's was never written)")
        eq(b.grad:abs():max():item(), 0, algorithm .. ": the bias's gradient")
        eq(x.grad:shape_string(), "0x16x8x8")
      end)
    end
  end)

  it("give a layer without outputs an empty output and an empty weight gradient", function()
    for _, algorithm in ipairs{"auto", "gemm", has_direct and "direct" or nil} do
      with_algorithm(algorithm, function()
        for _, stride in ipairs{1, 2} do
          local x = lm.randn(2, 3, 9, 9):requires_grad(true)
          local k = lm.randn(0, 3, 3, 3):requires_grad(true)
          local y = F.conv2d(x, k, nil, {padding = 1, stride = stride})
          eq(y:shape_string(), stride == 1 and "2x0x9x9" or "2x0x5x5")
          y:sum():backward()
          eq(k.grad:shape_string(), "0x3x3x3", algorithm)
          eq(x.grad:abs():max():item(), 0, algorithm .. ": no output, no input gradient")
        end
      end)
    end
  end)

  it("agree with each other on a ResNet-sized layer, chunked over images", function()
    lm.manual_seed(13)
    local x, w = lm.randn(40, 32, 9, 11), lm.randn(48, 32, 3, 3) * (1 / math.sqrt(288))
    local outs = {}
    for _, algorithm in ipairs{"gemm", "winograd", "auto"} do
      with_algorithm(algorithm, function() outs[algorithm] = F.conv2d(x, w, nil, {padding = 1}) end)
    end
    truthy(rel_error(outs.winograd, outs.gemm) < 1e-5, "winograd against gemm")
    eq(rel_error(outs.auto, outs.winograd), 0, "auto takes Winograd for 32 -> 48 channels")
    -- 8x8 planes of 300 images: three chunks of at most 128, the weights'
    -- gradient summed over them
    local x0, w0 = lm.randn(300, 16, 8, 8), lm.randn(16, 16, 3, 3) * (1 / 12)
    local g = lm.randn(300, 16, 8, 8)
    local grads = {}
    for _, algorithm in ipairs{"gemm", "winograd"} do
      with_algorithm(algorithm, function()
        local xg, k = x0:clone():requires_grad(true), w0:clone():requires_grad(true)
        ;(F.conv2d(xg, k, nil, {padding = 1}) * g):sum():backward()
        grads[algorithm] = {xg.grad, k.grad}
      end)
    end
    truthy(rel_error(grads.winograd[1], grads.gemm[1]) < 1e-5, "input gradient over chunks")
    truthy(rel_error(grads.winograd[2], grads.gemm[2]) < 1e-5, "weight gradient over chunks")
  end)

  it("give the same values at any thread count, chunks side by side or one at a time", function()
    -- Winograd (bit for bit): 32x32 planes of 6 images, three chunks of two,
    -- each on a thread of its own at 1-3 threads; 8x8 planes of 40 images,
    -- two chunks of 32 and 8, side by side at 1-2 threads, each step on
    -- every thread at 3 (fewer chunks than threads), the weights' gradient
    -- summed over them; 4x4 planes, one chunk. The direct weight gradient
    -- of the 32x32 layers, stride 1 and 2 (bit for bit: each value summed
    -- by one thread). im2col (its products' values depend on how a product
    -- is cut between threads, by a rounding; the same bits run after run):
    -- the stride-2 3x3 layer's input gradient (two chunks of 4 and 2
    -- images) and a 1x1 layer on 16x16 planes (two chunks of 4 images).
    local saved = lm.get_num_threads()
    local cases = {{6, 16, 32, 3, 1, 1}, {40, 24, 8, 3, 1, 1}, {70, 32, 4, 3, 1, 1}, {6, 16, 32, 3, 2, 1},
      {8, 24, 16, 1, 1, 0}}
    for _, case in ipairs(cases) do
      local n, c, size, kernel, stride, pad = table.unpack(case)
      local x0, w0 = lm.randn(n, c, size, size), lm.randn(c, c, kernel, kernel) * (1 / math.sqrt(9 * c))
      local out = (size + 2 * pad - kernel) // stride + 1
      local g = lm.randn(n, c, out, out)
      local runs = {}
      for run, threads in ipairs{1, 2, 3, 2, 3} do
        lm.set_num_threads(threads)
        local xg, wg = x0:clone():requires_grad(true), w0:clone():requires_grad(true)
        local y = F.conv2d(xg, wg, nil, {padding = pad, stride = stride})
        ;(y * g):sum():backward()
        runs[run] = {output = y, ["input gradient"] = xg.grad, ["weight gradient"] = wg.grad}
      end
      lm.set_num_threads(saved)
      for what in pairs(runs[1]) do
        local label = string.format("%dx%d kernel %d stride %d %s", size, size, kernel, stride, what)
        local winograd = kernel == 3 and stride == 1 and (size <= 8 or what ~= "weight gradient")
        local direct_gw = has_direct and kernel == 3 and pad == 1 and what == "weight gradient"
        for run = 2, 5 do
          local threads = ({1, 2, 3, 2, 3})[run]
          local err = rel_error(runs[run][what], runs[1][what])
          if winograd or direct_gw then
            eq(err, 0, label .. " at " .. threads .. " threads")
          else
            truthy(err < 1e-6, label .. " at " .. threads .. " threads: " .. err)
          end
        end
        eq(rel_error(runs[4][what], runs[2][what]), 0, label .. ": twice at 2 threads")
        eq(rel_error(runs[5][what], runs[3][what]), 0, label .. ": twice at 3 threads")
      end
    end
  end)

  it("compute the weights' gradient directly: blocks of outputs, channels and images, every mask", function()
    if not has_direct then
      eq(select(2, pcall(lm.set_conv_algorithm, "direct")),
        "lm.set_conv_algorithm: 'direct' needs a build with AVX-512 (LUMEN_NATIVE on a processor that has it); "
        .. "this build has none")
      return
    end
    lm.manual_seed(15)
    -- {N, C, O, H, W, stride}: outputs not a multiple of the 8 a pass keeps,
    -- more channels and outputs than a unit's 64, planes of one vector, of
    -- many, of a part of one, rows wider than a vector, many images a block,
    -- batches of several chunks (4 x 5 images, 16 + 4 images); stride 2 on
    -- odd and even sizes (phase planes with an empty last row or column)
    local saved = lm.get_num_threads()
    for _, s in ipairs{{3, 5, 13, 7, 5, 1}, {2, 70, 67, 4, 4, 1}, {2, 3, 9, 1, 1, 1}, {1, 2, 3, 3, 37, 1},
        {40, 4, 8, 3, 3, 1}, {2, 9, 17, 17, 16, 1}, {20, 3, 5, 32, 32, 1}, {3, 5, 13, 7, 5, 2},
        {2, 70, 67, 8, 8, 2}, {2, 3, 9, 1, 1, 2}, {1, 2, 3, 3, 37, 2}, {2, 9, 17, 33, 32, 2}, {20, 3, 5, 32, 32, 2}} do
      local n, c, o, h, w, stride = table.unpack(s)
      local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c, 3, 3)
      local g = lm.randn(n, o, (h - 1) // stride + 1, (w - 1) // stride + 1)
      local _, _, want_gw = direct(x0, w0, g, stride, 1)
      local got = {}
      for i, threads in ipairs{1, 3} do
        lm.set_num_threads(threads)
        with_algorithm("direct", function()
          local k = w0:clone():requires_grad(true)
          ;(F.conv2d(x0, k, nil, {padding = 1, stride = stride}) * g):sum():backward()
          got[i] = k.grad
        end)
      end
      lm.set_num_threads(saved)
      local label = table.concat(s, ",")
      truthy(rel_error(got[1], want_gw) < 1e-5, label .. ": " .. rel_error(got[1], want_gw))
      eq(rel_error(got[2], got[1]), 0, label .. " at 3 threads")
    end
  end)

  it("compute grouped layers' weight gradient directly in auto mode: the loop's values group by group", function()
    lm.manual_seed(22)
    -- {N, C, O, groups, H, W, stride}: a group's outputs not a multiple of
    -- the 8 a pass keeps, more than a unit's 64 channels a group, stride 2 on
    -- odd sizes, batches of several chunks (20 images of 16x16)
    local saved = lm.get_num_threads()
    for _, s in ipairs{{2, 8, 6, 2, 9, 9, 1}, {3, 6, 9, 3, 8, 7, 2}, {1, 140, 140, 2, 5, 6, 1},
        {20, 4, 12, 2, 16, 16, 1}, {2, 12, 10, 2, 11, 9, 2}} do
      local n, c, o, groups, h, w, stride = table.unpack(s)
      local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c // groups, 3, 3)
      local g = lm.randn(n, o, (h - 1) // stride + 1, (w - 1) // stride + 1)
      local parts = {}
      for q = 1, groups do -- the reference: each group a plain layer on its own channels
        local cg, og = c // groups, o // groups
        local _, _, gw = direct(x0:narrow(2, (q - 1) * cg + 1, cg):contiguous(),
          w0:narrow(1, (q - 1) * og + 1, og):contiguous(), g:narrow(2, (q - 1) * og + 1, og):contiguous(), stride, 1)
        parts[q] = gw
      end
      local want = lm.cat(parts, 1)
      local function grad_weight()
        local k = w0:clone():requires_grad(true)
        ;(F.conv2d(x0, k, nil, {padding = 1, stride = stride, groups = groups}) * g):sum():backward()
        return k.grad
      end
      local got = {}
      for i, threads in ipairs{1, 3} do
        lm.set_num_threads(threads)
        got[i] = grad_weight()
      end
      lm.set_num_threads(saved)
      local label = table.concat(s, ",")
      truthy(rel_error(got[1], want) < 1e-5, label .. ": " .. rel_error(got[1], want))
      local gemm = with_algorithm("gemm", grad_weight)
      truthy(rel_error(gemm, want) < 1e-5, label .. ": im2col " .. rel_error(gemm, want))
      if has_direct then
        eq(rel_error(got[2], got[1]), 0, label .. " at 3 threads")
        eq(rel_error(with_algorithm("direct", grad_weight), got[1]), 0, label .. ": the direct kernel's bits")
        truthy(rel_error(gemm, got[1]) > 0, label .. ": not im2col's bits")
      end
    end
  end)

  it("compute strided layers' outputs directly: the direct loop's values, any thread count, bias", function()
    lm.manual_seed(17)
    -- {N, C, O, H, W, kernel, stride, padding}: outputs fewer than a block of
    -- 32 channels and more than one, planes not a multiple of a block of 12
    -- positions, stride 3 with a 5x5 kernel, a plane wider than tall (all
    -- of at least 64 outputs, where the direct kernel runs)
    for _, s in ipairs{{2, 3, 5, 17, 17, 3, 2, 1}, {3, 4, 40, 16, 16, 3, 2, 1}, {1, 2, 3, 26, 26, 5, 3, 2},
        {2, 3, 33, 10, 40, 3, 2, 0}} do
      local n, c, o, h, w, k, stride, pad = table.unpack(s)
      local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c, k, k)
      local oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
      local want = direct(x0, w0, lm.zeros(n, o, oh, ow), stride, pad)
      local bias = lm.randn(o)
      local label = table.concat(s, ",")
      local runs = {}
      runs[1], runs[2] = at_two_thread_counts(x0, w0, {stride = stride, padding = pad}, bias, label)
      truthy(rel_error(runs[1], want) < 1e-5, label .. ": " .. rel_error(runs[1], want))
      if has_direct then
        eq(rel_error(runs[2], runs[1]), 0, label .. " at 3 threads")
      else -- (without AVX-512 im2col runs, whose products split by thread count)
        truthy(rel_error(runs[2], runs[1]) < 1e-5, label .. " at 3 threads")
      end
    end
  end)

  it("compute stride-1 layers of few output channels directly in batches of 8: the loop's values, any thread count",
    function()
    lm.manual_seed(18)
    -- {N, C, O, H, W, kernel, padding}: a plane not a multiple of a block of
    -- 12 positions, outputs fewer than a block of 32, a 5x5 kernel, no padding
    -- (8x8 = 64 outputs, the fewest the kernel takes), a wide plane, 9 images,
    -- 20 outputs (32 lanes, partly used) and 16 (16 lanes, all used); sums
    -- of 64 x 9 terms or more (24 x 25 for the 5x5 kernel), as it takes
    for _, s in ipairs{{8, 64, 6, 9, 9, 3, 1}, {8, 64, 32, 7, 11, 3, 1}, {8, 24, 5, 9, 9, 5, 2},
        {8, 64, 4, 10, 10, 3, 0}, {9, 66, 3, 6, 20, 3, 1}, {8, 64, 20, 8, 8, 3, 1}, {8, 70, 16, 8, 9, 3, 1}} do
      local n, c, o, h, w, k, pad = table.unpack(s)
      local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c, k, k)
      local want = direct(x0, w0, lm.zeros(n, o, h + 2 * pad - k + 1, w + 2 * pad - k + 1), 1, pad)
      local bias = lm.randn(o)
      local label = table.concat(s, ",")
      local runs = {}
      runs[1], runs[2] = at_two_thread_counts(x0, w0, {padding = pad}, bias, label)
      truthy(rel_error(runs[1], want) < 1e-5, label .. ": " .. rel_error(runs[1], want))
      if has_direct then eq(rel_error(runs[2], runs[1]), 0, label .. " at 3 threads") end
    end
    if not has_direct then return end
    -- auto takes the kernel (its bits, not Winograd's) only for 32 outputs or
    -- fewer, 8 images or more, and 64 input channels or more or planes of
    -- at most 16x16
    local function out_with(algorithm, x, k)
      return with_algorithm(algorithm, function() return F.conv2d(x, k, nil, {padding = 1}) end)
    end
    for _, s in ipairs{{8, 64, 32, 10, true}, {16, 64, 24, 10, true}, {7, 64, 32, 10, false},
        {8, 64, 33, 10, false}, {8, 63, 32, 17, false}, {8, 16, 32, 16, true}, {8, 16, 16, 17, false}} do
      local n, c, o, size, takes = table.unpack(s)
      local x, k = lm.randn(n, c, size, size), lm.randn(o, c, 3, 3)
      local auto, winograd = out_with("auto", x, k), out_with("winograd", x, k)
      local label = string.format("%d images, %d channels, %d outputs, %dx%d", n, c, o, size, size)
      if takes then
        local kernel = out_with("direct", x, k)
        truthy(rel_error(winograd, kernel) > 0, label .. ": Winograd's bits differ from the kernel's")
        eq(rel_error(auto, kernel), 0, label .. ": the direct kernel")
      else
        eq(rel_error(auto, winograd), 0, label .. ": Winograd")
      end
    end
  end)

  it("compute grouped layers a block a group: the loop's values group by group, any thread count, bias", function()
    lm.manual_seed(20)
    -- {N, C, O, groups, H, W, kernel, stride, padding}: 16 lanes for a few
    -- outputs a group, 32 for 22 of them with stride 2, 5x5 windows, planes
    -- of 25 and of 16 outputs (the fewest the kernel takes for groups)
    for _, s in ipairs{{2, 4, 6, 2, 9, 9, 3, 1, 1}, {1, 6, 66, 3, 16, 16, 3, 2, 1}, {3, 8, 8, 4, 8, 8, 3, 1, 1},
        {2, 6, 9, 3, 10, 12, 5, 1, 2}, {3, 32, 32, 2, 5, 5, 3, 1, 1}, {2, 48, 48, 3, 7, 8, 3, 2, 1}} do
      local n, c, o, groups, h, w, k, stride, pad = table.unpack(s)
      local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c // groups, k, k)
      local oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
      local parts = {}
      for q = 1, groups do -- the reference: each group a plain layer on its own channels
        local cg, og = c // groups, o // groups
        parts[q] = direct(x0:narrow(2, (q - 1) * cg + 1, cg):contiguous(),
          w0:narrow(1, (q - 1) * og + 1, og):contiguous(), lm.zeros(n, og, oh, ow), stride, pad)
      end
      local want = lm.cat(parts, 2)
      local opts = {stride = stride, padding = pad, groups = groups}
      local bias = lm.randn(o)
      local label = table.concat(s, ",")
      local runs = {}
      runs[1], runs[2] = at_two_thread_counts(x0, w0, opts, bias, label)
      truthy(rel_error(runs[1], want) < 1e-5, label .. ": " .. rel_error(runs[1], want))
      if has_direct then eq(rel_error(runs[2], runs[1]), 0, label .. " at 3 threads") end
      local gemm = with_algorithm("gemm", function() return F.conv2d(x0, w0, nil, opts) end)
      truthy(rel_error(gemm, want) < 1e-5, label .. ": im2col " .. rel_error(gemm, want))
    end
  end)

  it("compute 1x1 stride-1 layers as a product per image: the loop's values, any thread count, bias", function()
    lm.manual_seed(19)
    -- the kernel (AVX-512 builds) takes planes under 64 positions only where
    -- OpenBLAS runs kernels without AVX-512 (its own are faster there)
    local blas512 = ({skylakex = true, cooperlake = true, sapphirerapids = true})[(lm.blas_info().kernel or ""):lower()]
    -- {N, C, O, H, W}: outputs not a multiple of a block of 8 (and fewer),
    -- planes not a multiple of a block of 32 positions (and fewer: 3x5; a
    -- last block of 17 and 26: both vectors, the second partly), one image
    -- (its outputs split between the threads), one input channel
    for _, s in ipairs{{2, 5, 13, 7, 10}, {3, 17, 4, 3, 5}, {1, 9, 40, 6, 11}, {2, 1, 25, 8, 8}, {4, 33, 12, 4, 8},
        {2, 6, 7, 7, 7}, {2, 5, 13, 9, 9}, {1, 7, 9, 9, 10}} do
      local n, c, o, h, w = table.unpack(s)
      local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c, 1, 1)
      local want = direct(x0, w0, lm.zeros(n, o, h, w), 1, 0)
      local bias = lm.randn(o)
      local label = table.concat(s, ",")
      local runs = {}
      runs[1], runs[2] = at_two_thread_counts(x0, w0, {}, bias, label)
      truthy(rel_error(runs[1], want) < 1e-5, label .. ": " .. rel_error(runs[1], want))
      local gemm = with_algorithm("gemm", function() return F.conv2d(x0, w0) end)
      truthy(rel_error(gemm, want) < 1e-5, label .. ": im2col " .. rel_error(gemm, want))
      if has_direct and (h * w >= 64 or not blas512) then
        eq(rel_error(runs[2], runs[1]), 0, label .. " at 3 threads")
      elseif has_direct then -- (im2col's product, split by thread count)
        eq(rel_error(runs[1], gemm), 0, label .. ": im2col under OpenBLAS's AVX-512 kernels")
      end
    end
    -- an empty batch
    eq(F.conv2d(lm.randn(0, 3, 4, 4), lm.randn(5, 3, 1, 1)):shape_string(), "0x5x4x4")
  end)

  it("compute strided layers' input gradient directly: the direct loop's values, any thread count", function()
    lm.manual_seed(18)
    local saved = lm.get_num_threads()
    -- {N, C, O, H, W, kernel, stride, padding}: 17 channels (one block of 32
    -- lanes, most unused) and 40 (two), odd and even sizes (phases of
    -- unequal counts), stride 3 with a 5x5 kernel, a kernel equal to the
    -- stride with no padding, a 7x7 kernel padded by 3, a plane wider than
    -- tall; then a 16-channel layer and a 1x1 one, which stay with im2col
    for _, s in ipairs{{2, 17, 5, 9, 9, 3, 2, 1}, {2, 40, 33, 16, 16, 3, 2, 1}, {1, 20, 3, 11, 12, 5, 3, 2},
        {2, 24, 6, 7, 9, 2, 2, 0}, {2, 33, 9, 7, 7, 7, 2, 3}, {2, 20, 4, 10, 40, 3, 2, 0}} do
      local n, c, o, h, w, k, stride, pad = table.unpack(s)
      local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c, k, k)
      local oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
      local g = lm.randn(n, o, oh, ow)
      local _, want_gx = direct(x0, w0, g, stride, pad)
      local label = table.concat(s, ",")
      local runs = {}
      for i, threads in ipairs{1, 3} do
        lm.set_num_threads(threads)
        local xg = x0:clone():requires_grad(true)
        ;(F.conv2d(xg, w0, nil, {stride = stride, padding = pad}) * g):sum():backward()
        runs[i] = xg.grad
      end
      lm.set_num_threads(saved)
      truthy(rel_error(runs[1], want_gx) < 1e-5, label .. ": " .. rel_error(runs[1], want_gx))
      eq(rel_error(runs[2], runs[1]), 0, label .. " at 3 threads")
      if has_direct and k > stride then -- (one tap a position sums as im2col does)
        local xg = x0:clone():requires_grad(true)
        with_algorithm("gemm", function()
          (F.conv2d(xg, w0, nil, {stride = stride, padding = pad}) * g):sum():backward()
        end)
        truthy(rel_error(runs[1], xg.grad) > 0, label .. ": not im2col's bits")
      end
    end
    -- an infinite weight: im2col's values (no inf * 0 from the border's taps)
    local x_inf, w_inf = lm.randn(1, 17, 6, 6), lm.randn(2, 17, 3, 3)
    w_inf[1][1][1][1] = 1 / 0
    local g_inf = lm.randn(1, 2, 3, 3)
    local inf_grads = {}
    for _, algorithm in ipairs{"auto", "gemm"} do
      with_algorithm(algorithm, function()
        local xg = x_inf:clone():requires_grad(true)
        ;(F.conv2d(xg, w_inf, nil, {stride = 2, padding = 1}) * g_inf):sum():backward()
        inf_grads[algorithm] = xg.grad
      end)
    end
    eq(inf_grads.auto:ne(inf_grads.auto):sum():item(), inf_grads.gemm:ne(inf_grads.gemm):sum():item(),
      "as many NaN as im2col with an infinite weight")
    for _, s in ipairs{{2, 16, 8, 9, 9, 3, 2, 1}, {2, 24, 8, 9, 9, 1, 2, 0}} do
      local n, c, o, h, w, k, stride, pad = table.unpack(s)
      local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c, k, k)
      local g = lm.randn(n, o, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
      local grads = {}
      for _, algorithm in ipairs{"auto", "gemm"} do
        with_algorithm(algorithm, function()
          local xg = x0:clone():requires_grad(true)
          ;(F.conv2d(xg, w0, nil, {stride = stride, padding = pad}) * g):sum():backward()
          grads[algorithm] = xg.grad
        end)
      end
      eq(rel_error(grads.auto, grads.gemm), 0, table.concat(s, ",") .. ": im2col")
    end
  end)

  it("compute stride-1 layers' input gradient as a forward pass over the output gradient: the loop's values",
    function()
    lm.manual_seed(21)
    local saved = lm.get_num_threads()
    -- {N, C, O, groups, H, W, kernel, padding}: a 1x1 layer (the pointwise
    -- kernel's), grouped 3x3 layers (the direct kernel's, and a 7x7 plane
    -- that its forward pass leaves to im2col), a grouped 5x5 kernel padded
    -- by 1 (the gradient's padding 3), narrow layers in batches of 8 (the
    -- direct kernel's: 6 and 20 outputs of the turned layer, 64 inputs), one
    -- unpadded
    for _, s in ipairs{{2, 13, 40, 1, 9, 9, 1, 0}, {2, 8, 6, 2, 9, 9, 3, 1}, {1, 6, 9, 3, 7, 7, 3, 1},
        {2, 6, 6, 3, 10, 12, 5, 1}, {8, 6, 64, 1, 9, 9, 3, 1}, {8, 20, 64, 1, 10, 10, 3, 0}} do
      local n, c, o, groups, h, w, k, pad = table.unpack(s)
      local x0, w0 = lm.randn(n, c, h, w), lm.randn(o, c // groups, k, k)
      local g = lm.randn(n, o, h + 2 * pad - k + 1, w + 2 * pad - k + 1)
      local parts = {}
      for q = 1, groups do -- the reference: each group a plain layer on its own channels
        local cg, og = c // groups, o // groups
        local _, gx = direct(x0:narrow(2, (q - 1) * cg + 1, cg):contiguous(),
          w0:narrow(1, (q - 1) * og + 1, og):contiguous(), g:narrow(2, (q - 1) * og + 1, og):contiguous(), 1, pad)
        parts[q] = gx
      end
      local want = lm.cat(parts, 2)
      local opts = {padding = pad, groups = groups}
      local label = table.concat(s, ",")
      local function grad_input()
        local xg = x0:clone():requires_grad(true)
        ;(F.conv2d(xg, w0, nil, opts) * g):sum():backward()
        return xg.grad
      end
      local runs = {}
      for i, threads in ipairs{1, 3} do
        lm.set_num_threads(threads)
        runs[i] = grad_input()
      end
      lm.set_num_threads(saved)
      truthy(rel_error(runs[1], want) < 1e-5, label .. ": " .. rel_error(runs[1], want))
      local gemm = with_algorithm("gemm", grad_input)
      truthy(rel_error(gemm, want) < 1e-5, label .. ": im2col " .. rel_error(gemm, want))
      if has_direct then
        eq(rel_error(runs[2], runs[1]), 0, label .. " at 3 threads")
        if k > 1 and h * w >= 64 then -- (the kernels sum the taps in another order)
          truthy(rel_error(runs[1], gemm) > 0, label .. ": not im2col's bits")
        end
      end
    end
    -- an infinite weight: im2col's values (no inf * 0 from the border's taps)
    local x_inf, w_inf, g_inf = lm.randn(2, 8, 9, 9), lm.randn(6, 4, 3, 3), lm.randn(2, 6, 9, 9)
    w_inf[1][1][1][1] = 1 / 0
    local inf_grads = {}
    for _, algorithm in ipairs{"auto", "gemm"} do
      with_algorithm(algorithm, function()
        local xg = x_inf:clone():requires_grad(true)
        ;(F.conv2d(xg, w_inf, nil, {padding = 1, groups = 2}) * g_inf):sum():backward()
        inf_grads[algorithm] = xg.grad
      end)
    end
    eq(inf_grads.auto:ne(inf_grads.auto):sum():item(), inf_grads.gemm:ne(inf_grads.gemm):sum():item(),
      "as many NaN as im2col with an infinite weight")
    truthy(inf_grads.gemm:ne(inf_grads.gemm):sum():item() == 0, "im2col's gradient has no NaN")
  end)

  it("take the direct weight gradient in auto mode except on Winograd's small planes", function()
    if not has_direct then skip("the direct kernels are compiled in AVX-512 builds only") end
    lm.manual_seed(16)
    local function gw_with(algorithm, x, k0, g)
      local k
      with_algorithm(algorithm, function()
        k = k0:clone():requires_grad(true)
        ;(F.conv2d(x, k, nil, {padding = 1}) * g):sum():backward()
      end)
      return k.grad
    end
    -- a 16x16 plane: auto is the direct kernel's bits (Winograd's would differ)
    local x, k0, g = lm.randn(4, 16, 16, 16), lm.randn(16, 16, 3, 3), lm.randn(4, 16, 16, 16)
    eq(rel_error(gw_with("auto", x, k0, g), gw_with("direct", x, k0, g)), 0, "16x16: direct")
    -- an 8x8 plane: auto is Winograd's bits
    x, g = lm.randn(4, 16, 8, 8), lm.randn(4, 16, 8, 8)
    local auto, winograd = gw_with("auto", x, k0, g), gw_with("winograd", x, k0, g)
    eq(rel_error(auto, winograd), 0, "8x8: Winograd")
    truthy(rel_error(auto, gw_with("direct", x, k0, g)) > 0, "8x8: not the direct kernel's bits")
    -- stride 2: direct for narrow layers with outputs of 16x16 and more, else im2col
    local function gw2_with(algorithm, x2, k2, g2)
      local k
      with_algorithm(algorithm, function()
        k = k2:clone():requires_grad(true)
        ;(F.conv2d(x2, k, nil, {padding = 1, stride = 2}) * g2):sum():backward()
      end)
      return k.grad
    end
    x, g = lm.randn(2, 16, 32, 32), lm.randn(2, 16, 16, 16)
    eq(rel_error(gw2_with("auto", x, k0, g), gw2_with("direct", x, k0, g)), 0, "stride 2, 16x16 out: direct")
    eq(rel_error(gw2_with("auto", x, k0, g), gw2_with("gemm", x, k0, g)) > 0, true, "stride 2: not im2col's bits")
    x, g = lm.randn(4, 16, 16, 16), lm.randn(4, 16, 8, 8)
    eq(rel_error(gw2_with("auto", x, k0, g), gw2_with("gemm", x, k0, g)), 0, "stride 2, 8x8 out: im2col")
    -- padding 0: neither applies to the direct kernel; 'direct' leaves it to im2col
    x = lm.randn(2, 3, 6, 6)
    local k1, g1 = lm.randn(4, 3, 3, 3), lm.randn(2, 4, 4, 4)
    local k = k1:clone():requires_grad(true)
    with_algorithm("direct", function() (F.conv2d(x, k, nil, {padding = 0}) * g1):sum():backward() end)
    local _, _, want = direct(x, k1, g1, 1, 0)
    truthy(rel_error(k.grad, want) < 1e-5, "padding 0 under 'direct'")
  end)

  -- (core/cpu_conv_depthwise.c: each output, input-gradient value and
  -- weight-gradient sum is one thread's, in a fixed order)
  it("compute depthwise layers directly: im2col's values a group at a time, the same at any thread count", function()
    lm.manual_seed(19)
    local saved = lm.get_num_threads()
    -- {N, C, multiplier, H, W, kernel, stride, padding, dilation}: blocks of
    -- 4 rows and 32 columns with partial ones, 7x7, stride 2 and 3 phases,
    -- dilation {2, 3}, 12 taps a block of the weight gradient (5x5 = 9 + 8 + 8)
    for _, s in ipairs{{3, 4, 1, 13, 37, 3, 1, 1, {1, 1}}, {2, 6, 2, 14, 14, 7, 1, 3, {1, 1}},
        {2, 5, 1, 15, 19, 3, 2, 1, {1, 1}}, {2, 3, 2, 16, 17, 5, 3, 2, {2, 3}}, {1, 2, 1, 1, 1, 3, 2, 1, {1, 1}}} do
      local n, c, m, h, w, k, stride, pad, d = table.unpack(s)
      local opts = {stride = stride, padding = pad, dilation = d, groups = c}
      local x0, w0, b0 = lm.randn(n, c, h, w), lm.randn(c * m, 1, k, k), lm.randn(c * m)
      local label = string.format("%dx%dx%dx%d, %d filters a channel, %dx%d stride %d padding %d dilation {%d, %d}",
        n, c, h, w, m, k, k, stride, pad, d[1], d[2])
      local runs = {}
      for i, case in ipairs{{"gemm", 1}, {"auto", 1}, {"auto", 2}, {"auto", 3}} do
        lm.set_num_threads(case[2])
        with_algorithm(case[1], function()
          local x, wt = x0:clone():requires_grad(true), w0:clone():requires_grad(true)
          local b = b0:clone():requires_grad(true)
          local y = F.conv2d(x, wt, b, opts)
          local loss = (y * y):sum()
          loss:backward()
          runs[i] = {y:detach(), x.grad, wt.grad, b.grad}
        end)
      end
      lm.set_num_threads(saved)
      for part, name in ipairs{"output", "input gradient", "weight gradient", "bias gradient"} do
        local err = rel_error(runs[2][part], runs[1][part])
        truthy(err < 1e-5, label .. ": " .. name .. " against im2col " .. err)
        eq(rel_error(runs[3][part], runs[2][part]), 0, label .. ": " .. name .. " at 2 threads")
        eq(rel_error(runs[4][part], runs[2][part]), 0, label .. ": " .. name .. " at 3 threads")
      end
    end
    -- an infinite weight: im2col's input gradient (no inf * 0 from the border's taps), the same weight gradient
    local x_inf, w_inf, g_inf = lm.randn(1, 2, 5, 5), lm.ones(2, 1, 3, 3), lm.randn(1, 2, 5, 5)
    w_inf[1][1][1][1] = 1 / 0 -- a corner tap: under the border for the first row and column
    local grads = {}
    for _, algorithm in ipairs{"auto", "gemm"} do
      with_algorithm(algorithm, function()
        local xg, wg = x_inf:clone():requires_grad(true), w_inf:clone():requires_grad(true)
        ;(F.conv2d(xg, wg, nil, {padding = 1, groups = 2}) * g_inf):sum():backward()
        grads[algorithm] = {xg.grad, wg.grad}
      end)
    end
    eq(grads.auto[1]:isnan():sum():item(), 0, "no NaN in the input gradient with an infinite weight")
    eq(grads.gemm[1]:isnan():sum():item(), 0, "nor in im2col's")
    truthy(rel_error(grads.auto[2], grads.gemm[2]) < 1e-5, "the weight gradient")
  end)

  it("are chosen by name, and a wrong name is refused", function()
    eq(lm.get_conv_algorithm(), "auto")
    with_algorithm("gemm", function() eq(lm.get_conv_algorithm(), "gemm") end)
    if has_direct then with_algorithm("direct", function() eq(lm.get_conv_algorithm(), "direct") end) end
    eq(lm.get_conv_algorithm(), "auto")
    raises(function() lm.set_conv_algorithm("fft") end, "invalid option 'fft'")
  end)
end)
