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

--- Runs `script write DIR` in a new scratch folder (removed with the spec
--- file's other temporary names) and returns the folder; a failing script
--- is an error carrying its output.
function M.write_reference(script)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  local ok, out = M.run(script, "write '" .. dir .. "'")
  if not ok then error(script .. " write failed:\n" .. out, 0) end
  return dir
end

--- The spec needs torch: skips the spec file (a failure under CI) when
--- /usr/bin/python3 cannot import it, else runs `script write DIR` (see
--- write_reference) and returns DIR and its cases.json decoded. `skip` is
--- the spec's own (the runner gives it to spec files, not to helpers).
function M.torch_cases(script, skip)
  if not M.can_import("torch") then
    skip("/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed", true)
  end
  local dir = M.write_reference(script)
  local f = assert(io.open(dir .. "/cases.json"))
  local cases = require('lumen.json').decode(f:read("a"))
  f:close()
  return dir, cases
end

--- Runs `script OUT` with OUT a safetensors file in a new scratch folder
--- and returns what lm.load reads from it (tensors, metadata); the folder is
--- removed; a failing script is an error carrying its output.
function M.safetensors_reference(script, name)
  local lm = require 'lumen'
  local dir = os.tmpname()
  os.remove(dir)
  lm.mkdir(dir)
  local out_path = dir .. "/" .. name
  local ran, msg = M.run(script, "'" .. out_path .. "'")
  if not ran then
    os.execute("rm -rf '" .. dir .. "'")
    error(script .. " failed:\n" .. msg, 0)
  end
  local ref, meta = lm.load(out_path)
  os.execute("rm -rf '" .. dir .. "'")
  return ref, meta
end

return M
