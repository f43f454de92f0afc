-- refused(fn, needle): fn must raise an error containing `needle` that
-- points at a line of the spec file `file` (the caller's line, not one
-- inside Lumen) and is a message of Lumen's, not Lua's own "attempt to ...".
-- Returns the message.
-- The spec's raises and truthy come as arguments (a spec's globals live in
-- its own environment):
--   local refused = dofile("tests/helpers/refused.lua")("arg_checks_nn_spec.lua", raises, truthy)
return function(file, raises, truthy)
  local at_line = file:gsub("%p", "%%%0") .. ":%d+: "
  return function(fn, needle)
    local err = raises(fn, needle)
    truthy(err:find(at_line), "the error points at the caller's line: " .. err)
    truthy(not err:find("attempt to", 1, true), "a message of Lumen's, not Lua's: " .. err)
    return err
  end
end
