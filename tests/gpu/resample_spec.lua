-- F.pad and F.interpolate on the GPU against the CPU reference (one core op,
-- core/cpu_resample.c and kernels/cuda_resample.cu): every mode, on
-- transposed inputs, forward and input gradient. Tolerance (max |gpu - cpu| /
-- max(|cpu|, 1e-3)): 1e-6 (the same taps; the GPU may fuse a multiply-add,
-- and its 2-D backward adds with atomics in no fixed order). Skips, saying
-- why, when no GPU answers.
local lm = require 'lumen'
local F = lm.nn.functional

local DEV = dofile("tests/helpers/gpu_device.lua")("resample_spec", skip)
local TOL = 1e-6

local function close(gpu, cpu, what)
  eq(gpu:device(), DEV, what .. " lives on the GPU")
  local g = gpu:to('cpu')
  eq(table.concat(g:shape(), "x"), table.concat(cpu:shape(), "x"), what .. " shape")
  if cpu:numel() == 0 then return end
  local e = (g - cpu):abs():max():item() / math.max(cpu:abs():max():item(), 1e-3)
  truthy(e <= TOL, string.format("%s: relative error %.3g over %.0g", what, e, TOL))
end

-- f on a CPU and a GPU copy of x (transposed in its last two dimensions when
-- `transposed`): outputs and the gradients of sum(out * r) compared
local function check(what, x, f, transposed)
  local xc, xg = x:clone():requires_grad(true), x:clone():to(DEV):requires_grad(true)
  local function view(t)
    if not transposed then return t end
    local d = t:dim()
    return t:transpose(d - 1, d):contiguous():transpose(d - 1, d)
  end
  local out_c, out_g = f(view(xc)), f(view(xg))
  close(out_g, out_c, what)
  local r = lm.randn(out_c:shape())
  ;(out_c * r):sum():backward()
  ;(out_g * r:to(DEV)):sum():backward()
  close(xg.grad, xc.grad, what .. " input gradient")
end

describe("gpu F.pad and F.interpolate", function()
  lm.manual_seed(7)
  local img, line = lm.randn(2, 3, 9, 11), lm.randn(2, 3, 13)
  it("pads in every mode", function()
    check("constant", img, function(x) return F.pad(x, {2, -1, 1, 3}, {value = 0.5}) end, true)
    for _, mode in ipairs{"reflect", "replicate", "circular"} do
      check(mode, img, function(x) return F.pad(x, {3, 2, 1, 4}, {mode = mode}) end, true)
      check(mode .. " 1-D", line, function(x) return F.pad(x, {5, -2}, {mode = mode}) end)
    end
  end)
  it("interpolates in every mode", function()
    for _, mode in ipairs{"nearest", "nearest-exact", "bilinear", "bicubic"} do
      for _, scale in ipairs{2, 0.5, 1.7} do
        check(mode .. " x" .. scale, img, function(x) return F.interpolate(x, {scale_factor = scale, mode = mode}) end,
          scale == 1.7)
      end
    end
    check("bilinear corners", img,
      function(x) return F.interpolate(x, {size = {20, 5}, mode = "bilinear", align_corners = true}) end)
    check("linear", line, function(x) return F.interpolate(x, {size = 30, mode = "linear"}) end)
    check("nearest 1-D", line, function(x) return F.interpolate(x, {scale_factor = 0.6}) end)
  end)
end)
