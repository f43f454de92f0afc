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
