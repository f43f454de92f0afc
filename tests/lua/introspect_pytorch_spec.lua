-- experiments/introspect_pytorch.lua on a network trained in PyTorch: a
-- torchvision ResNet-18 (trained a few steps and saved in half precision by
-- tests/torch/pytorch_experiment_reference.py) is mapped on a generated
-- image folder; the accuracy the experiment reports is the one PyTorch
-- computes on the same PNG files, and the report, atlas and metrics appear.
local lm = require 'lumen'

local py = dofile("tests/helpers/python.lua")

if not py.can_import("torch, torchvision, PIL") then
  skip("/usr/bin/python3 cannot import torch, torchvision and PIL", true)
end

describe("experiments/introspect_pytorch.lua", function()
  it("maps a PyTorch-trained ResNet-18 and reports PyTorch's accuracy on the same files", function()
    local dir = os.tmpname()
    os.remove(dir)
    -- three classes of images with a dominant colour each, 24 training and 8 test images a class
    lm.manual_seed(2)
    for _, split in ipairs{{"train", 24}, {"test", 8}} do
      for k, name in ipairs{"blue", "green", "red"} do
        lm.mkdir(string.format("%s/images/%s/%s", dir, split[1], name))
        for i = 1, split[2] do
          local img = lm.rand(3, 32, 32) * 0.5
          img[({3, 2, 1})[k]]:add_(0.5)
          lm.image.save(string.format("%s/images/%s/%s/%02d.png", dir, split[1], name, i), img)
        end
      end
    end
    local ran, out = py.run("tests/torch/pytorch_experiment_reference.py", "'" .. dir .. "'")
    truthy(ran, "the PyTorch side failed:\n" .. out)
    local right, total = out:match("(%d+) (%d+)")
    truthy(right, "PyTorch's accuracy: " .. out)

    local chunk = assert(loadfile("experiments/introspect_pytorch.lua"))
    local saved_arg, saved_print = _G.arg, _G.print
    _G.arg = {"--weights", dir .. "/resnet18_f16.safetensors", "--num-classes", "3", "--data", dir .. "/images",
      "--out", dir .. "/out", "--ae-epochs", "2", "--est-epochs", "2", "--subset", "0"}
    _G.print = function() end
    local ok, metrics = pcall(chunk, table.unpack(_G.arg))
    _G.arg, _G.print = saved_arg, saved_print
    truthy(ok, tostring(metrics))
    near(metrics.classifier_accuracy_checked, tonumber(right) / tonumber(total), 1e-9, "PyTorch's accuracy")
    for _, k in ipairs{"latent_knn10_accuracy", "auroc_correct", "auroc_correct_baseline"} do
      truthy(type(metrics[k]) == "number", k .. " reported")
    end
    for _, f in ipairs{"index.html", "atlas.html", "metrics.json", "map_test.png", "map_error.png"} do
      local fh = io.open(dir .. "/out/" .. f)
      truthy(fh, f .. " written")
      if fh then fh:close() end
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
