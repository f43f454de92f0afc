-- Runs every ```lua block of one Markdown page, in order, as one script (a
-- page's snippets build on each other, locals included), the way a reader
-- copying them into a file would:
--
--   lumen tests/docs/run_page.lua REPO_ROOT PAGE.md
--
-- Run it from a scratch folder: snippets write files relative to it. A page
-- may name a setup script that defines what its fragments assume (a trained
-- network, a recorder, ...) in an HTML comment, invisible to readers:
--
--   <!-- docs-test setup: tests/docs/context_mnist.lua -->
--
-- A line `print(...)  --> text` must print exactly `text`. Exit status 1 and
-- the page's line on the first failure.
local root, page = arg[1], arg[2]
local f = assert(io.open(root .. "/" .. page))
local text = f:read("a")
f:close()

local blocks, setups = {}, {}
local line_no, current = 0, nil
for line in (text .. "\n"):gmatch("([^\n]*)\n") do
  line_no = line_no + 1
  if current then
    if line:match("^```%s*$") then
      blocks[#blocks + 1] = current
      current = nil
    else
      current.lines[#current.lines + 1] = line
    end
  elseif line:match("^```lua%s*$") then
    current = {first = line_no + 1, lines = {}}
  else
    local setup = line:match("<!%-%- docs%-test setup: (%S+) %-%->")
    if setup then setups[#setups + 1] = setup end
  end
end

local env = setmetatable({}, {__index = _G})
env._G = env

-- print(...) --> expected: the printed line must match
local function check_print(where, expected)
  return function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    local got = table.concat(parts, "\t", 1, parts.n)
    print(got)
    local want_fields, got_fields = {}, {}
    for w in expected:gmatch("%S+") do want_fields[#want_fields + 1] = w end
    for w in got:gmatch("%S+") do got_fields[#got_fields + 1] = w end
    if table.concat(want_fields, " ") ~= table.concat(got_fields, " ") then
      error(string.format("%s: printed %q, the page says %q", where, got, expected), 0)
    end
  end
end

for _, s in ipairs(setups) do
  local chunk = assert(loadfile(root .. "/" .. s, "t", env))
  env.ROOT = root
  chunk()
end

-- the page's blocks as one chunk (a script made of its snippets, so locals
-- carry from block to block), every other line of the page left blank so
-- errors give the page's line numbers
local src = {}
for b, block in ipairs(blocks) do
  while #src < block.first - 1 do src[#src + 1] = "" end
  for i, line in ipairs(block.lines) do
    local call, expected = line:match("^(%s*print%b())%s*%-%->%s*(.-)%s*$")
    if call then
      local where = string.format("%s:%d", page, block.first + i - 1)
      local name = "__docs_expect_" .. b .. "_" .. i
      env[name] = check_print(where, expected)
      line = call:gsub("^(%s*)print", "%1" .. name, 1)
    end
    src[#src + 1] = line
  end
end
local chunk, err = load(table.concat(src, "\n"), "@" .. page, "t", env)
if not chunk then
  io.stderr:write(string.format("%s does not compile: %s\n", page, err))
  os.exit(1)
end
local ok, run_err = xpcall(chunk, debug.traceback)
if not ok then
  io.stderr:write(string.format("%s failed: %s\n", page, tostring(run_err)))
  os.exit(1)
end
print(string.format("%s: %d blocks ran", page, #blocks))
