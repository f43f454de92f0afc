-- PyTorch state_dicts both ways (tests/torch/state_dict_reference.py): a
-- torch.nn.Sequential trained a few steps in PyTorch loads into its Lumen
-- twin with strict names from F32, F16 and BF16 files and gives torch's
-- outputs; the file Lumen saves loads into torch with strict=True and gives
-- Lumen's outputs.
local lm = require 'lumen'
local nn = lm.nn

local py = dofile("tests/helpers/python.lua")
local function have_torch() return py.can_import("torch") end

if not have_torch() then
  skip("/usr/bin/python3 cannot import torch: Debian's python3-torch is not installed", true)
end

local function run(args) return py.run("tests/torch/state_dict_reference.py", args) end
local dir = py.write_reference("tests/torch/state_dict_reference.py")

-- the Lumen twins of the reference's torch models
local models = {
  mlp = function()
    return nn.Sequential(nn.Linear(6, 16), nn.ELU(), nn.Dropout(0.1), nn.Linear(16, 16), nn.ELU(),
      nn.Linear(16, 4), nn.Sigmoid())
  end,
  convnet = function()
    return nn.Sequential(nn.Conv2d(3, 8, 3, {padding = 1}), nn.ELU(), nn.Conv2d(8, 8, 3, {stride = 2, padding = 1}),
      nn.ELU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 2 * 2, 5), nn.Sigmoid())
  end,
}

describe("PyTorch state_dicts", function()
  for _, name in ipairs{"mlp", "convnet"} do
    for _, tag in ipairs{"F32", "F16", "BF16"} do
      it(name .. ": a torch " .. tag .. " state_dict loads strictly and gives torch's outputs", function()
        local net = models[name]():eval()
        net:load(string.format("%s/%s_%s.safetensors", dir, name, tag))
        local io = lm.load(string.format("%s/%s_io.safetensors", dir, name))
        local err = rel_error(net(io.x), io["y_" .. tag])
        truthy(err <= 1e-5, tag .. " relative error " .. err)
      end)
    end

    it(name .. ": Lumen's file loads into torch with strict=True and gives Lumen's outputs", function()
      local net = models[name]():eval()
      net:load(string.format("%s/%s_F32.safetensors", dir, name))
      lm.manual_seed(9) -- change the weights so torch must read Lumen's file, not the original
      for _, p in ipairs(net:parameters()) do lm.no_grad(function() p:add_(lm.randn(p:shape()) * 0.01) end) end
      net:save(string.format("%s/%s_lumen.safetensors", dir, name))
      local io = lm.load(string.format("%s/%s_io.safetensors", dir, name))
      lm.save(string.format("%s/%s_lumen_out.safetensors", dir, name), {y = net(io.x)})
      local good, msg = run(string.format("check '%s' %s", dir, name))
      truthy(good, "torch: " .. msg)
    end)
  end
end)

os.execute("rm -rf '" .. dir .. "'")
