-- lm.dist across processes: runs the scripts of tests/mpi/ under
-- `mpirun --oversubscribe -n K` with the lumen program of this build
-- (LUMEN_BUILD_DIR, or build/), and once more as one plain process (a world
-- of one). Skips where mpirun or this build's MPI support is missing (CI
-- installs openmpi-bin and libopenmpi-dev, so there it fails instead).
local root = io.popen("pwd"):read("l")
local build = os.getenv("LUMEN_BUILD_DIR") or "build"
local lumen = (build:sub(1, 1) == "/" and build or root .. "/" .. build) .. "/lumen"

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

local have_mpirun = run("command -v mpirun >/dev/null")
local _, built = run(string.format("'%s' -e 'io.write(tostring(lm.dist.available()))'", lumen))

-- MPI leaks by design at exit: LeakSanitizer would fail every rank of an
-- ASan build, so leak checking is off in the mpirun processes only. In
-- containers without ptrace rights Open MPI's single-copy shared memory
-- fails: plain copies are as fast at these sizes.
local env = "OMPI_MCA_btl_vader_single_copy_mechanism=none "
if os.getenv("LUMEN_SANITIZED") then
  env = env .. "ASAN_OPTIONS=quarantine_size_mb=32:detect_leaks=0 "
end

local function mpirun(k, script, ...)
  local args = table.concat({...}, " ")
  return run(string.format("%stimeout 60 mpirun --allow-run-as-root --oversubscribe -n %d '%s' tests/mpi/%s %s",
    env, k, lumen, script, args))
end

local function plain(script, ...) -- a world of one: MPI never starts, LeakSanitizer stays on
  return run(string.format("'%s' tests/mpi/%s %s", lumen, script, table.concat({...}, " ")))
end

local function count(text, needle)
  local n, at = 0, 1
  while true do
    local s, e = text:find(needle, at, true)
    if not s then return n end
    n, at = n + 1, e + 1
  end
end

local function need_mpi()
  if not have_mpirun then skip("mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)", true) end
  if built ~= "true" then skip("this Lumen was built without MPI (-DLUMEN_MPI)", true) end
end

describe("lm.dist in one process", function()
  it("is a world of one where every collective works", function()
    local ok, out = plain("collectives.lua")
    truthy(ok, out)
    truthy(out:find("collectives ok 0/1", 1, true), out)
  end)

  it("gathers, gathers with a backward and draws a global batch's dropout in a world of one", function()
    local ok, out = plain("gather.lua")
    truthy(ok, out)
    truthy(out:find("gather ok 0/1", 1, true), out)
  end)

  it("shards nothing in a world of one", function()
    local ok, out = plain("shard.lua")
    truthy(ok, out)
    truthy(out:find("shard ok 0/1", 1, true), out)
  end)
end)

describe("lm.dist under mpirun", function()
  it("refuses several processes of a build without MPI", function()
    if not have_mpirun then skip("mpirun is not installed", true) end
    if built == "true" then skip("this build has MPI") end
    local ok, out = run(string.format(
      "%stimeout 60 mpirun --allow-run-as-root --oversubscribe -n 2 '%s' -e 'lm.dist.rank()'", env, lumen))
    truthy(not ok, out)
    truthy(out:find("built without MPI", 1, true), out)
  end)

  it("gives every rank rank 0's running statistics before validation: one model, one early stop", function()
    need_mpi()
    local prefix = os.tmpname()
    local ok, out = mpirun(2, "train_bn.lua", prefix)
    truthy(ok, out)
    local r0, r1 = lm.load(prefix .. ".0.safetensors"), lm.load(prefix .. ".1.safetensors")
    for name, t in pairs(r0) do
      eq((t:float() - r1[name]:float()):abs():max():item(), 0, name .. ": the ranks' states are bit-identical")
    end
    truthy(r0["1.running_mean"], "the BatchNorm's running mean is in the state")
    local v0 = io.open(prefix .. ".0.txt"):read("a")
    eq(io.open(prefix .. ".1.txt"):read("a"), v0, "the ranks' validation losses")
    truthy(select(2, v0:gsub("\n", "")) >= 2, "validated more than once: " .. v0)
    for _, suffix in ipairs{".0.safetensors", ".1.safetensors", ".0.txt", ".1.txt", ""} do
      os.remove(prefix .. suffix)
    end
  end)

  for _, k in ipairs{2, 3} do
    it("computes every collective, op and dtype on " .. k .. " ranks", function()
      need_mpi()
      local ok, out = mpirun(k, "collectives.lua")
      truthy(ok, out)
      for r = 0, k - 1 do truthy(out:find(string.format("collectives ok %d/%d", r, k), 1, true), out) end
    end)
  end

  it("shards every epoch: each sample once, the global batch cut in rank order", function()
    need_mpi()
    local ok, out = mpirun(2, "shard.lua")
    truthy(ok, out)
    truthy(out:find("shard ok 0/2", 1, true) and out:find("shard ok 1/2", 1, true), out)
  end)

  it("trains an MLP on 2 ranks (batch 16 each) like one process with batch 32", function()
    need_mpi()
    local prefix = os.tmpname()
    local ok, out = mpirun(2, "train_mlp.lua", "dist", prefix)
    truthy(ok, out)
    eq(count(out, "epoch 2 iter 20"), 1, "only rank 0 prints: " .. out)
    local ok1, out1 = plain("train_mlp.lua", "single", prefix .. ".single")
    truthy(ok1, out1)
    local r0, r1 = lm.load(prefix .. ".0.safetensors"), lm.load(prefix .. ".1.safetensors")
    local single = lm.load(prefix .. ".single.0.safetensors")
    local names = 0
    for name, t in pairs(single) do
      names = names + 1
      eq((r0[name] - r1[name]):abs():max():item(), 0, name .. ": the ranks' parameters are bit-identical")
      local diff = (r0[name] - t):abs():max():item()
      truthy(diff <= 1e-5, string.format("%s: %.3g from one process with batch 32", name, diff))
    end
    eq(names, 4)
    for _, suffix in ipairs{".0.safetensors", ".1.safetensors", ".single.0.safetensors", ""} do
      os.remove(prefix .. suffix)
    end
  end)

  for _, k in ipairs{2, 3} do
    it("gathers to one rank and gathers rows with a backward on " .. k .. " ranks", function()
      need_mpi()
      local ok, out = mpirun(k, "gather.lua")
      truthy(ok, out)
      for r = 0, k - 1 do truthy(out:find(string.format("gather ok %d/%d", r, k), 1, true), out) end
    end)
  end

  -- parameters of a dist run (OUT.0 and OUT.1) against one process (OUT.single.0)
  local function compare_runs(prefix, tolerance, expect)
    local r0, r1 = lm.load(prefix .. ".0.safetensors"), lm.load(prefix .. ".1.safetensors")
    local single = lm.load(prefix .. ".single.0.safetensors")
    local names = 0
    for name, t in pairs(single) do
      names = names + 1
      eq((r0[name] - r1[name]):abs():max():item(), 0, name .. ": the ranks' parameters are bit-identical")
      local diff = (r0[name] - t):abs():max():item()
      truthy(diff <= tolerance, string.format("%s: %.3g from one process", name, diff))
    end
    eq(names, expect)
    for _, suffix in ipairs{".0.safetensors", ".1.safetensors", ".single.0.safetensors", ""} do
      os.remove(prefix .. suffix)
    end
  end

  -- measured: at most 2e-6 from one process (the order of float sums);
  -- without the global batch's dropout masks the net is 0.15 away, with each
  -- rank's own MMD the estimator 0.97, with per-rank standardisation 0.27
  it("takes the introspection's data-parallel steps (dropout and noise, InfoVAE, estimator) as one process",
    function()
      need_mpi()
      local prefix = os.tmpname()
      local ok, out = mpirun(2, "introspect_steps.lua", "dist", prefix)
      truthy(ok, out)
      local ok1, out1 = plain("introspect_steps.lua", "single", prefix .. ".single")
      truthy(ok1, out1)
      compare_runs(prefix, 1e-5, 29)
    end)

  -- The whole experiment on generated data, as one process and under
  -- `mpirun -n 2` (unchanged command line). Measured differences: the
  -- classifier's parameters 1e-7, the InfoVAE's and the estimator's up to
  -- 4e-5 with OpenBLAS's Haswell kernels and 5e-4 with its Cooperlake ones
  -- (their products round otherwise on half batches, and training carries
  -- it on), the metrics below 2e-4 (latent means); a pipeline that diverges
  -- (dropout masks, MMD per rank, per-rank standardisation) moves these
  -- metrics by 0.01 to 1.6, and the steps' parameters (above) by 0.15 to 0.97.
  it("gives the MNIST introspection experiment's metrics on 2 ranks as one process", function()
    need_mpi()
    local dir = os.tmpname()
    os.remove(dir)
    dofile("tests/helpers/fake_mnist.lua").write(dir, 600, 200)
    local args = "--data-dir " .. dir .. " --cycles 2 --ae-epochs 2 --est-epochs 2 --est-period 20 --est-cycles 3 "
      .. "--trajectory-samples 50 "
      .. "--threads 1 --out " .. dir
    local ok1, out1 = run(string.format("'%s' experiments/introspect_mnist.lua %s/one", lumen, args))
    local ok2, out2 = run(string.format("%stimeout 120 mpirun --allow-run-as-root --oversubscribe -n 2 '%s' "
      .. "experiments/introspect_mnist.lua %s/two", env, lumen, args))
    local function read(path)
      local f = io.open(path)
      if not f then return nil end
      local text = f:read("a")
      f:close()
      return text
    end
    local m1, m2 = read(dir .. "/one/metrics.json"), read(dir .. "/two/metrics.json")
    local p1, p2 = {}, {}
    for _, name in ipairs{"classifier", "autoencoder", "estimator_recording"} do
      if ok1 and ok2 then
        p1[name], p2[name] = lm.load(dir .. "/one/" .. name .. ".safetensors"), lm.load(dir .. "/two/" .. name ..
          ".safetensors")
      end
    end
    local files = {}
    for _, f in ipairs{"index.html", "atlas.html", "map_train.png", "map_error.png", "trajectories.png",
      "estimator.safetensors", "classifier_run/metrics.json"} do
      if read(dir .. "/two/" .. f) then files[#files + 1] = f end
    end
    local stray = io.popen("ls '" .. dir .. "/two' | grep -c rank"):read("l")
    os.execute("rm -rf '" .. dir .. "'")
    truthy(ok1, out1)
    truthy(ok2, out2)
    eq(count(out2, "== recording\n"), 1, "only rank 0 prints: " .. out2)
    eq(#files, 7, "rank 0 writes the figures, reports and atlas: " .. table.concat(files, ", "))
    eq(stray, "0", "no per-rank files with the recordings in memory")
    local a, b = lm.json.decode(m1), lm.json.decode(m2)
    eq(a.processes, 1)
    eq(b.processes, 2)
    for name, params in pairs(p1) do
      for key, t in pairs(params) do
        local diff = (t - p2[name][key]):abs():max():item()
        truthy(diff <= (name == "classifier" and 1e-5 or 2e-3), string.format("%s %s: %.3g", name, key, diff))
      end
    end
    truthy(math.abs(a.classifier_test_accuracy - b.classifier_test_accuracy) <= 1 / 200 + 1e-9, "accuracy")
    truthy(math.abs(a.misclassified - b.misclassified) <= 1, "misclassified")
    truthy(math.abs(a.latent_knn10_accuracy - b.latent_knn10_accuracy) <= 1 / 200 + 1e-9, "kNN")
    for _, key in ipairs{"auroc_correct", "auroc_correct_baseline", "aupr_error", "aupr_error_baseline",
        "auroc_correct_recording", "aupr_error_recording"} do
      truthy(math.abs(a[key] - b[key]) <= 5e-3, string.format("%s: %.6f and %.6f", key, a[key], b[key]))
    end
    near(b.estimator_mse_log10, a.estimator_mse_log10, 1e-3, "estimator mse")
    near(b.autoencoder_reconstruction_per_unit, a.autoencoder_reconstruction_per_unit,
      1e-4 * a.autoencoder_reconstruction_per_unit, "reconstruction")
    for i = 1, 2 do
      near(b.latent_mean[i], a.latent_mean[i], 5e-3, "latent mean " .. i)
      near(b.latent_std[i], a.latent_std[i], 5e-3, "latent std " .. i)
    end
  end)

  it("refuses a NaN in one rank's part of the data on every rank", function()
    need_mpi()
    local ok, out = mpirun(2, "nan_part.lua")
    truthy(ok, out)
    local what = "lm.introspect.fit_autoencoder: H holds a NaN or an infinity in the part of 1 of the 2 ranks "
      .. "(every loss would be NaN)"
    truthy(out:find("rank 0: " .. what .. "\n", 1, true), out)
    truthy(out:find("rank 1: " .. what .. ", this rank's among them", 1, true), out)
  end)

  for _, how in ipairs{"error", "exit", "kill"} do
    it("ends the whole job when rank 1 fails (" .. how .. ")", function()
      need_mpi()
      local t0 = lm.clock()
      local ok, out, code = mpirun(2, "fail.lua", how)
      local seconds = lm.clock() - t0
      truthy(not ok, out)
      truthy(code ~= 124, "timed out: the job hung\n" .. out)
      truthy(seconds < 30, string.format("took %.1f s", seconds))
      eq(count(out, "not reached"), 0, out)
      if how == "error" then
        truthy(out:find("rank 1: tests/mpi/fail.lua:9: rank one fails on purpose", 1, true), out)
      end
      if how == "exit" then truthy(out:find("rank 1: os.exit(3)", 1, true), out) end
      if how == "kill" then truthy(out:find("rank 1", 1, true), out) end
    end)
  end
end)
