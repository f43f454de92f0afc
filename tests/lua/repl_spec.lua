-- The REPL's comforts: tab completion (lumen.repl, and readline through a
-- pseudo-terminal), help, tensor printing, errors that leave the session alive.
local lm = require 'lumen'
local repl = require 'lumen.repl'

local build = os.getenv("LUMEN_BUILD_DIR") or "build"

describe("repl.complete", function()
  local env = {lm = lm, t = lm.ones(2, 3), s = "text", print = print, pairs = pairs,
    net = lm.nn.Sequential(lm.nn.Linear(2, 3), lm.nn.ELU())}
  it("completes fields of modules, with what to append", function()
    local c, append = repl.complete("lm.nn.Li", env)
    same(c, {"Linear"})
    eq(append, "(", "a callable class")
    same(repl.complete("x = lm.nn.L", env), {"L1Loss", "LayerNorm", "LayerNorm2d", "LeakyReLU", "Linear", "LogSigmoid",
      "LogSoftmax"})
    local _, app = repl.complete("lm.op", env)
    eq(app, ".", "a table")
    same((repl.complete("lm.nn.functional.so", env)), {"softmax", "softmin", "softplus", "softshrink", "softsign"})
  end)
  it("completes tensor methods after : and fields after .", function()
    same((repl.complete("t:resh", env)), {"reshape"})
    local c = repl.complete("t.gr", env)
    same(c, {"grad", "grad_fn"})
    same((repl.complete("t:gr", env)), {"grad_fn"}, 0, "grad is a field, not a method")
  end)
  it("completes a module's inherited methods and string methods", function()
    same((repl.complete("net:named_p", env)), {"named_parameters"})
    same((repl.complete("s:up", env)), {"upper"})
  end)
  it("completes globals and keywords, and hides private names", function()
    same((repl.complete("pr", env)), {"print"})
    same((repl.complete("whi", env)), {"while"})
    for _, c in ipairs(repl.complete("lm.", env)) do truthy(c:sub(1, 1) ~= "_", c) end
    truthy(#repl.complete("lm._", env) > 0, "private names on request")
  end)
  it("offers nothing where nothing is known, and calls nothing", function()
    eq(#repl.complete("nothing.he", env), 0)
    eq(#repl.complete("f(x).a", env), 0)
    eq(#repl.complete("12", env), 0)
    local called = false
    local trap = setmetatable({}, {__index = function() called = true end})
    eq(#repl.complete("trap.x", {trap = trap}), 0)
    eq(called, false, "__index functions are not called")
  end)
end)

describe("the REPL in a terminal", function()
  -- what a terminal shows when the keys (shell-quoted, with \\n and \\t escapes) are typed, then Ctrl-D
  local function session(keys)
    local p = io.popen("/usr/bin/python3 tests/repl/pty_session.py " .. build .. "/lumen "
      .. table.concat(keys, " ") .. " 2>&1")
    local out = p:read("a")
    p:close()
    return out
  end

  it("completes with Tab, prints help and tensors, and survives errors", function()
    local out = session{"'lm.nn.Li\\t'", "'2, 3)\\n'", "'t = lm.randn(100, 100)\\n'", "'t:resh\\t'", "'4, 2500)\\n'",
      "'help(lm.nn.Dropout)\\n'", "'lm.ones(2) + lm.ones(3)\\n'", "'print(\"alive\")\\n'"}
    truthy(out:find("lumen> lm.nn.Linear(2, 3)\nnn.Linear(2 -> 3)", 1, true), "Tab completed the class:\n" .. out)
    truthy(out:find("lumen> t:reshape(4, 2500)", 1, true), "Tab completed the method:\n" .. out)
    truthy(out:find("[float32 tensor of shape 4x2500 on cpu]", 1, true), "a tensor prints its shape:\n" .. out)
    truthy(out:find("  ...", 1, true) or out:find(" ... ", 1, true), "a big tensor prints truncated:\n" .. out)
    truthy(out:find("- `lm.nn.Dropout(p)`", 1, true), "help printed the entry:\n" .. out)
    truthy(out:find("cannot be broadcast", 1, true) and out:find("stack traceback", 1, true), "the error:\n" .. out)
    truthy(out:find("\nalive\n", 1, true), "the session went on after the error:\n" .. out)
  end)

  it("prints =expr as lua does, names no program in errors, and ends on Ctrl-D inside a statement", function()
    local out = session{"'=1+2\\n'", "'setmetatable({}, {__tostring = function() error(\"ts\") end})\\n'",
      "'print(\"alive\")\\n'", "'for i = 1, 2 do\\n'"}
    truthy(out:find("lumen> =1+2\n3\n", 1, true), "=expr printed its value:\n" .. out)
    truthy(out:find("\nerror calling 'print' (", 1, true), "the print error:\n" .. out)
    eq(out:find("(null)", 1, true), nil, "no (null) in messages:\n" .. out)
    truthy(out:find("\nalive\n", 1, true), "the session went on:\n" .. out)
    eq(out:find("error object", 1, true), nil, "Ctrl-D in a statement ends the session quietly:\n" .. out)
  end)
end)
