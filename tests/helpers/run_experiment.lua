-- Runs an experiment file with the given command-line arguments, its
-- printing silenced, and the global `arg` restored after; returns true and
-- the summary the chunk returns, or false and the error.
--   local run_experiment = dofile("tests/helpers/run_experiment.lua")
return function(path, args)
  local chunk, load_err = loadfile(path)
  if not chunk then return false, load_err end
  local saved_arg, print_ = _G.arg, _G.print
  _G.arg = args or {}
  _G.print = function() end
  local ok, result = pcall(chunk, table.unpack(_G.arg))
  _G.print = print_
  _G.arg = saved_arg
  return ok, result
end
