-- The Lua half of the lumen module. The C bindings build the module table
-- (tensor functions, autograd, layer kernels, I/O, runtime) and hand it to
-- this chunk, which adds what is better written in Lua and returns it.
-- `require 'lumen'` gives the result in the `lumen` host and from a stock
-- lua5.4 through lumen.so.
local lm = ...
package.loaded['lumen'] = lm -- submodules below require 'lumen' themselves

local Tensor = lm._tensor_metatable
local methods = Tensor.methods

local print_tensor = require 'lumen.print'
Tensor.__tostring = print_tensor.format

--- Number of elements (alias of numel, as in Torch).
function methods:nelement() return self:numel() end

--- Shape as a string such as "2x3" (handy in messages).
function methods:shape_string()
  local s = self:shape()
  if #s == 0 then return "scalar" end
  return table.concat(s, "x")
end

lm.Tensor = methods

-- lm.write_file(path, contents) and lm.mkdir(path) are in C (bindings/l_files.c).

--- Runs fn(...) with gradient recording off; returns fn's results. The
--- mode is one setting for the whole Lua state, as torch's is per thread: a
--- coroutine that yields inside fn leaves recording off until it is resumed
--- and fn returns.
function lm.no_grad(fn, ...)
  if type(fn) ~= "function" then
    local mt = getmetatable(fn)
    if not (mt and mt.__call) then error("no_grad: the argument must be a function to run, got " .. type(fn), 2) end
  end
  local previous = lm.set_grad_enabled(false)
  local results = table.pack(pcall(fn, ...))
  lm.set_grad_enabled(previous)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

--- Mixed precision. lm.autocast('bfloat16', fn, ...) runs fn(...) with
--- every matrix product and convolution taking its operands rounded to
--- bfloat16 and accumulating in float32, and returns fn's results; tensors,
--- parameters and gradients stay float32, and the backward pass of what fn
--- recorded rounds as its forward did, wherever backward is called.
--- lm.autocast('bfloat16') without fn turns it on for the Lua state, and
--- lm.autocast(false) (or 'float32') off; both return the previous mode
--- ('bfloat16' or nil), which lm.get_autocast() also reads. One mode for
--- the whole state, like lm.no_grad's: a coroutine that yields inside fn
--- leaves the mode on until it is resumed and fn returns.
function lm.autocast(dtype, ...)
  local given, fn = select("#", ...), ...
  local mt = getmetatable(fn)
  if given > 0 and type(fn) ~= "function" and not (mt and mt.__call) then
    error("autocast: the second argument must be a function to run, got " .. type(fn), 2)
  end
  local ok, previous = pcall(lm._set_autocast, dtype)
  if not ok then error(previous, 2) end
  if given == 0 then return previous end
  local results = table.pack(pcall(fn, select(2, ...)))
  lm._set_autocast(previous)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

lm.autograd = require 'lumen.autograd'

-- x:to(device) records the move when x requires gradients, as torch's .to
-- does: the gradient goes back to x's device (a move between devices was a
-- cut in the graph, and x.grad stayed nil). Conversions of dtype and moves
-- that need no gradient take the C method directly.
do
  local move = methods.to
  local ToDevice = lm.autograd.Function{
    name = "to",
    forward = function(ctx, x, device)
      ctx.from = x:device()
      return move(x, device)
    end,
    backward = function(ctx, grad) return move(grad, ctx.from) end,
  }
  local function moved(x, what)
    if (what == "cpu" or what == "cuda") and lm.is_tensor(x) and x:requires_grad() and lm.is_grad_enabled()
        and x:device() ~= what then
      return ToDevice(x, what)
    end
    return move(x, what)
  end
  function methods.to(x, what)
    if type(what) ~= "string" then
      error("to: expected a device ('cpu', 'cuda') or a dtype ('float32', 'int32', 'uint8'), got "
        .. (what == nil and "nothing" or "a " .. type(what)), 2)
    end
    local ok, out = pcall(moved, x, what)
    if not ok then require('lumen.nn.checks').reraise(out, 2) end -- at the caller's line
    return out
  end
end

lm.nn = require 'lumen.nn'
require 'lumen.conveniences' -- tensor methods and creation functions composed in Lua
lm.optim = require 'lumen.optim'
lm.data = require 'lumen.data'
lm.json = require 'lumen.json'
lm.models = require 'lumen.models'
lm.plot = require 'lumen.plot'
lm.train = require 'lumen.train'
lm.introspect = require 'lumen.introspect'
lm.explain = require 'lumen.explain'
lm.dist = require 'lumen.dist'
lm.cuda.graph = require('lumen.cuda_graph').graph
lm.evaluate = lm.train.evaluate

--- Prints the reference entry of a function, method or module (lumen.help).
function lm.help(...) return require('lumen.help').help(...) end

-- An installed Lumen also looks for data sets in PREFIX/share/lumen/data.
if lm._share_dir then
  table.insert(lm.data.default_roots, #lm.data.default_roots, lm._share_dir .. "/data")
end

-- A misspelt name on lm, lm.nn or lm.optim (and on tensors and modules) is an
-- error naming the closest names: "lm.nn has no 'BatchNorm'; did you mean ...?"
local help = require 'lumen.help'
help.strict(lm.nn, "lm.nn")
help.strict(lm.optim, "lm.optim")
help.strict(lm, "lm")
return lm
