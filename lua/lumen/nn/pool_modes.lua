-- torch's pooling options ceil_mode and count_include_pad = false around the
-- core's pooling, which computes floor-mode sizes and divides every window's
-- sum by kh kw (padding counted).
--
--   ceil_mode: the output size rounds up, as torch's (the last window must
--     start inside the input or its top or left padding); the input is
--     extended at the bottom and right by what the extra windows reach
--     past the padding, with -inf for max pooling (never the maximum: every
--     window holds an input element) and 0 for average pooling.
--   average pooling's divisor is then torch's: the window's rows times
--     columns inside the padded input (count_include_pad, the default) or
--     inside the input itself (count_include_pad = false); the core's
--     average times kh kw / that divisor, per output position.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'
local conv_args = require 'lumen.nn.conv_args'

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

  -- each dimension's output size, how far its windows reach past the
  -- padded input, and the divisor of each of its windows
  local function windows(size, k, s, p, ceil, exclude)
    local n = (size + 2 * p - k) // s + 1
    if ceil then
      n = -((k - size - 2 * p) // s) + 1
      if (n - 1) * s >= size + p then n = n - 1 end
    end
    local counts = {}
    for j = 1, n do
      local first = (j - 1) * s - p
      local stop = math.min(first + k, size + p)
      if exclude then first, stop = math.max(first, 0), math.min(stop, size) end
      counts[j] = stop - first
    end
    return n, math.max((n - 1) * s + k - size - 2 * p, 0), counts
  end

  local function pool(max, x, kernel, opts)
    local fname = max and "max_pool2d" or "avg_pool2d"
    local fn = max and core.max or core.avg
    if type(opts) ~= "table" or (opts.ceil_mode ~= true and (max or opts.count_include_pad ~= false)) then
      local y = pooled(fn, x, kernel, opts) -- (not a tail call: the level counts this frame)
      return y
    end
    local ceil, exclude = flag(opts, "ceil_mode", fname), flag(opts, "count_include_pad", fname) == false
    local o = {}
    for key, v in pairs(opts) do o[key] = v end
    o.ceil_mode, o.count_include_pad = nil, nil
    local y = pooled(fn, x, kernel, o) -- floor mode; the core checks x and every other option
    local k = conv_args.pair(kernel, 1, "kernel size", fname, 1)
    local s = conv_args.pair(o.stride or kernel, 1, "stride", fname, 1)
    local p = conv_args.pair(o.padding or 0, 0, "padding", fname, 1)
    local n, extra, counts = {}, {}, {}
    for i = 1, 2 do n[i], extra[i], counts[i] = windows(x:size(2 + i), k[i], s[i], p[i], ceil, exclude) end
    if extra[1] > 0 or extra[2] > 0 then -- windows past the padding: extend the input
      local fill, xe = max and -math.huge or 0, x
      for i = 1, 2 do
        if extra[i] > 0 then
          local shape = xe:shape()
          shape[2 + i] = extra[i]
          xe = lm.cat({xe, lm.full(shape, fill, "float32", x:device())}, 2 + i)
        end
      end
      y = pooled(fn, xe, kernel, o)
    end
    if max then return y end
    local scale, uniform = {}, true
    for a = 1, n[1] do
      scale[a] = {}
      for b = 1, n[2] do
        local count = counts[1][a] * counts[2][b]
        uniform = uniform and count == k[1] * k[2]
        scale[a][b] = k[1] * k[2] / count
      end
    end
    if uniform then return y end
    return y * lm.tensor(scale):to(x:device())
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
