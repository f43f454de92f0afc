-- The CPU's activation functions, forward and backward, on one tensor of
-- [8, 96, 56, 56] (ConvNeXt-T's first stage after its expansion is [8, 384,
-- 56, 56]): nanoseconds per element, best of BENCH_REPS (default 5) after
-- two untimed. The peer is bench/unary_ops_torch.py.
--   lumen bench/unary_ops.lua [threads]
local lm = require 'lumen'
local F = lm.nn.functional
lm.set_num_threads(tonumber(arg[1]) or lm.get_num_threads())
lm.manual_seed(1)
local best_ms = dofile((arg[0]:match("^(.*)/") or ".") .. "/best_ms.lua") -- (BENCH_REPS)

local x = lm.randn(8, 96, 56, 56) * 3
local g = lm.randn(8, 96, 56, 56)
local n = x:numel()
local ops = {
  {"relu", F.relu}, {"sigmoid", F.sigmoid}, {"tanh", F.tanh}, {"elu", F.elu}, {"silu", F.silu},
  {"gelu", F.gelu}, {"gelu_tanh", function(t) return F.gelu(t, {approximate = "tanh"}) end},
}
print(string.format("# %s, %d thread(s), [8, 96, 56, 56], ns per element, OpenBLAS %s",
  os.date("!%Y-%m-%d %H:%M UTC"), lm.get_num_threads(), lm.blas_info().kernel or "?"))
for _, op in ipairs(ops) do
  local name, f = op[1], op[2]
  local fwd = best_ms(function() lm.no_grad(function() return f(x) end); collectgarbage() end)
  local xg = x:clone():requires_grad(true)
  local bwd = math.huge
  for r = 1, 6 do
    xg.grad = nil
    local y = f(xg)
    collectgarbage()
    local t = lm.clock()
    y:backward(g)
    if r > 1 then bwd = math.min(bwd, lm.clock() - t) end
  end
  print(string.format("lumen %-10s forward %6.3f ns  backward %6.3f ns", name, fwd * 1e6 / n, bwd * 1e9 / n))
end
