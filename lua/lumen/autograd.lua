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
local checks = require 'lumen.nn.checks'

local autograd = {}

local Context = {}
Context.__index = Context

--- Keeps tensors for backward (ctx.saved[1], ...).
function Context:save_for_backward(...)
  self.saved = table.pack(...)
end

--- Anomaly mode: with detect_anomaly(true) every recorded op's output and
--- every gradient of a backward pass is checked, and the first NaN or Inf
--- stops with an error naming the op, what held it and its shape. Off by
--- default (each check reads a value back). detect_anomaly() reads the mode.
function autograd.detect_anomaly(flag) return lm._detect_anomaly(flag) end

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
    local returned_input = out:requires_grad()
    for i = 1, args.n do
      if lm.is_tensor(args[i]) then
        inputs[#inputs + 1] = args[i]
        positions[#positions + 1] = i
        if rawequal(out, args[i]) then returned_input = true end
      end
    end
    -- the node goes on the output: an input handed back (identity, gradient
    -- reversal) gets a new tensor of its own to carry it, sharing its storage
    if returned_input then out = lm.no_grad(function() return out:detach() end) end
    -- the node's backward holds ctx: a saved output would hold the node in
    -- turn (a cycle nothing frees); a detached view of it reads the same memory
    -- (in ctx.saved, a field, ctx.y = y, or a plain table inside it,
    -- ctx.list = {y}, at any depth; tables with a metatable, modules and
    -- other objects, are the caller's and left alone)
    local detached
    local function unhook(t, seen)
      seen[t] = true
      for k, v in pairs(t) do
        if rawequal(v, out) then
          detached = detached or lm.no_grad(function() return out:detach() end)
          rawset(t, k, detached)
        elseif type(v) == "table" and not seen[v] and getmetatable(v) == nil then
          unhook(v, seen)
        end
      end
    end
    unhook(ctx, {})
    if #inputs > 0 and lm.is_grad_enabled() then
      -- the saved tensors' versions: backward refuses any changed in place since, as the built-in ops do
      local versions = {}
      for i = 1, ctx.saved.n or #ctx.saved do
        if lm.is_tensor(ctx.saved[i]) then versions[i] = lm._storage_version(ctx.saved[i]) end
      end
      -- what the check of backward's results needs of the arguments (not the arguments: the closure lives
      -- as long as the graph)
      local nargs, kinds = args.n, {}
      for i = 1, args.n do kinds[i] = lm.is_tensor(args[i]) and "tensor" or type(args[i]) end
      lm._attach_function(out, inputs, function(grad)
        for i, v in pairs(versions) do
          if lm._storage_version(ctx.saved[i]) ~= v then
            error(string.format("a tensor saved by %s (ctx.saved[%d]) for the gradient was modified in place "
              .. "afterwards; compute it out of place (or clone it) instead", fn.name, i), 0)
          end
        end
        local grads = table.pack(def.backward(ctx, grad))
        -- backward returns one value per forward argument (nil for those
        -- without a gradient; trailing nils may be left out): a value in the
        -- place of an argument that is not a tensor means the places shifted
        if grads.n == 0 then
          error(string.format("%s returned nothing: return one gradient (or nil) per forward argument (%d)",
            fn.name, nargs), 0)
        end
        for i = 1, grads.n do
          if grads[i] ~= nil and kinds[i] ~= "tensor" then
            error(string.format("%s returned a %s as result %d, where forward's argument %d is %s: return one "
              .. "gradient (or nil) per forward argument, in order (%d)", fn.name, lm.is_tensor(grads[i]) and "tensor"
              or type(grads[i]), i, i, kinds[i] and ("a " .. kinds[i]) or "missing", nargs), 0)
          end
        end
        local picked = {}
        for k, pos in ipairs(positions) do picked[k] = grads[pos] end
        return table.unpack(picked, 1, #positions)
      end, fn.name)
    end
    return out
  end
  return setmetatable(fn, {__call = function(_, ...) return fn.apply(...) end})
end

--- Compares the gradients the tape computes for fn(inputs...) with central
--- finite differences, element by element. fn's output is reduced to a scalar
--- with fixed random weights, so non-scalar outputs are checked in every
--- component. Returns true, or false and a message naming the input, the
--- element and both values. The inputs' .grad, and the graph a non-leaf
--- input belongs to, are left as they were (other tensors fn reaches, such
--- as a model's parameters, gain their gradients as after a backward).
---
--- Tolerances (float32): a difference quotient with step eps carries rounding
--- noise of about 1e-7 * |f| / eps and truncation error of order eps^2; with
--- eps = 1e-2 and |f| of order 1-10 both stay near 1e-4 to 1e-3 (measured over
--- the suite: the largest miss is 3.3e-4 relative, division near 0.5). The
--- defaults, atol = 1e-3 and rtol = 2e-3, keep a margin over that and still
--- reject a backward 1 % off wherever the gradient exceeds 0.13
--- (tests/lua/gradcheck_spec.lua's negative tests); opts.eps, opts.atol and
--- opts.rtol override them.
function autograd.gradcheck(fn, inputs, opts)
  checks.callable(fn, "fn", "gradcheck")
  checks.table(inputs, "inputs (a list of fn's arguments)", "gradcheck")
  opts = checks.options(opts, "gradcheck")
  local eps, atol, rtol = opts.eps or 1e-2, opts.atol or 1e-3, opts.rtol or 2e-3
  local out = fn(table.unpack(inputs))
  if not lm.is_tensor(out) then error("gradcheck: fn must return a tensor, got " .. checks.shown(out), 2) end
  local weights = lm.no_grad(function() return lm.randn(out:shape(), out:device()) end)
  local function objective()
    return lm.no_grad(function() return (fn(table.unpack(inputs)) * weights):sum():item() end)
  end
  -- by tensor, not by place: a tensor passed twice has one gradient (both
  -- uses add up in it) and is perturbed for both at once. A non-leaf input
  -- (a view made from a leaf) goes in as a leaf view of the same memory:
  -- the backward pass stops there, leaving the caller's graph and its leaf
  -- as they were.
  local checked, kept, analytic_of, stand_in = {}, {}, {}, {}
  local args = {}
  for k, x in ipairs(inputs) do
    args[k] = x
    if lm.is_tensor(x) and x:requires_grad() then
      if not checked[x] then
        checked[x] = true
        if x:is_leaf() then
          kept[x] = x.grad -- the caller's gradient, given back below
          x.grad = nil
        else
          stand_in[x] = x:detach():requires_grad(true)
        end
      end
      args[k] = stand_in[x] or x
    end
  end
  local loss = (fn(table.unpack(args)) * weights):sum()
  loss:backward()
  for x in pairs(checked) do
    local leaf = stand_in[x] or x
    analytic_of[x] = leaf.grad
    if leaf == x then x.grad = kept[x] end -- the caller's own (nil when it had none)
  end
  local done = {}
  for k, x in ipairs(inputs) do
    if lm.is_tensor(x) and x:requires_grad() and not done[x] then
      done[x] = true
      local analytic = analytic_of[x] and analytic_of[x]:contiguous():view(-1):totable() or {}
      -- perturb through a flat view of the same storage when x is contiguous,
      -- else through a contiguous base the caller made x a view of
      local n = x:numel()
      for i = 1, n do
        local idx, rest = {}, i - 1
        local shape = x:shape()
        for d = #shape, 1, -1 do idx[d] = rest % shape[d] + 1; rest = rest // shape[d] end
        local function element()
          local v = x
          for d = 1, #idx - 1 do v = v:select(1, idx[d]) end
          return v, idx[#idx]
        end
        local v, last = element()
        local old
        lm.no_grad(function()
          if #idx == 0 then old = x:item() else old = v[last] end
        end)
        local function set(val)
          lm.no_grad(function()
            if #idx == 0 then x:fill_(val) else v[last] = val end
          end)
        end
        set(old + eps)
        local fp = objective()
        set(old - eps)
        local fm = objective()
        set(old)
        local numeric = (fp - fm) / (2 * eps)
        local a = analytic[i] or 0
        if math.abs(numeric - a) > atol + rtol * math.abs(numeric) then
          return false, string.format("input %d, element %d: analytic %.6g, numeric %.6g", k, i, a, numeric)
        end
      end
    end
  end
  return true
end

return autograd
