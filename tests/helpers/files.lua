-- Files in the specs: a file's whole contents (bytes as they are).
--   local files = dofile("tests/helpers/files.lua")
--   local bytes = files.read(path)
local M = {}

--- The whole file at path; an error naming it when it cannot be opened.
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

return M
