-- torch's pooling options ceil_mode and count_include_pad = false around the
-- core's pooling, which computes floor-mode sizes and divides every window's
-- sum by kh kw (padding counted).
--
--   ceil_mode: the output size rounds up, as torch's (the last window must
--     start inside the input or its top or left padding); the input is
--     extended once at the bottom and right by what the extra windows reach
--     past the padding, with -inf for max pooling (never the maximum: every
--     window holds an input element) and 0 for average pooling, and pooled
--     once, so an input smaller than the kernel pools as in torch.
--   average pooling's divisor is then torch's: the window's rows times
--     columns inside the padded input (count_include_pad, the default) or
--     inside the input itself (count_include_pad = false). The core's
--     average is divided by the share of each window that counts, which is
--     a plane of ones pooled the same way on x's device (no host data, so
--     a CUDA graph can capture it), and not at all where every window
--     counts whole.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

local INT_MAX = 0x7fffffff -- the largest size the core takes

return function(F)
  local core = {max = F.max_pool2d, avg = F.avg_pool2d}

  -- the core's pooling, its errors raised at the line that called F.*_pool2d
  local function pooled(fn, x, kernel, opts)
    local ok, y = pcall(fn, x, kernel, opts)
    if not ok then checks.reraise(y, 4) end
    return y
  end

  local function flag(opts, key, fname)
    local v = opts[key]
    if v ~= nil and type(v) ~= "boolean" then
      error(string.format("%s: option '%s' must be a boolean", fname, key), 4)
    end
    return v
  end

  -- {h, w} from a size or a pair as the core reads them (2.0 is 2), or nil
  -- where the core refuses v: an integer >= lo or a pair of them
  local function sizes(v, lo)
    local pair = type(v) == "table" and v or {v, v}
    if type(v) == "table" and #v ~= 2 then return nil end
    local h = type(pair[1]) == "number" and math.tointeger(pair[1])
    local w = type(pair[2]) == "number" and math.tointeger(pair[2])
    if not (h and w and h >= lo and w >= lo and h <= INT_MAX and w <= INT_MAX) then return nil end
    return {h, w}
  end

  -- one dimension in ceil mode: the output size (torch's: rounded up, the
  -- last window starting before size + p) and how far the windows reach
  -- past the padded input
  local function windows(size, k, s, p)
    local n = -((k - size - 2 * p) // s) + 1
    if (n - 1) * s >= size + p then n = n - 1 end
    return n, math.max((n - 1) * s + k - size - 2 * p, 0)
  end

  -- x [N, C, H, W] with `extra` {rows, columns} of `fill` at the bottom and
  -- right: one copy of x; the gradient is the view of x's part
  local Extend = lm.autograd.Function{
    name = "pool_extend",
    forward = function(ctx, x, extra, fill)
      local shape = x:shape()
      ctx.h, ctx.w = shape[3], shape[4]
      shape[3], shape[4] = shape[3] + extra[1], shape[4] + extra[2]
      local xe = lm.full(shape, fill, "float32", x:device())
      xe:narrow(3, 1, ctx.h):narrow(4, 1, ctx.w):copy_(x)
      return xe
    end,
    backward = function(ctx, grad) return grad:narrow(3, 1, ctx.h):narrow(4, 1, ctx.w) end,
  }

  -- the share of each output's window that torch's divisor counts, [1, 1,
  -- n1, n2]: ones where an element counts (the input, and with `padded` its
  -- padding), zeros elsewhere (the extension, and without `padded` the
  -- padding), average-pooled as the input is
  local function counted_share(x, k, s, p, extra, padded)
    local h, w, pad = x:size(3), x:size(4), padded and {0, 0} or p
    local grow = padded and {2 * p[1], 2 * p[2]} or {0, 0}
    local plane = lm.zeros({1, 1, h + grow[1] + extra[1], w + grow[2] + extra[2]}, "float32", x:device())
    plane:narrow(3, 1, h + grow[1]):narrow(4, 1, w + grow[2]):fill_(1)
    return core.avg(plane, k, {stride = s, padding = pad})
  end

  local function pool(max, x, kernel, opts)
    local fname = max and "max_pool2d" or "avg_pool2d"
    local fn = max and core.max or core.avg
    if type(opts) ~= "table" or (opts.ceil_mode ~= true and (max or opts.count_include_pad ~= false)) then
      local y = pooled(fn, x, kernel, opts) -- (not a tail call: the level counts this frame)
      return y
    end
    local ceil = flag(opts, "ceil_mode", fname)
    local exclude = not max and flag(opts, "count_include_pad", fname) == false
    -- the core's options: max pooling keeps count_include_pad for the core to refuse, as without ceil_mode
    local o = {}
    for key, v in pairs(opts) do o[key] = v end
    o.ceil_mode = nil
    if not max then o.count_include_pad = nil end
    local k, s, p = sizes(kernel, 1), sizes(o.stride or kernel, 1), sizes(o.padding or 0, 0)
    if not (k and s and p and lm.is_tensor(x) and x:dim() == 4 and x:dtype() == "float32")
        or x:size(3) == 0 or x:size(4) == 0 or p[1] > k[1] // 2 or p[2] > k[2] // 2 then
      local y = pooled(fn, x, kernel, o) -- the core refuses what is wrong, in its words
      return y
    end
    local n, extra = {}, {0, 0}
    if ceil then
      for i = 1, 2 do n[i], extra[i] = windows(x:size(2 + i), k[i], s[i], p[i]) end
      if n[1] < 1 or n[2] < 1 then
        error(string.format("%s: the input [%s] is too small for kernel %dx%d with stride %dx%d and padding %dx%d, "
          .. "even with ceil_mode (output size %dx%d), as in torch", fname, table.concat(x:shape(), ", "), k[1], k[2],
          s[1], s[2], p[1], p[2], n[1], n[2]), 3)
      end
    end
    local xe = x
    if extra[1] > 0 or extra[2] > 0 then xe = Extend(x, extra, max and -math.huge or 0) end
    local y = pooled(fn, xe, kernel, o) -- the core checks what is left (options, the input's layout)
    -- the divisor is kh kw for every window unless some window holds padding
    -- that does not count or reaches past the padded input
    local whole = true
    for i = 1, 2 do whole = whole and extra[i] == 0 and not (exclude and p[i] > 0) end
    if max or whole then return y end
    return y / counted_share(x, k, s, p, extra, not exclude)
  end

  function F.max_pool2d(x, kernel, opts)
    local y = pool(true, x, kernel, opts)
    return y
  end
  function F.avg_pool2d(x, kernel, opts)
    local y = pool(false, x, kernel, opts)
    return y
  end
end
