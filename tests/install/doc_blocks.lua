-- The C blocks of a Markdown page (tests/install/run.sh):
--
--   lua5.4 doc_blocks.lua SOURCE_DIR PAGE.md OUT_DIR
--
-- A block (of any language) right after the comment
-- `<!-- docs-test file: PATH -->` must be PATH's text exactly (the page shows
-- the real example); every other ```c block is written to OUT_DIR/<line>.c
-- for the caller to compile. Fails when the page has no C block at all.
local src, page, out = arg[1], arg[2], arg[3]

local function read(path)
  local f = assert(io.open(path, "rb"))
  local t = f:read("a")
  f:close()
  return t
end

os.execute("mkdir -p '" .. out .. "'")
local text = read(src .. "/" .. page)
local n, line_no, current, pinned, pending = 0, 0, nil, 0, nil
for line in (text .. "\n"):gmatch("([^\n]*)\n") do
  line_no = line_no + 1
  if current then
    if line:match("^```%s*$") then
      local body = table.concat(current.lines, "\n") .. "\n"
      if current.lang == "c" then n = n + 1 end
      if current.file then
        if body ~= read(src .. "/" .. current.file) then
          error(string.format("%s:%d: this block differs from %s (copy the file into the page)", page,
            current.first, current.file), 0)
        end
        pinned = pinned + 1
      elseif current.lang == "c" then
        local f = assert(io.open(string.format("%s/%d.c", out, current.first), "w"))
        f:write(body)
        f:close()
      end
      current = nil
    else
      current.lines[#current.lines + 1] = line
    end
  elseif line:match("^```") then
    current = {first = line_no + 1, lines = {}, file = pending, lang = line:match("^```(%w*)")}
    pending = nil
  else
    local file = line:match("<!%-%- docs%-test file: (%S+) %-%->")
    if file then pending = file elseif line:match("%S") then pending = nil end
  end
end
assert(n > 0, page .. " has no C block")
print(string.format("%s: %d C blocks; %d blocks are the examples' files", page, n, pinned))
