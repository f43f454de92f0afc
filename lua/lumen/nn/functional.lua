-- lm.nn.functional: stateless, differentiable layer functions.
local lm = require 'lumen'
local C = lm._functional

local F = {}
for name, fn in pairs(C) do F[name] = fn end

function F.elu(x, alpha) return x:elu(alpha) end
function F.relu(x) return x:relu() end
function F.sigmoid(x) return x:sigmoid() end
function F.tanh(x) return x:tanh() end

--- Inverted dropout: zeroes each element with probability p (the *drop*
--- probability, as in Torch and PyTorch) and scales the rest by 1/(1-p), so
--- evaluation needs no rescaling. The mask comes from the seeded RNG.
function F.dropout(x, p, training)
  if not training or p == 0 then return x end
  if p < 0 or p >= 1 then error(string.format("dropout: p must be in [0, 1), got %g", p), 2) end
  return C._dropout(x, 1 - p) -- 1/(1-p) kept, 0 dropped: x times the mask in one pass
end

--- Mean over the spatial dimensions of [N, C, H, W]: [N, C].
function F.global_avg_pool2d(x)
  if x:dim() ~= 4 then error("global_avg_pool2d: input must be [N, C, H, W], got " .. x:shape_string(), 2) end
  return x:mean(4):mean(3)
end

--- Squared Euclidean distances between the rows of a [N, D] and of b [M, D]
--- (default: a itself): [N, M], ||a_i||^2 + ||b_j||^2 - 2 a_i . b_j in one
--- matrix product (kernels, densities, nearest neighbours).
function F.squared_distances(a, b)
  b = b or a
  if a:dim() ~= 2 or b:dim() ~= 2 or a:size(2) ~= b:size(2) then
    error(string.format("squared_distances: needs a [N, D] and b [M, D], got %s and %s",
      a:shape_string(), b:shape_string()), 2)
  end
  local aa = (a * a):sum(2, true)           -- [N, 1]
  local bb = (b * b):sum(2, true):t()       -- [1, M]
  return aa + bb - lm.matmul(a, b:t()) * 2
end

--- Maximum Mean Discrepancy between samples z [N, D] and prior samples p
--- [M, D], the biased estimate over all pairs (DESIGN.md): mean k(z, z') +
--- mean k(p, p') - 2 mean k(z, p), with k(a, b) = exp(-||a - b||^2 / (bw D)).
--- opts.bw defaults to D; a list of bandwidths sums one kernel per scale (a
--- multi-scale kernel keeps a gradient for points far from the prior, where
--- a single narrow kernel vanishes); opts.weight (default 1) scales the result.
function F.mmd(z, p, opts)
  opts = opts or {}
  if z:dim() ~= 2 or p:dim() ~= 2 or z:size(2) ~= p:size(2) then
    error(string.format("mmd: needs z [N, D] and prior samples [M, D], got %s and %s",
      z:shape_string(), p:shape_string()), 2)
  end
  local D = z:size(2)
  local bws = type(opts.bw) == "table" and opts.bw or {opts.bw or D}
  -- computed once per pair of sets and shared by every bandwidth
  local zz, pp, zp = F.squared_distances(z), F.squared_distances(p), F.squared_distances(z, p)
  local value
  for _, bw in ipairs(bws) do
    local scale = -1 / (bw * D)
    local term = (zz * scale):exp():mean() + (pp * scale):exp():mean() - (zp * scale):exp():mean() * 2
    value = value and value + term or term
  end
  if opts.weight then value = value * opts.weight end
  return value
end

return F
