-- Custom differentiable operations with a hand-written backward in Lua:
--
--   local Square = lm.autograd.Function{
--     forward = function(ctx, x) ctx:save_for_backward(x); return x * x end,
--     backward = function(ctx, grad) local x = ctx.saved[1]; return grad * 2 * x end,
--   }
--   local y = Square(x)        -- or Square.apply(x)
--
-- forward runs without recording (its ops are not differentiated); backward
-- receives the gradient of the output and returns one gradient (or nil) per
-- tensor argument of forward, in order.
local lm = require 'lumen'

local autograd = {}

local Context = {}
Context.__index = Context

--- Keeps tensors for backward (ctx.saved[1], ...).
function Context:save_for_backward(...)
  self.saved = table.pack(...)
end

function autograd.Function(def)
  assert(type(def) == "table" and type(def.forward) == "function" and type(def.backward) == "function",
    "autograd.Function: needs a table with forward(ctx, ...) and backward(ctx, grad)")
  local fn = {name = def.name or "custom function"}
  function fn.apply(...)
    local ctx = setmetatable({saved = {n = 0}}, Context)
    local args = table.pack(...)
    local out = lm.no_grad(def.forward, ctx, ...)
    if not lm.is_tensor(out) then
      error(fn.name .. ": forward must return one tensor, got " .. type(out), 2)
    end
    local inputs, positions = {}, {}
    for i = 1, args.n do
      if lm.is_tensor(args[i]) then
        inputs[#inputs + 1] = args[i]
        positions[#positions + 1] = i
      end
    end
    if #inputs > 0 and lm.is_grad_enabled() then
      lm._attach_function(out, inputs, function(grad)
        local grads = table.pack(def.backward(ctx, grad))
        -- backward returns one value per forward argument; keep the tensor ones
        local picked = {}
        for k, pos in ipairs(positions) do picked[k] = grads[pos] end
        return table.unpack(picked, 1, #positions)
      end, fn.name)
    end
    return out
  end
  return setmetatable(fn, {__call = function(_, ...) return fn.apply(...) end})
end

return autograd
