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

-- fn(...) in a coroutine of its own with grad mode `mode` while it runs: when
-- it yields, the caller's coroutine yields the same values with the mode it
-- had, and the mode is `mode` again when it is resumed (the mode is one
-- setting for all coroutines, so a suspended no_grad must not leave it off).
local function run_yielding(mode, fn, ...)
  local co = coroutine.create(fn)
  local results = table.pack(...)
  while true do
    local previous = lm.set_grad_enabled(mode)
    results = table.pack(coroutine.resume(co, table.unpack(results, 1, results.n)))
    lm.set_grad_enabled(previous)
    if not results[1] then error(results[2], 0) end
    if coroutine.status(co) == "dead" then return table.unpack(results, 2, results.n) end
    results = table.pack(coroutine.yield(table.unpack(results, 2, results.n)))
  end
end

--- Runs fn(...) with gradient recording off; returns fn's results. Inside a
--- coroutine, fn may yield: recording is on again (as it was) while it is
--- suspended.
function lm.no_grad(fn, ...)
  if coroutine.isyieldable() then return run_yielding(false, fn, ...) end
  local previous = lm.set_grad_enabled(false)
  local results = table.pack(pcall(fn, ...))
  lm.set_grad_enabled(previous)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

lm.autograd = require 'lumen.autograd'
lm.nn = require 'lumen.nn'
lm.optim = require 'lumen.optim'
lm.data = require 'lumen.data'
lm.json = require 'lumen.json'
lm.models = require 'lumen.models'
lm.plot = require 'lumen.plot'
lm.train = require 'lumen.train'
lm.introspect = require 'lumen.introspect'
lm.explain = require 'lumen.explain'
lm.dist = require 'lumen.dist'
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
