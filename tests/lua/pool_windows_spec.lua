-- Max and average pooling against a plain Lua reference, window by window,
-- over every small geometry: kernels 1-3 by 1-3, strides 1-3, padding up to
-- half the kernel, planes 1-7 wide and tall, so each output's window is
-- wholly inside, at an edge, or both (the CPU kernel takes a vectorised path
-- inside and a checked one at the edges, both ways). Max keeps the first
-- largest value (its gradient goes there), the last NaN wins over any
-- number, a window of -inf gives -inf with the gradient on its first element
-- (torch's rules); average counts padding in the divisor and spreads its
-- gradient over the window. Inputs hold ties on purpose.
local lm = require 'lumen'
local F = lm.nn.functional

-- the reference: plane [h][w] (1-based Lua tables) -> outputs and, for max,
-- the 1-based flat index each output took
local function reference(x, h, w, kh, kw, sh, sw, ph, pw, max)
  local oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
  local out, at = {}, {}
  for oi = 0, oh - 1 do
    for oj = 0, ow - 1 do
      local best, best_at, sum, nan_at = -math.huge, nil, 0, nil
      for ki = 0, kh - 1 do
        for kj = 0, kw - 1 do
          local i, j = oi * sh - ph + ki, oj * sw - pw + kj
          if i >= 0 and i < h and j >= 0 and j < w then
            local v = x[i * w + j + 1]
            sum = sum + v
            if v ~= v then nan_at = i * w + j + 1 end
            if best_at == nil or v > best then best, best_at = v, i * w + j + 1 end
          end
        end
      end
      if nan_at then best, best_at = 0 / 0, nan_at end
      out[#out + 1] = max and best or sum / (kh * kw)
      at[#at + 1] = best_at
    end
  end
  return out, at, oh, ow
end

local function same_value(a, b)
  return a == b or (a ~= a and b ~= b) or math.abs(a - b) <= 1e-6 * math.max(1, math.abs(b))
end

describe("pooling windows against a plain reference", function()
  lm.manual_seed(5)
  it("every small geometry: values and gradients (max: on the chosen element)", function()
    local checked = 0
    for kh = 1, 3 do for kw = 1, 3 do for sh = 1, 3 do for sw = 1, 3 do
      for ph = 0, kh // 2 do for pw = 0, kw // 2 do
        for _, size in ipairs{{1, 1}, {3, 7}, {7, 4}, {6, 6}} do
          local h, w = size[1], size[2]
          if h + 2 * ph >= kh and w + 2 * pw >= kw then
            -- small integers: many ties
            local x = (lm.randn(1, 1, h, w) * 1.5):round()
            local flat = x:view(-1):totable()
            for _, max in ipairs{true, false} do
              local want, at, oh, ow = reference(flat, h, w, kh, kw, sh, sw, ph, pw, max)
              local leaf = x:clone():requires_grad(true)
              local opts = {stride = {sh, sw}, padding = {ph, pw}}
              local y = (max and F.max_pool2d or F.avg_pool2d)(leaf, {kh, kw}, opts)
              local what = string.format("%s k%dx%d s%dx%d p%dx%d on %dx%d", max and "max" or "avg", kh, kw,
                sh, sw, ph, pw, h, w)
              same(y:shape(), {1, 1, oh, ow}, 0, what)
              local got = y:view(-1):totable()
              for k = 1, #want do
                truthy(same_value(got[k], want[k]),
                  string.format("%s output %d: %s, want %s", what, k, got[k], want[k]))
              end
              -- a distinct weight per output: the gradient shows which element each
              -- took (max), or spreads each weight over its window (average)
              local weights = lm.arange(1, oh * ow):view(1, 1, oh, ow)
              local loss = (y * weights):sum()
              loss:backward()
              local g, expect = leaf.grad:view(-1):totable(), {}
              for k = 1, h * w do expect[k] = 0 end
              if max then
                for k = 1, #at do expect[at[k]] = expect[at[k]] + k end
                same(g, expect, 0, what .. " gradient")
              else
                for oi = 0, oh - 1 do for oj = 0, ow - 1 do
                  for ki = 0, kh - 1 do for kj = 0, kw - 1 do
                    local i, j = oi * sh - ph + ki, oj * sw - pw + kj
                    if i >= 0 and i < h and j >= 0 and j < w then
                      expect[i * w + j + 1] = expect[i * w + j + 1] + (oi * ow + oj + 1) / (kh * kw)
                    end
                  end end
                end end
                same(g, expect, 1e-5, what .. " gradient")
              end
              checked = checked + 1
            end
          end
        end
      end end
    end end end end
    truthy(checked > 1500, "geometries checked: " .. checked)
  end)

  it("NaN and -inf follow torch's rules", function()
    local inf, nan = math.huge, 0 / 0
    local x = lm.tensor{{{{1, nan, 3, -inf}, {nan, 2, -inf, -inf}}}}
    local leaf = x:clone():requires_grad(true)
    local y = F.max_pool2d(leaf, 2, {stride = 2})
    local v = y:view(-1):totable()
    truthy(v[1] ~= v[1], "a window holding NaN gives NaN")
    eq(v[2], 3, "-inf loses to a number")
    local loss = (y * lm.tensor{{{{10, 20}}}}):sum()
    loss:backward()
    -- the last NaN (row 2, column 1) takes the first window's gradient
    same(leaf.grad:view(-1):totable(), {0, 0, 20, 0, 10, 0, 0, 0}, 0, "gradient")
    local all = lm.full({1, 1, 2, 2}, -inf):requires_grad(true)
    local z = F.max_pool2d(all, 2)
    eq(z:item(), -inf, "a window of -inf")
    z:sum():backward()
    same(all.grad:view(-1):totable(), {1, 0, 0, 0}, 0, "its first element takes the gradient")
  end)
end)
