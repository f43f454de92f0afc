-- The size arguments of 2-D convolutions and pools as torch takes them: one
-- value for both dimensions or a pair {h, w}, and a convolution's padding
-- strings 'valid' (none) and 'same' (the output as large as the input at
-- stride 1). F.conv2d, nn.Conv2d and the pooling layers share these.
local checks = require 'lumen.nn.checks'

local conv_args = {}

local WANTED = {[0] = "a non-negative integer", [1] = "a positive integer"}

--- {h, w} from v: an integer >= lo (0 or 1) for both dimensions, or a pair
--- {h, w} of them. Else an error "fname: what must be ..." at `level` (as
--- error's, counted from the function calling pair); `also` names other
--- values the caller takes, for the message.
function conv_args.pair(v, lo, what, fname, level, also)
  if math.type(v) == "integer" and v >= lo then return {v, v} end
  if type(v) == "table" and #v == 2 and math.type(v[1]) == "integer" and v[1] >= lo
    and math.type(v[2]) == "integer" and v[2] >= lo then
    return {v[1], v[2]}
  end
  local given = checks.shown(v)
  if type(v) == "table" then
    given = #v == 0 and "a table" or #v ~= 2 and string.format("a table of length %d", #v)
      or string.format("{%s, %s}", checks.shown(v[1]), checks.shown(v[2]))
  end
  error(string.format("%s: %s must be %s or a pair {h, w} of them%s, got %s", fname, what, WANTED[lo],
    also or "", given), level + 1)
end

--- A pair as torch's repr and F.conv2d take it: one number where both agree.
function conv_args.compact(p) return p[1] == p[2] and p[1] or {p[1], p[2]} end

--- A size or a pair for a message or a repr: 3, or {3, 1}.
function conv_args.shown(v)
  if type(v) == "table" then return string.format("{%s, %s}", tostring(v[1]), tostring(v[2])) end
  return tostring(v)
end

--- torch's padding 'same' (stride 1) for kernel {kh, kw} and dilation {dh,
--- dw}: along each dimension the total d (k - 1), total // 2 before (top,
--- left) and the rest after (bottom, right). Returns before, after as pairs.
function conv_args.same_padding(kernel, dilation)
  local before, after = {}, {}
  for i = 1, 2 do
    local total = dilation[i] * (kernel[i] - 1)
    before[i], after[i] = total // 2, total - total // 2
  end
  return before, after
end

return conv_args
