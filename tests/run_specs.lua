-- A small spec runner for Lumen's Lua tests (busted-like, no dependencies).
-- Usage: lumen tests/run_specs.lua [dir-or-file ...] ; last line of output is
-- "N passed, N failed, N skipped". Exit status: 1 on any failure or when
-- nothing ran at all; 77 (ctest's SKIP_RETURN_CODE) when every test skipped,
-- so a suite that checked nothing is reported as skipped, never as passed.
--
-- skip(reason [, ci_installs]) ends the current test as skipped, or, called
-- outside `it`, the rest of its file. With ci_installs true and the CI
-- variable set, the skip is a failure: CI installs that dependency, so its
-- absence there means the check silently stopped running.
local passed, failed, skipped, failures, skips = 0, 0, 0, {}, {}
local current = {}
local SKIP = {}

local function fmt(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local spec = {}

function spec.describe(name, fn)
  current[#current + 1] = name
  fn()
  current[#current] = nil
end

local function skip_reason(err)
  if type(err) == "table" and getmetatable(err) == SKIP then return err.reason end
end

function spec.skip(reason, ci_installs)
  if ci_installs and os.getenv("CI") and os.getenv("CI") ~= "" then
    error("not skipped under CI, which installs what this needs: " .. reason, 2)
  end
  error(setmetatable({reason = reason}, SKIP), 2)
end

local function record_skip(what, reason)
  skipped = skipped + 1
  skips[#skips + 1] = what .. ": " .. reason
end

function spec.it(name, fn)
  local full = table.concat(current, " ") .. " " .. name
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
  elseif skip_reason(err) then
    record_skip(full, skip_reason(err))
  else
    failed = failed + 1
    failures[#failures + 1] = full .. "\n    " .. tostring(err):gsub("\n", "\n    ")
  end
end

function spec.eq(got, want, what)
  if got ~= want then
    error(string.format("%sexpected %s, got %s", what and (what .. ": ") or "", fmt(want), fmt(got)), 2)
  end
end

function spec.near(got, want, tol, what)
  tol = tol or 1e-6
  if type(got) ~= "number" or math.abs(got - want) > tol then
    error(string.format("%sexpected %s (tol %g), got %s", what and (what .. ": ") or "",
      fmt(want), tol, fmt(got)), 2)
  end
end

function spec.truthy(v, what)
  if not v then error((what or "expected a true value") .. ", got " .. fmt(v), 2) end
end

-- Deep comparison of nested tables of numbers, with a tolerance.
function spec.same(got, want, tol, path)
  path = path or "value"
  tol = tol or 0
  if type(want) == "table" then
    if type(got) ~= "table" then error(path .. ": expected a table, got " .. fmt(got), 2) end
    if #got ~= #want then
      error(string.format("%s: expected %d elements, got %d", path, #want, #got), 2)
    end
    for i = 1, #want do spec.same(got[i], want[i], tol, path .. "[" .. i .. "]") end
  elseif type(want) == "number" then
    if type(got) ~= "number" or math.abs(got - want) > tol then
      error(string.format("%s: expected %s, got %s", path, fmt(want), fmt(got)), 2)
    end
  elseif got ~= want then
    error(string.format("%s: expected %s, got %s", path, fmt(want), fmt(got)), 2)
  end
end

-- The largest difference of two tensors relative to the largest magnitude
-- of the reference `want`: max|got - want| / max|want| (the difference
-- itself where `want` is all zero). Integer tensors compare as floats.
function spec.rel_error(got, want)
  local scale = want:float():abs():max():item()
  local diff = (got:float() - want:float()):abs():max():item()
  return scale > 0 and diff / scale or diff
end

-- fn must raise an error whose message contains `needle` (plain text).
function spec.raises(fn, needle)
  local ok, err = pcall(fn)
  if ok then error("expected an error containing " .. fmt(needle) .. ", but none was raised", 2) end
  err = tostring(err)
  if needle and not err:find(needle, 1, true) then
    error("expected an error containing " .. fmt(needle) .. ", got " .. fmt(err), 2)
  end
  return err
end

-- Every name os.tmpname gives a spec file, and the names a test makes from
-- it by a suffix (path .. ".png", dir .. "_out"), is removed when the file
-- ends, passed or failed: a run of the suite leaves nothing in /tmp.
local system_tmpname = os.tmpname
local temp_names = {}
os.tmpname = function() -- luacheck: ignore 122 (the runner wraps it for its specs)
  local name = system_tmpname()
  temp_names[#temp_names + 1] = name
  return name
end

local function remove_temp_names()
  for _, name in ipairs(temp_names) do
    if name:match("^/[%w/_.-]+$") then
      os.execute(string.format("rm -rf '%s' '%s'.* '%s'_* 2>/dev/null", name, name, name))
    end
  end
  temp_names = {}
end

local function run_file(path)
  local env = setmetatable({}, {__index = function(_, k)
    if spec[k] ~= nil then return spec[k] end
    return _G[k]
  end})
  local chunk, err = loadfile(path, "t", env)
  if not chunk then
    failed = failed + 1
    failures[#failures + 1] = path .. ": " .. err
    return
  end
  current = {path:match("([^/]+)%.lua$")}
  local ok, rerr = xpcall(chunk, debug.traceback)
  if not ok and skip_reason(rerr) then
    record_skip(path .. " (the rest of the file)", skip_reason(rerr))
  elseif not ok then
    failed = failed + 1
    failures[#failures + 1] = path .. ": " .. tostring(rerr)
  end
  remove_temp_names()
end

local targets = {...}
if #targets == 0 then targets = {"tests/lua"} end
for _, target in ipairs(targets) do
  if target:match("%.lua$") then
    run_file(target)
  else
    local p = io.popen('ls "' .. target .. '"/*_spec.lua 2>/dev/null')
    for file in p:lines() do run_file(file) end
    p:close()
  end
end

for _, s in ipairs(skips) do print("SKIPPED: " .. s) end
for _, f in ipairs(failures) do io.stderr:write("FAILED: ", f, "\n") end
print(string.format("%d passed, %d failed, %d skipped", passed, failed, skipped))
if failed > 0 then os.exit(1) end
if passed == 0 and skipped == 0 then
  io.stderr:write("FAILED: no test ran\n")
  os.exit(1)
end
os.exit(passed == 0 and 77 or 0)
