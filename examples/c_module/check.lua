-- Uses the softsign module from Lua and checks its values and gradients.
--   LUA_CPATH='build/?.so;/where/lumen/is/lib/lua/5.4/?.so;;' lua5.4 check.lua
local lm = require 'lumen'
local softsign = require 'softsign'

local x = lm.tensor{{-2, -0.5, 0}, {0.25, 1, 3}}:requires_grad(true)
local y = softsign(x)
local loss = (y * y):sum()           -- the op inside a bigger graph
loss:backward()

local xs, ys, gs = x:detach():totable(), y:totable(), x.grad:totable()
for i = 1, 2 do
  for j = 1, 3 do
    local v = xs[i][j]
    local s = v / (1 + math.abs(v))
    local g = 2 * s / (1 + math.abs(v)) ^ 2   -- d(s^2)/dx
    assert(math.abs(ys[i][j] - s) < 1e-6, "softsign value at " .. i .. "," .. j)
    assert(math.abs(gs[i][j] - g) < 1e-6, "softsign gradient at " .. i .. "," .. j)
  end
end

-- a wrong input is a Lua error that says what was wrong
local ok, err = pcall(softsign, lm.tensor({1, 2}, 'int32'))
assert(not ok and tostring(err):find("softsign: needs a float32 tensor on the CPU, got int32 on cpu", 1, true),
  "softsign's error for an int32 tensor: " .. tostring(err))
print("softsign: values and gradients match")
