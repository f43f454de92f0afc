-- Run by check_temp_names.lua, not by the suite: a spec file that makes a
-- temporary folder and a file named from a temporary name, then fails.
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p '" .. dir .. "/sub'")
local png = os.tmpname() .. ".png"
io.open(png, "w"):close()
print("TEMP " .. dir)
print("TEMP " .. png)
it("fails after making files", function() error("on purpose") end)
error("the file itself fails too")
