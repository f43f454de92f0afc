-- The `lumen` host behaves like the standalone `lua`.
local build = os.getenv("LUMEN_BUILD_DIR") or "build"
local lumen = build .. "/lumen"

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

describe("lumen host", function()
  it("runs -e with lumen preloaded", function()
    local out, code = run(lumen
      .. [[ -e "local lm = require 'lumen'; print(lm.matmul(lm.ones(2,3), lm.ones(3,4)):sum())"]])
    eq(code, 0)
    eq(out, "24\n")
  end)

  it("takes lua 5.4's other options: -eSTAT, -l g=mod, -W, -E and LUA_INIT", function()
    eq((run(lumen .. [[ '-eprint(3)']])), "3\n")
    eq((run(lumen .. [[ -l s=string -e 'print(s.rep("a", 3))']])), "aaa\n")
    eq((run(lumen .. [[ -lstring -e 'print(string.upper("b"))']])), "B\n")
    eq((run(lumen .. [[ -W -e 'warn("careful")']])), "Lua warning: careful\n")
    eq((run(lumen .. [[ -e 'warn("unseen")']])), "", "warnings are off without -W")
    eq((run("LUA_INIT='print(\"init\", lm ~= nil)' " .. lumen .. [[ -e 'print(2)']])), "init\ttrue\n2\n")
    eq((run("LUA_INIT_5_4='print(54)' LUA_INIT='print(0)' " .. lumen .. [[ -e '']])), "54\n")
    eq((run("LUA_INIT='print(1)' " .. lumen .. [[ -E -e 'print(2)']])), "2\n", "-E ignores LUA_INIT")
    local out, code = run(lumen .. " -e")
    eq(code, 1)
    truthy(out:find("'-e' needs argument\nusage:"), out)
  end)

  it("starts on the cores it may use, flushing subnormals from the first line", function()
    -- pinned to one core (taskset, a cpuset, mpirun's binding): one thread, not one per core online
    local out = run("taskset -c 0 " .. lumen .. [[ -e "print(lm.get_num_threads())"]])
    eq(out, "1\n")
    -- flush-to-zero holds before any tensor exists: 2.5e-310 * 1.5 is subnormal
    eq((run(lumen .. [[ -e "print(2.5e-310 * 1.5)"]])), "0.0\n")
    eq((run(lumen .. [[ -e "lm.set_flush_denormal(false); print(2.5e-310 * 1.5 > 0)"]])), "true\n")
  end)

  it("binds the global lm and prints the version", function()
    local out = run(lumen .. [[ -v -e "print(lm.tensor{1}:numel())"]])
    truthy(out:match("^Lumen %d+%.%d+%.%d+ %(Lua 5%.4"), out)
    truthy(out:find("\n1\n", 1, true), out)
  end)

  it("prints the traceback of an error inside a container's child, not of the rethrow", function()
    local path = os.tmpname()
    local f = io.open(path, "w")
    f:write(table.concat({
      "local nn = lm.nn",
      "local Bad = nn.Module:extend('Bad')",
      "function Bad:forward(x) return x + lm.ones(7) end",
      "local net = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ELU(), Bad()))",
      "net(lm.ones(2, 3))"}, "\n"))
    f:close()
    local out, code = run(lumen .. " " .. path)
    os.remove(path)
    eq(code, 1)
    truthy(out:find(path .. ":3: add: shapes [2, 3] and [7] cannot be broadcast (dimension 2: 3 vs 7) " ..
      "(in module 2 (Bad) of nn.Sequential)\nstack traceback:", 1, true), "the message, placed once:\n" .. out)
    truthy(out:find(path .. ":3: in method 'forward'", 1, true), "the failing child's frame:\n" .. out)
    truthy(out:find(path .. ":5: in main chunk", 1, true), "down to the script:\n" .. out)
  end)

  it("passes script arguments in arg", function()
    local path = os.tmpname()
    local f = io.open(path, "w")
    f:write("print(#arg, arg[1], arg[2], select('#', ...))")
    f:close()
    local out, code = run(lumen .. " " .. path .. " a b")
    os.remove(path)
    eq(code, 0)
    eq(out, "2\ta\tb\t2\n")
  end)

  it("reads a chunk from stdin with -", function()
    local out = run("echo 'print(1 + 1)' | " .. lumen .. " -")
    eq(out, "2\n")
  end)

  it("reports errors with a traceback and a failing status", function()
    local out, code = run(lumen .. [[ -e "local y = lm.ones(2) + lm.ones(3)"]])
    truthy(code ~= 0, "non-zero exit")
    truthy(out:find("cannot be broadcast", 1, true), out)
    truthy(out:find("stack traceback", 1, true), out)
    local _, bad = run(lumen .. " -x")
    truthy(bad ~= 0)
  end)

  it("stops a running loop on Ctrl-C (SIGINT) with an error, not a crash", function()
    -- the script starts a shell that signals it half a second later, once the
    -- loop runs (no race with start-up)
    local code_text = [[local pid = io.open('/proc/self/stat'):read('l'):match('^(%d+)');]]
      .. [[ io.popen('sleep 0.5; kill -INT ' .. pid); while true do end]]
    local out, code = run(lumen .. ' -e "' .. code_text .. '"')
    truthy(out:find("interrupted!", 1, true), out)
    truthy(code ~= 0)
  end)

  it("auto-prints expressions in the REPL and keeps going after errors", function()
    local out = run("printf 'x = lm.ones(2)\\nx:sum()\\nerror(\"boom\")\\nfor i = 1, 2 do\\nprint(i)\\nend\\n' | " ..
      lumen .. " -i")
    truthy(out:find("\n2\n", 1, true) or out:find("> 2\n", 1, true), out)
    truthy(out:find("boom", 1, true), out)
    truthy(out:find("1\n", 1, true) and out:find("2\n", 1, true), out)
  end)

  it("loads from a stock lua5.4 as lumen.so", function()
    local have = run("command -v lua5.4")
    if os.getenv("LUMEN_SANITIZED") then
      skip("an ASan-instrumented lumen.so cannot load into a stock lua5.4 (runtime order)")
    end
    if have == "" then skip("lua5.4 is not installed", true) end
    local out, code = run("LUA_CPATH='" .. build
      .. "/?.so' lua5.4 -e \"local lm = require 'lumen'; print(lm.ones(3):sum())\"")
    eq(code, 0)
    eq(out, "3\n")
  end)

  it("as lumen.so, outlives lua_close with its workers running; a failed require leaves nothing", function()
    if os.getenv("LUMEN_SANITIZED") then
      skip("an ASan-instrumented lumen.so cannot load into a stock lua5.4 (runtime order)")
    end
    if run("command -v lua5.4") == "" or run("pkg-config --exists lua5.4 && echo yes") ~= "yes\n" then
      skip("lua5.4 and its development files are not installed", true)
    end
    -- a host that closes a state and opens another: lua_close unloaded the
    -- module (dlclose) under its thread pool's workers, and the next state
    -- hung or crashed in the pool; then two states, one closed
    local dir = os.tmpname()
    os.remove(dir)
    lm.mkdir(dir)
    lm.write_file(dir .. "/reopen.c", [[
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
int main(void) {
    for (int i = 0; i < 3; i++) {
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        if (luaL_dostring(L, "local lm = require 'lumen'; lm.set_num_threads(4); local x = lm.randn(256, 256); "
                             "for i = 1, 3 do x = lm.matmul(x, x) * 0.01 end")) {
            printf("%s\n", lua_tostring(L, -1));
            return 1;
        }
        lua_close(L);
    }
    /* two states, the second closed: an allocation that fails in the first
     * collected the closed one (the out-of-memory handler kept it) */
    lua_State *a = luaL_newstate(), *b = luaL_newstate();
    luaL_openlibs(a);
    luaL_openlibs(b);
    if (luaL_dostring(a, "lm = require 'lumen'") || luaL_dostring(b, "require 'lumen'")) return 1;
    lua_close(b);
    if (luaL_dostring(a, "assert(not pcall(lm.zeros, 2^40))")) {
        printf("%s\n", lua_tostring(a, -1));
        return 1;
    }
    lua_close(a);
    printf("ok\n");
    return 0;
}
]])
    local out, code = run(string.format("cd %s && cc reopen.c $(pkg-config --cflags --libs lua5.4) -o reopen", dir))
    eq(code, 0, out)
    out, code = run(string.format("LUA_CPATH='%s/?.so' timeout 60 %s/reopen", build, dir))
    eq(out, "ok\n")
    eq(code, 0)
    -- the first require fails half-way (math is gone); the second loads it whole
    out, code = run("LUA_CPATH='" .. build .. "/?.so' lua5.4 -e \"local m = math; math = nil; "
      .. "print(pcall(require, 'lumen')); math = m; local lm = require 'lumen'; "
      .. "print(type(lm.plot), type(lm.train), type(lm.help))\"")
    eq(code, 0, out)
    truthy(out:find("^false\t"), out)
    truthy(out:find("\ntable\ttable\tfunction\n$"), out)
    -- a second load in one state keeps the out-of-memory collector (the first
    -- load's finaliser turned it off when collected): under a 2.2 GB address
    -- limit a second 1.2 GB tensor fits only once the dropped first is collected
    lm.write_file(dir .. "/reload.lua", [[
local lm = require 'lumen'
local x = lm.zeros(300 * 2^20)
package.loaded.lumen = nil
lm = require 'lumen'
collectgarbage()
collectgarbage("stop")
x = nil
print(pcall(lm.zeros, 300 * 2^20))
]])
    out = run("ulimit -v 2200000; LUA_CPATH='" .. build .. "/?.so' lua5.4 " .. dir .. "/reload.lua")
    truthy(out:find("^true"), out)
    -- the kernel set a user chose is reported as theirs outside the host too
    out = run("OPENBLAS_CORETYPE=Haswell LUA_CPATH='" .. build .. "/?.so' lua5.4 -e "
      .. "\"print(require('lumen').blas_info().choice)\"")
    eq(out, "set by OPENBLAS_CORETYPE\n")
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("stops lm.train after the current step on Ctrl-C and leaves a loadable checkpoint", function()
    local dir = os.tmpname()
    os.remove(dir)
    local script = dir .. ".lua"
    local f = io.open(script, "w")
    -- the script sends itself SIGINT (through popen, which leaves signals
    -- alone) after its second validation, so the test does not race start-up
    f:write(string.format([[
      local pid = io.open("/proc/self/stat"):read("l"):match("^(%%d+)")
      lm.manual_seed(1)
      local x = lm.randn(4096, 8)
      local y = (x:sum(2):gt(0)):int() + 1
      local net = lm.nn.Sequential(lm.nn.Linear(8, 64), lm.nn.ELU(), lm.nn.Linear(64, 2), lm.nn.Sigmoid())
      local opt = lm.optim.Adam(net:parameters())
      local history = lm.train{model = net, optimizer = opt, train = {x = x, y = y}, epochs = 100000,
        batch_size = 8, out = %q, tty = false,
        on_validate = function(record)
          if record.epoch == 2 then io.popen("kill -INT " .. pid):close() end
        end}
      print("returned normally after " .. #history .. " validations")
    ]], dir))
    f:close()
    local out = run(lumen .. " " .. script)
    os.remove(script)
    truthy(out:find("interrupted at iteration 1025: checkpoint written", 1, true), out)
    truthy(out:find("returned normally after 2 validations", 1, true), out .. "(the cut stretch is no validation)")
    local tensors, meta = require('lumen').load(dir .. "/checkpoint.safetensors")
    eq(meta.format, "lumen.train")
    truthy(tensors["model.0.weight"], "model weights in the checkpoint, with PyTorch's names")
    os.execute("rm -rf " .. dir)
  end)
end)

