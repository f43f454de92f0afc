-- The Lua half of the lumen module. The C bindings build the module table
-- (tensor functions, I/O, runtime) and hand it to this chunk, which adds what
-- is better written in Lua and returns it. `require 'lumen'` gives the result
-- both in the `lumen` host and from a stock lua5.4 through lumen.so.
local lm = ...

local Tensor = lm._tensor_metatable
local methods = Tensor.methods

local print_tensor = require 'lumen.print'
Tensor.__tostring = print_tensor.format

--- Number of elements along dimension 1 (also `#x`).
function methods:nelement() return self:numel() end

--- Shape as a string such as "2x3" (handy in messages).
function methods:shape_string()
  local s = self:shape()
  if #s == 0 then return "scalar" end
  return table.concat(s, "x")
end

lm.Tensor = methods
return lm
