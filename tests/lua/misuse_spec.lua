-- The misuse suite: wrong calls from Lua, each a Lua error with an exact
-- message and never a crash, and nothing changed by the refused call. The
-- cases live in tests/lua/misuse_cases.lua and run in one child process
-- (the same lumen binary), which prints a line before and after each case;
-- if the child dies (a signal, a sanitizer's abort, a non-zero exit) the
-- failure names the case that was running.
--
-- Message rule: the whole message must equal the expected one once a
-- leading position "chunk:line: " (added by error() or luaL_error) is
-- removed; nothing else is stripped.
local lm = require 'lumen'

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "tests/lua/"
local cases_file = here .. "misuse_cases.lua"
local M = assert(loadfile(cases_file))()

local function lumen_binary()
  local self = arg and arg[-1]
  if self and self:find("/") and io.open(self, "rb") then return self end
  return (os.getenv("LUMEN_BUILD_DIR") or "build") .. "/lumen"
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local scratch = os.tmpname()
os.remove(scratch)
assert(os.execute("mkdir -p " .. sh_quote(scratch)))
local cases = M.cases(scratch)

-- Runs the child; returns per-case results and how the child ended.
local function run_child(crash_in)
  local cmd = sh_quote(lumen_binary()) .. " " .. sh_quote(cases_file) .. " run " .. sh_quote(scratch)
    .. (crash_in and (" " .. sh_quote(crash_in)) or "") .. " 2>&1"
  local p = assert(io.popen(cmd))
  local results, order, current, stray = {}, {}, nil, {}
  for line in p:lines() do
    local kind, rest = line:match("^(%u+) (.*)$")
    if kind == "CASE" then
      current = {name = rest, checks = {}}
      results[rest] = current
      order[#order + 1] = rest
    elseif kind == "DONE" and current and rest == current.name then
      current.done = true
      current = nil
    elseif current and kind == "ERR" then
      current.err = M.unescape(rest)
    elseif current and kind == "NOERR" then
      current.returned = M.unescape(rest)
    elseif current and kind == "SKIP" then
      current.skip = rest
    elseif current and kind == "CHECK" then
      local status, what, detail = rest:match("^(%S+) ([^\t]*)\t?(.*)$")
      current.checks[#current.checks + 1] = {ok = status == "ok", what = M.unescape(what),
        detail = M.unescape(detail)}
    else
      stray[#stray + 1] = line
    end
  end
  local ok, how, code = p:close()
  local ended
  if not ok then
    -- a shell reports a child killed by signal N as status 128 + N
    if how == "signal" then ended = "was killed by signal " .. code
    elseif code > 128 and code < 160 then ended = "was killed by signal " .. (code - 128)
    else ended = "exited with status " .. code end
  end
  return {results = results, order = order, ended = ended, stray = table.concat(stray, "\n")}
end

local child = run_child(nil)

local function died_in(run)
  local last = run.results[run.order[#run.order] or ""]
  return last and not last.done and last.name or nil
end

describe("misuse", function()
  it("has at least 90 cases with distinct names and at least 30 state checks", function()
    truthy(#cases >= 90, #cases .. " cases")
    local seen = {}
    for _, c in ipairs(cases) do
      truthy(not seen[c.name], "a second case named " .. c.name)
      seen[c.name] = true
      truthy(type(c.msg) == "string" and c.msg ~= "", "an expected message for " .. c.name)
    end
    local checks = 0
    for _, r in pairs(child.results) do checks = checks + #r.checks end
    truthy(checks >= 30, checks .. " state checks ran")
  end)

  for _, c in ipairs(cases) do
    it(c.name, function()
      local r = child.results[c.name]
      if not r then
        local culprit = died_in(child)
        error(culprit and ("not run: the child process " .. (child.ended or "stopped") ..
          " in case '" .. culprit .. "'") or ("not run by the child (it " ..
          (child.ended or "ended early") .. ")\n" .. child.stray), 0)
      end
      if not r.done then
        error("the child process " .. (child.ended or "stopped") .. " while running this case\n" ..
          child.stray, 0)
      end
      if r.skip then
        truthy(c.cuda and lm.cuda.available(), "skipped by the child: " .. r.skip)
        skip(r.skip)
      end
      if c.cuda and lm.cuda.available() then skip("CUDA is available here") end
      if r.err == nil then
        error("expected the error " .. string.format("%q", c.msg) .. ", but the call returned " ..
          tostring(r.returned), 0)
      end
      eq(r.err, c.msg, "the error message")
      for _, ck in ipairs(r.checks) do
        truthy(ck.ok, "after the error, " .. ck.what .. (ck.detail ~= "" and (" (" .. ck.detail .. ")") or ""))
      end
    end)
  end

  it("the child ran every case and exited cleanly", function()
    truthy(not child.ended, "the child process " .. tostring(child.ended) .. "\n" .. child.stray)
    eq(#child.order, #cases, "cases run")
  end)

  it("a crash in the child names the case that was running", function()
    local victim = cases[3].name
    local crashed = run_child(victim)
    eq(died_in(crashed), victim, "the case running when the child died")
    truthy(crashed.ended, "the child's death was noticed")
    truthy(crashed.ended:find("signal 9", 1, true), tostring(crashed.ended))
    truthy(crashed.results[cases[2].name].done, "the cases before it completed")
  end)

  it("the position rule strips one leading chunk:line: and nothing else", function()
    eq(M.strip_position("lua/lumen/nn/init.lua:82: linear: x"), "linear: x")
    eq(M.strip_position('[string "lumen.nn"]:3: a: b'), "a: b")
    eq(M.strip_position("cannot open '/x': No such file"), "cannot open '/x': No such file")
    eq(M.strip_position("a.lua:1: b.lua:2: c"), "b.lua:2: c")
  end)

  it("a view keeps its storage when the tensor it came from is freed", function()
    local a = lm.ones(3)
    local v = a:view(3)
    a:free()
    eq(v:sum():item(), 3)
    os.execute("rm -rf " .. sh_quote(scratch))
  end)
end)
