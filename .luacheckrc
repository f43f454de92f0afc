-- luacheck configuration (Debian's lua-check), run by scripts/lint.sh.
std = "lua54"
max_line_length = 120
-- a long message or expected output reads better whole than split
max_string_line_length = false
-- the lumen host preloads the module as the global `lm`; help() is the REPL's
read_globals = {"lm", "help"}
ignore = {
  "212/self", -- methods need not use self
}

-- the spec runner's globals (tests/run_specs.lua)
files["tests"] = {
  read_globals = {"describe", "it", "eq", "near", "truthy", "same", "raises", "skip", "rel_error"},
}
files["tests/run_specs.lua"] = {globals = {"describe", "it", "eq", "near", "truthy", "same", "raises", "skip",
  "rel_error"}}
-- experiments receive their command line in `arg`
files["experiments"] = {read_globals = {"arg"}}
files["bench"] = {read_globals = {"arg"}}
-- the docs' shared context defines the globals later code blocks use
files["tests/docs/context_mnist.lua"] = {allow_defined_top = true, ignore = {"131"}}
-- expected error messages are kept whole, one case per line
files["tests/lua/misuse_cases.lua"] = {max_line_length = false}
