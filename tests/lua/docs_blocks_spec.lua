-- Every Lua code block of README.md and docs/ runs (tests/docs/run_page.lua),
-- each page in its own process and scratch folder, with small generated
-- MNIST files as the data; shell blocks only name scripts and experiments
-- that exist.
local root = io.popen("pwd"):read("l")
local build = os.getenv("LUMEN_BUILD_DIR") or "build"
local lumen = (build:sub(1, 1) == "/" and build or root .. "/" .. build) .. "/lumen"

local function pages()
  local list = {"README.md"}
  local p = io.popen("ls docs/*.md docs/*/*.md")
  for path in p:lines() do list[#list + 1] = path end
  p:close()
  return list
end

local read = dofile("tests/helpers/files.lua").read

local scratch = os.tmpname()
os.remove(scratch)
os.execute("mkdir -p '" .. scratch .. "'")
dofile("tests/helpers/fake_mnist.lua").write(scratch .. "/data", 600, 200)

describe("the set-up commands", function()
  it("are the same in README.md and docs/getting-started.md", function()
    local function commands(path)
      local list = {}
      for block in read(path):gmatch("```sh\n(.-)```") do
        for line in block:gmatch("[^\n]+") do
          if line:find("install-deps.sh", 1, true) and line:find("&&", 1, true) then list[#list + 1] = line end
        end
      end
      return list
    end
    local readme = commands("README.md")
    eq(#readme, 2, "README.md has the two set-up commands")
    same(commands("docs/getting-started.md"), readme)
    local ci = read(".ci/run")
    truthy(ci:find(readme[2], 1, true), ".ci/run runs README.md's test command")
  end)
end)

describe("docs code blocks", function()
  for _, page in ipairs(pages()) do
    local text = read(page)
    if text:find("\n```lua", 1, true) then
      it(page .. " runs", function()
        local dir = scratch .. "/" .. page:gsub("[/.]", "_")
        os.execute("mkdir -p '" .. dir .. "'")
        local cmd = string.format("cd '%s' && LUMEN_DATA='%s/data' LUMEN_NO_HISTORY=1 "
          .. "'%s' '%s/tests/docs/run_page.lua' '%s' '%s' 2>&1",
          dir, scratch, lumen, root, root, page)
        local p = io.popen(cmd)
        local out = p:read("a")
        local ok = p:close()
        truthy(ok, out)
      end)
    end
    it(page .. " names only scripts and experiments that exist", function()
      for block in text:gmatch("```sh\n(.-)```") do
        for path in block:gmatch("[%w_./-]+") do
          local file = path:match("^%./(scripts/[%w_-]+%.sh)$") or path:match("^(experiments/[%w_]+%.lua)$")
            or path:match("^%./(build/lumen)$")
          if file and file ~= "build/lumen" then
            local fh = io.open(file)
            truthy(fh, page .. " names " .. file .. ", which does not exist")
            if fh then fh:close() end
          end
        end
      end
    end)
    it(page .. " links only to files that exist", function()
      local folder = page:match("^(.*)/") or "."
      local prose = text:gsub("```.-```", "") -- code blocks may hold brackets that are not links
      for target in prose:gmatch("%]%(([^)%s]+)%)") do
        local path = target:gsub("#.*$", "")
        if path ~= "" and not path:match("^%a+:") then -- a page's own anchor, a web address
          local fh = io.open(folder .. "/" .. path)
          truthy(fh, page .. " links to " .. target .. ", which does not exist")
          if fh then fh:close() end
        end
      end
    end)
  end
end)
