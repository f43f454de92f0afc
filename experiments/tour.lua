-- A short tour of Lumen's tensors, with timings on this machine.
--   lumen experiments/tour.lua [--threads T] [--out DIR]
-- Writes DIR/tour.safetensors and DIR/timings.json (DIR: results/tour).
local lm = require 'lumen'
local cli = require 'lumen.cli'

local opts = cli.parse(arg, {threads = 0, out = "results/tour"},
  "A short tour of Lumen's tensors: lumen experiments/tour.lua [options] (--threads 0: all cores)")
cli.check(opts, {threads = "count0"})
if opts.out == "" then cli.usage_error("option --out needs a folder, got ''") end -- (it failed at the end)
local threads = opts.threads > 0 and opts.threads or lm.get_num_threads()
lm.set_num_threads(threads)
lm.manual_seed(42)
print(string.format("Lumen %s, %d thread(s), CUDA: %s", lm.version, threads,
  lm.cuda.available() and lm.cuda.status() or "no (" .. lm.cuda.status() .. ")"))

local function section(title) print("\n== " .. title) end

section("tensors")
local x = lm.tensor{{1, 2, 3}, {4, 5, 6}}
print(x)
print("shape", table.concat(x:shape(), "x"), "dtype", x:dtype(), "elements", x:numel())
print("x:t() is a view with strides " .. table.concat(x:t():stride(), ",") ..
  ", contiguous: " .. tostring(x:t():is_contiguous()))
print("row 2:", x[2])

section("broadcasting and reductions")
local bias = lm.tensor{10, 20, 30}
print("x + bias =\n" .. tostring(x + bias))
print("column sums", x:sum(1))
local values, indices = x:max(2)
print("row maxima", values, "at columns", indices)

section("random numbers (Philox, reproducible)")
lm.manual_seed(7)
local a = lm.randn(100000)
lm.manual_seed(7)
local b = lm.randn(100000)
print(string.format("randn(100000): mean %.4f, std %.4f; same seed, same numbers: %s",
  a:mean():item(), a:std():item(), tostring((a - b):abs():max():item() == 0)))

section("timings")
local function time(fn, reps)
  fn() -- warm up (first touch of memory, BLAS threads)
  local t0 = lm.clock()
  for _ = 1, reps do fn() end
  return (lm.clock() - t0) / reps
end

local timings = {}
for _, shape in ipairs{{128, 784, 200}, {128, 200, 200}, {1024, 1024, 1024}} do
  local m, k, n = shape[1], shape[2], shape[3]
  local A, B = lm.randn(m, k), lm.randn(k, n)
  local reps = m * k * n > 1e8 and 5 or 200
  local s = time(function() return lm.matmul(A, B) end, reps)
  local gflops = 2 * m * k * n / s / 1e9
  timings[#timings + 1] = string.format('"matmul_%dx%dx%d_gflops": %.2f', m, k, n, gflops)
  print(string.format("matmul %4dx%4d @ %4dx%4d: %8.3f ms  %6.1f GFLOP/s", m, k, k, n, s * 1e3, gflops))
end
local big = lm.randn(1000, 1000)
local s_add = time(function() return big + big end, 50)
local s_elu = time(function() return big:elu() end, 50)
local s_sum = time(function() return big:sum(1) end, 50)
print(string.format("add 1M elements: %.3f ms (%.1f GB/s)", s_add * 1e3, 12e6 / s_add / 1e9))
print(string.format("elu 1M elements: %.3f ms", s_elu * 1e3))
print(string.format("column sums of 1000x1000: %.3f ms", s_sum * 1e3))
timings[#timings + 1] = string.format('"add_1M_ms": %.4f', s_add * 1e3)
timings[#timings + 1] = string.format('"elu_1M_ms": %.4f', s_elu * 1e3)

section("files")
lm.mkdir(opts.out)
lm.save(opts.out .. "/tour.safetensors", {x = x, a = a}, {made_by = "experiments/tour.lua"})
local back, meta = lm.load(opts.out .. "/tour.safetensors")
print("saved and loaded " .. opts.out .. "/tour.safetensors:", back.x:shape_string(), back.a:shape_string(),
  "metadata made_by = " .. meta.made_by)
lm.write_file(opts.out .. "/timings.json",
  "{\n  \"threads\": " .. threads .. ",\n  " .. table.concat(timings, ",\n  ") .. "\n}\n")
print("timings in " .. opts.out .. "/timings.json")

section("memory")
local stats = lm.memory_stats()
print(string.format("live %.1f MB, cached for reuse %.1f MB, %d allocations (%d from the cache)",
  stats.live_bytes / 2^20, stats.cached_bytes / 2^20, stats.allocations, stats.cache_hits))
