-- The spec runner removes what a spec file made from os.tmpname, also when
-- the file fails: runs temp_names_fixture.lua through it and checks.
--   lumen tests/runner/check_temp_names.lua LUMEN
local lumen = assert(arg[1], "usage: check_temp_names.lua LUMEN")
local here = arg[0]:match("^(.*)/[^/]+$") or "."
local p = io.popen(string.format("'%s' '%s/../run_specs.lua' '%s/temp_names_fixture.lua' 2>&1", lumen, here, here))
local out = p:read("a")
local ok = p:close()
assert(not ok, "the fixture fails on purpose, so the runner must exit non-zero:\n" .. out)
local names = {}
for name in out:gmatch("TEMP (%S+)") do names[#names + 1] = name end
assert(#names == 2, "the fixture prints two names:\n" .. out)
for _, name in ipairs(names) do
  local f = io.open(name)
  if f then f:close() end
  assert(not f, name .. " is still there after the runner ended")
  local stem = name:gsub("%.png$", "")
  f = io.open(stem)
  if f then f:close() end
  assert(not f, stem .. " (the temporary name itself) is still there")
end
print("temporary names removed: " .. table.concat(names, ", "))
