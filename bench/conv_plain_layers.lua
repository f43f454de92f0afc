-- Five plain (ungrouped, undilated) ResNet-sized convolutions on the CPU,
-- forward (no_grad) / forward+backward of sum(y * r) in ms, best of 7 after
-- one untimed: for A/B runs of two builds on the same layers, alternated
-- (bench/RESULTS.md, grouped and dilated convolutions).
--   lumen bench/conv_plain_layers.lua [threads]
local lm = require 'lumen'
local F = lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or 1)
lm.manual_seed(1)

local function best(fn)
  fn()
  local b = math.huge
  for _ = 1, 7 do
    local t = lm.clock()
    fn()
    b = math.min(b, lm.clock() - t)
  end
  return b * 1e3
end

-- input shape, outputs, kernel, stride, padding
local layers = {{{64, 64, 32, 32}, 64, 3, 1, 1}, {{64, 128, 16, 16}, 256, 3, 2, 1}, {{64, 96, 16, 16}, 192, 3, 1, 1},
  {{64, 64, 32, 32}, 128, 1, 2, 0}, {{64, 3, 32, 32}, 96, 3, 1, 1}}
local out = {}
for _, l in ipairs(layers) do
  local shape, o, k, s, p = table.unpack(l)
  local x = lm.randn(shape):requires_grad(true)
  local w = (lm.randn(o, shape[2], k, k) * 0.05):requires_grad(true)
  local opts = {stride = s, padding = p}
  local r = lm.randn(F.conv2d(x:detach(), w:detach(), nil, opts):shape())
  local f = best(function() lm.no_grad(function() return F.conv2d(x, w, nil, opts) end) end)
  local fb = best(function()
    x.grad, w.grad = nil, nil
    local loss = (F.conv2d(x, w, nil, opts) * r):sum()
    loss:backward()
  end)
  out[#out + 1] = string.format("%.1f/%.1f", f, fb)
end
print(table.concat(out, " "))
