-- nn.MultiheadAttention asked for its weights under no_grad (the ViT benchmark's layer: 128 images of 65
-- tokens, dim 96, 3 heads): the fused op against the composed form, forced by a softmax that is not
-- Lumen's own; alternated, best of 9 each round.  lumen bench/mha_weights.lua [threads]
local lm = require 'lumen'
local nn, F = lm.nn, lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or 1)
lm.manual_seed(1)
local mha = nn.MultiheadAttention(96, 3):eval()
local x = lm.randn(128, 65, 96)
local real = F.softmax
local function best(composed)
  if composed then F.softmax = function(...) return real(...) end end
  local b = math.huge
  for _ = 1, 9 do
    local t = lm.clock()
    lm.no_grad(function() return mha(x, x, x) end)
    b = math.min(b, lm.clock() - t)
  end
  F.softmax = real
  return b * 1e3
end
for round = 1, 3 do
  print(string.format("round %d, %d thread(s): fused %.2f ms, composed %.2f ms", round, lm.get_num_threads(),
    best(false), best(true)))
end
