-- F.mmd's fused CPU kernel (core/cpu_mmd.c) against the definition computed
-- in double precision here, value and both gradients, at sizes that cross
-- the kernel's blocks of 64 pairs; the same bits at any thread count; views;
-- what it refuses. tests/lua/torch_spec.lua compares it with PyTorch too.
local lm = require 'lumen'
local F = lm.nn.functional

-- value, dz, dp of weight * MMD(z, p) by the definition, in double precision
local function reference(z, p, bws, weight)
  local Z, P, D = z:totable(), p:totable(), z:size(2)
  local n, m = #Z, #P
  local function k(a, c) -- kernel and its derivative with respect to the squared distance
    local d = 0
    for q = 1, D do d = d + (a[q] - c[q]) ^ 2 end
    local v, dv = 0, 0
    for _, bw in ipairs(bws) do
      local s = -1 / (bw * D)
      v, dv = v + math.exp(s * d), dv + s * math.exp(s * d)
    end
    return v, dv
  end
  local function part(A, B, scale, grad)
    local total = 0
    for i = 1, #A do
      for j = 1, #B do
        local v, dv = k(A[i], B[j])
        total = total + v
        for q = 1, D do grad[i][q] = grad[i][q] + scale * 2 * dv * (A[i][q] - B[j][q]) end
      end
    end
    return total
  end
  local function zeros(rows)
    local g = {}
    for i = 1, rows do g[i] = {}; for q = 1, D do g[i][q] = 0 end end
    return g
  end
  local gz, gp = zeros(n), zeros(m)
  -- each ordered pair once: a row's own set counts it as row and as column (2x)
  local zz = part(Z, Z, 2 / (n * n), gz)
  local pp = part(P, P, 2 / (m * m), gp)
  local zp = part(Z, P, -2 / (n * m), gz)
  part(P, Z, -2 / (n * m), gp)
  local value = zz / (n * n) + pp / (m * m) - 2 * zp / (n * m)
  for _, g in ipairs{gz, gp} do
    for i = 1, #g do for q = 1, D do g[i][q] = g[i][q] * weight end end
  end
  return value * weight, lm.tensor(gz), lm.tensor(gp)
end

local function fused(z, p, opts)
  z, p = z:clone():requires_grad(true), p:clone():requires_grad(true)
  local v = F.mmd(z, p, opts)
  v:backward()
  return v:item(), z.grad, p.grad
end

describe("mmd (fused on the CPU)", function()
  it("matches the definition in double precision, value and both gradients", function()
    lm.manual_seed(3)
    for _, c in ipairs{
      {n = 130, m = 70, d = 2, bw = {0.1, 1, 10, 100, 1000}, weight = 500},
      {n = 65, m = 129, d = 5, bw = {3}, weight = 1},
      {n = 1, m = 2, d = 1, bw = {0.5, 2}, weight = 2},
    } do
      local z, p = lm.randn(c.n, c.d) * 1.5, lm.randn(c.m, c.d)
      local want, wz, wp = reference(z, p, c.bw, c.weight)
      local got, gz, gp = fused(z, p, {bw = c.bw, weight = c.weight})
      local what = string.format("%dx%d against %dx%d", c.n, c.d, c.m, c.d)
      near(got, want, 1e-5 * math.abs(want) + 1e-6, what .. ": value")
      truthy(rel_error(gz, wz) < 1e-5, what .. ": dz relative error " .. rel_error(gz, wz))
      truthy(rel_error(gp, wp) < 1e-5, what .. ": dp relative error " .. rel_error(gp, wp))
    end
  end)

  it("without the prior's gradient (the InfoVAE's case) matches the definition, same bits on 1 to 3 threads", function()
    lm.manual_seed(4)
    local threads = lm.get_num_threads()
    for _, c in ipairs{{n = 130, m = 70}, {n = 40, m = 129}, {n = 128, m = 128}} do
      local z, p = lm.randn(c.n, 2), lm.randn(c.m, 2) * 0.5
      local want, wz = reference(z, p, {0.1, 1, 10}, 3)
      local first
      for _, t in ipairs{1, 2, 3} do
        lm.set_num_threads(t)
        local zg = z:clone():requires_grad(true)
        local v = F.mmd(zg, p, {bw = {0.1, 1, 10}, weight = 3})
        v:backward()
        local what = string.format("%d against %d rows, %d threads", c.n, c.m, t)
        near(v:item(), want, 1e-5 * math.abs(want) + 1e-6, what .. ": value")
        truthy(rel_error(zg.grad, wz) < 1e-5, what .. ": dz relative error " .. rel_error(zg.grad, wz))
        first = first or {v:item(), zg.grad}
        eq(v:item(), first[1], what .. ": the value's bits")
        eq((zg.grad - first[2]):abs():max():item(), 0, what .. ": dz's bits")
      end
    end
    lm.set_num_threads(threads)
  end)

  it("rejects a gradient off by a factor (the check above can fail)", function()
    local z, p = lm.randn(9, 2), lm.randn(7, 2)
    local _, wz = reference(z, p, {1}, 1)
    local _, gz = fused(z, p, {bw = 1})
    truthy(rel_error(gz * 1.0001, wz) > 1e-5, "a 1e-4 error must show")
  end)

  it("gives the same bits on one thread and on two", function()
    local threads = lm.get_num_threads()
    local z, p = lm.randn(200, 2), lm.randn(200, 2)
    lm.set_num_threads(1)
    local v1, z1, p1 = fused(z, p, {bw = {0.1, 1, 10}})
    lm.set_num_threads(2)
    local v2, z2, p2 = fused(z, p, {bw = {0.1, 1, 10}})
    lm.set_num_threads(threads)
    eq(v2, v1, "value")
    eq((z2 - z1):abs():max():item(), 0, "dz")
    eq((p2 - p1):abs():max():item(), 0, "dp")
  end)

  it("takes views: a transposed z gives what its contiguous copy gives", function()
    local zt, p = lm.randn(2, 40), lm.randn(30, 2)
    local a = F.mmd(zt:t(), p, {bw = {1, 10}}):item()
    local b = F.mmd(zt:t():contiguous(), p, {bw = {1, 10}}):item()
    eq(a, b)
  end)

  it("records nothing without gradients and only the gradients asked for", function()
    local z, p = lm.randn(6, 2):requires_grad(true), lm.randn(5, 2)
    F.mmd(z, p):backward()
    truthy(z.grad ~= nil and z.grad:size(1) == 6, "z.grad")
    eq(p.grad, nil, "p.grad")
    local v = lm.no_grad(function() return F.mmd(z, p) end)
    eq(v:requires_grad(), false, "under no_grad")
  end)

  it("refuses bandwidths that are not positive finite numbers", function()
    local z = lm.randn(4, 2)
    raises(function() F.mmd(z, z, {bw = {1, 0}}) end, "mmd: bandwidths must be positive and finite numbers, got 0 at 2")
    raises(function() F.mmd(z, z, {bw = -1}) end, "got -1 at 1")
    raises(function() F.mmd(z, z, {bw = {math.huge}}) end, "got inf at 1")
    raises(function() F.mmd(z, z, {bw = {"1"}}) end, "got 1 at 1")
    raises(function() F.mmd(z, z, {bw = {}}) end, "mmd: between 1 and 32 bandwidths, got 0")
    local many = {}
    for i = 1, 40 do many[i] = i end
    raises(function() F.mmd(z, z, {bw = many}) end, "mmd: between 1 and 32 bandwidths, got 40")
  end)
end)
