-- The PyTorch side of the specs: Debian's python3-torch works with
-- /usr/bin/python3 only (the first python3 on PATH may be another build).
--   local py = dofile("tests/helpers/python.lua")
--   if not py.can_import("torch") then skip("...", true) end
--   local ok, out = py.run("tests/torch/x_reference.py", "write '" .. dir .. "'")
local M = {python = "/usr/bin/python3"}

--- True when the interpreter imports every module of the comma-separated list.
function M.can_import(modules)
  local p = io.popen(M.python .. " -c 'import " .. modules .. "' >/dev/null 2>&1 && echo yes")
  local out = p:read("a")
  p:close()
  return out:find("yes") ~= nil
end

--- Runs `script args` (args: a shell-quoted string); returns whether it
--- exited with success and its output, standard output then error.
function M.run(script, args)
  local err = os.tmpname()
  local p = io.popen(string.format("%s %s %s 2>'%s'", M.python, script, args or "", err))
  local out = p:read("a")
  local ok = p:close()
  local f = io.open(err)
  local msg = f and f:read("a") or ""
  if f then f:close() end
  os.remove(err)
  return ok == true, out .. msg
end

return M
