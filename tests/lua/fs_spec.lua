-- lm.mkdir and lm.write_file: folders and files from Lua without a shell
-- (core/lm_fs.c, core/lm_atomic_file.c, bindings/l_files.c).
local lm = require 'lumen'

-- A fresh empty folder for one test; remove it with cleanup(dir).
local function fresh_dir()
  local dir = os.tmpname()
  os.remove(dir)
  lm.mkdir(dir)
  return dir
end
local function cleanup(dir) os.execute("rm -rf '" .. dir .. "'") end -- no quote in os.tmpname()

local function is_dir(path) -- a folder can be opened but not read
  local f = io.open(path, "rb")
  if not f then return false end
  local ok, _, code = f:read(1)
  f:close()
  return ok == nil and code == 21 -- EISDIR
end

local read = dofile("tests/helpers/files.lua").read

local function listing(dir) -- the names in dir, sorted
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

-- The message of the error fn raises, without the "file:line: " in front.
local function message(fn)
  local ok, err = pcall(fn)
  truthy(not ok, "an error was raised")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("lm.mkdir", function()
  it("creates nested folders, and an existing one is fine", function()
    local dir = fresh_dir()
    local deep = dir .. "/a/b/c"
    lm.mkdir(deep)
    truthy(is_dir(dir .. "/a") and is_dir(dir .. "/a/b") and is_dir(deep), "every level made")
    lm.mkdir(deep) -- again: nothing to do
    lm.mkdir(dir .. "/a")
    lm.mkdir(deep .. "/") -- a trailing slash
    lm.mkdir(dir .. "//a//b2") -- doubled slashes
    truthy(is_dir(dir .. "/a/b2"))
    lm.mkdir("/") -- exists
    lm.mkdir(".")
    cleanup(dir)
  end)
  it("takes paths with a quote and a space, which broke the shell command", function()
    local dir = fresh_dir()
    local odd = dir .. "/it's a folder/sub folder; $(echo no)"
    lm.mkdir(odd)
    truthy(is_dir(odd), odd)
    lm.write_file(odd .. "/report's.html", "ok")
    eq(read(odd .. "/report's.html"), "ok")
    same(listing(dir), {"it's a folder"})
    cleanup(dir)
  end)
  it("names the path and the reason when a file is in the way", function()
    local dir = fresh_dir()
    lm.write_file(dir .. "/f", "a file")
    eq(message(function() lm.mkdir(dir .. "/f") end),
      "mkdir: cannot create '" .. dir .. "/f': '" .. dir .. "/f' exists and is not a directory")
    eq(message(function() lm.mkdir(dir .. "/f/sub/x") end),
      "mkdir: cannot create '" .. dir .. "/f/sub/x': '" .. dir .. "/f' exists and is not a directory")
    eq(read(dir .. "/f"), "a file", "the file is untouched")
    cleanup(dir)
  end)
  it("names the path and the reason when it may not write", function()
    local dir = fresh_dir()
    local locked = dir .. "/locked"
    lm.mkdir(locked)
    os.execute("chmod 555 '" .. locked .. "'")
    local probe = io.open(locked .. "/probe", "w") -- root may write anyway
    if probe then
      probe:close()
      cleanup(dir)
      skip("running as a user who may write into a read-only folder (root)")
    end
    eq(message(function() lm.mkdir(locked .. "/a/b") end),
      "mkdir: cannot create '" .. locked .. "/a/b': Permission denied (at '" .. locked .. "/a')")
    os.execute("chmod 755 '" .. locked .. "'")
    cleanup(dir)
  end)
  it("checks its argument", function()
    raises(function() lm.mkdir() end, "lm.mkdir: the path must be a string, got nothing")
    raises(function() lm.mkdir("") end, "mkdir: the path is empty")
    raises(function() lm.mkdir("a\0b") end, "lm.mkdir: the path contains a NUL byte")
    -- a number is not turned into a folder named after it
    raises(function() lm.mkdir(3) end, "lm.mkdir: the path must be a string, got a number")
    raises(function() lm.list_dir(3) end, "lm.list_dir: the path must be a string, got a number")
    raises(function() lm.write_file(3, "x") end, "lm.write_file: the path must be a string, got a number")
    raises(function() lm.write_file("a\0b", "x") end, "lm.write_file: the path contains a NUL byte")
  end)
end)

describe("lm.real_path", function()
  it("gives one spelling of a folder: absolute, without ./, .. and repeated slashes", function()
    local dir = fresh_dir()
    lm.mkdir(dir .. "/a/b")
    local real = lm.real_path(dir .. "/a")
    eq(real:sub(1, 1), "/")
    eq(lm.real_path(dir .. "//a/./b/../"), real)
    local none, why = lm.real_path(dir .. "/missing")
    eq(none, nil)
    eq(why, "real_path: cannot resolve '" .. dir .. "/missing': No such file or directory")
    raises(function() lm.real_path(3) end, "lm.real_path: the path must be a string, got a number")
    cleanup(dir)
  end)
end)

describe("lm.write_file", function()
  it("writes the contents, bytes as they are", function()
    local dir = fresh_dir()
    local bytes = "line 1\nline 2\r\n\0\255 end"
    lm.write_file(dir .. "/x.bin", bytes)
    eq(read(dir .. "/x.bin"), bytes)
    lm.write_file(dir .. "/empty", "")
    eq(read(dir .. "/empty"), "")
    cleanup(dir)
  end)
  it("replaces a file by renaming a new one over it, leaving no temporary file", function()
    local dir = fresh_dir()
    local path = dir .. "/report.html"
    lm.write_file(path, "one")
    local old = assert(io.open(path, "rb")) -- a reader of the old version...
    lm.write_file(path, "two, longer")
    eq(read(path), "two, longer")
    eq(old:read("a"), "one", "...still reads the whole old version: the file was replaced, not rewritten")
    old:close()
    same(listing(dir), {"report.html"}, "the folder's contents")
    cleanup(dir)
  end)
  it("writes a list of strings one after another", function()
    local dir = fresh_dir()
    local parts = {"<a>", "", string.rep("x", 70000), "\0\255", "</a>"}
    lm.write_file(dir .. "/parts.html", parts)
    eq(read(dir .. "/parts.html"), table.concat(parts))
    lm.write_file(dir .. "/none", {})
    eq(read(dir .. "/none"), "")
    cleanup(dir)
  end)
  it("refuses a list with a piece that is not a string, keeping the old file", function()
    local dir = fresh_dir()
    local path = dir .. "/keep.txt"
    lm.write_file(path, "old")
    eq(message(function() lm.write_file(path, {"a", 2, "c"}) end),
      "write_file: contents[2] is a number, not a string")
    eq(message(function() lm.write_file(path, {"a", "b", {}}) end),
      "write_file: contents[3] is a table, not a string")
    eq(read(path), "old")
    same(listing(dir), {"keep.txt"}, "no temporary file left behind")
    cleanup(dir)
  end)
  it("names the path and the reason when the folder is missing", function()
    local dir = fresh_dir()
    local path = dir .. "/missing/report.html"
    eq(message(function() lm.write_file(path, "x") end),
      "write_file: cannot write '" .. path .. "': No such file or directory")
    same(listing(dir), {}, "nothing left behind")
    raises(function() lm.write_file(dir .. "/x") end, "bad argument #2 to 'write_file'")
    cleanup(dir)
  end)
end)
