-- The Python blocks of docs/import-pytorch.md run as written (with Debian's
-- python3-torch and python3-torchvision), and what they save loads into
-- Lumen's twin of the network with strict names, from F32 and F16 files.
-- Blocks that import packages Debian does not ship (safetensors) are skipped.
local lm = require 'lumen'

local py = dofile("tests/helpers/python.lua")

if not py.can_import("torch, torchvision") then
  skip("/usr/bin/python3 cannot import torch and torchvision (python3-torch, python3-torchvision)", true)
end

local read = dofile("tests/helpers/files.lua").read

describe("docs/import-pytorch.md's Python", function()
  it("saves a torchvision ResNet-18 that Lumen loads strictly, in float32 and float16", function()
    local dir = os.tmpname()
    os.remove(dir)
    lm.mkdir(dir)
    local ran = 0
    for block in read("docs/import-pytorch.md"):gmatch("```python\n(.-)```") do
      if not block:find("from safetensors", 1, true) then
        lm.write_file(dir .. "/block.py", block)
        local p = io.popen(string.format("cd '%s' && %s block.py 2>&1", dir, py.python))
        local out = p:read("a")
        truthy(p:close(), "the block failed:\n" .. out)
        ran = ran + 1
      end
    end
    eq(ran, 1, "the hand-written writer's block ran")
    for _, file in ipairs{"resnet18.safetensors", "resnet18_f16.safetensors"} do
      local net = lm.models.resnet18{num_classes = 10, stem = 'cifar'}
      net:load(dir .. "/" .. file)
      eq(net.fc.weight:size(2), 512, file)
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
