-- The CPU convolution algorithms of lm.set_conv_algorithm, for specs that
-- run their cases under each:
--   local algorithms = dofile("tests/helpers/conv_algorithms.lua")
--   for _, a in ipairs(algorithms.available()) do algorithms.with(a, fn) end
local lm = require 'lumen'

local M = {}

--- Every choice this build offers: auto, gemm, winograd, and direct where
--- it is compiled (AVX-512 builds).
function M.available()
  local list = {"auto", "gemm", "winograd"}
  local before = lm.get_conv_algorithm()
  if pcall(lm.set_conv_algorithm, "direct") then list[#list + 1] = "direct" end
  lm.set_conv_algorithm(before)
  return list
end

--- fn() under `algorithm`, the choice put back afterwards; fn's error
--- passes through, its result is returned.
function M.with(algorithm, fn)
  local before = lm.get_conv_algorithm()
  lm.set_conv_algorithm(algorithm)
  local ok, result = pcall(fn)
  lm.set_conv_algorithm(before)
  if not ok then error(result, 0) end
  return result
end

return M
