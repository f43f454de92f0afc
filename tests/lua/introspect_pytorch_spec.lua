-- experiments/introspect_pytorch.lua on a network trained in PyTorch: a
-- torchvision ResNet-18 (trained a few steps and saved in half precision by
-- tests/torch/pytorch_experiment_reference.py) is mapped on a generated
-- image folder; the accuracy the experiment reports is the one PyTorch
-- computes on the same PNG files, and the report, atlas and metrics appear.
-- experiments/pytorch/train_resnet18_cifar10.py (the PyTorch trainer of the
-- mapped networks) trains on generated CIFAR-10 files; its weights load
-- strictly into lm.models.resnet18 and give the accuracy it reports.
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
    local right, total, vit_right, vit_total, mb_right, mb_total = out:match("(%d+) (%d+)\n(%d+) (%d+)\n(%d+) (%d+)")
    truthy(right, "PyTorch's accuracies: " .. out)

    local chunk = assert(loadfile("experiments/introspect_pytorch.lua"))
    -- the experiment on args (as its command line), quietly: whether it ran, and its metrics or error
    local function run(args)
      local saved_arg, saved_print = _G.arg, _G.print
      _G.arg, _G.print = args, function() end
      local finished, result = pcall(chunk, table.unpack(args))
      _G.arg, _G.print = saved_arg, saved_print
      return finished, result
    end
    local ok, metrics = run{"--weights", dir .. "/resnet18_f16.safetensors", "--num-classes", "3", "--data",
      dir .. "/images", "--out", dir .. "/out", "--ae-epochs", "2", "--est-epochs", "2", "--subset", "0"}
    truthy(ok, tostring(metrics))
    near(metrics.classifier_accuracy_checked, tonumber(right) / tonumber(total), 1e-9, "PyTorch's accuracy")
    for _, k in ipairs{"latent_knn10_accuracy", "auroc_correct", "auroc_correct_baseline"} do
      truthy(type(metrics[k]) == "number", k .. " reported")
    end
    -- a tenth of the folder's 72 training images set apart as the validation set, measured on their own
    same(metrics.images, {train = 65, validation = 7, test = 24})
    truthy(metrics.validation, "validation measures reported")
    for _, k in ipairs{"latent_knn10_accuracy", "auroc_correct_estimator", "auroc_correct_baseline"} do
      truthy(type(metrics.validation[k]) == "number", "validation " .. k .. " reported")
    end
    for _, f in ipairs{"index.html", "atlas.html", "metrics.json", "map_test.png", "map_error.png"} do
      local fh = io.open(dir .. "/out/" .. f)
      truthy(fh, f .. " written")
      if fh then fh:close() end
    end
    -- a torchvision ViT in bfloat16, each encoder layer recorded at its class token
    local vit_ok, vit_metrics = run{"--weights", dir .. "/vit_bf16.safetensors", "--arch", "vit", "--patch-size",
      "8", "--dim", "16", "--depth", "2", "--heads", "2", "--mlp-dim", "32", "--num-classes", "3", "--data",
      dir .. "/images", "--out", dir .. "/out_vit", "--ae-epochs", "2", "--est-epochs", "2", "--subset", "0"}
    truthy(vit_ok, tostring(vit_metrics))
    near(vit_metrics.classifier_accuracy_checked, tonumber(vit_right) / tonumber(vit_total), 1e-9,
      "PyTorch's ViT accuracy")
    truthy(type(vit_metrics.latent_knn10_accuracy) == "number", "the ViT's map measured")
    local vit_opts = lm.json.decode(assert(io.open(dir .. "/out_vit/options.json")):read("a"))
    eq(vit_opts.blocks, "layers.0,layers.1")
    -- a torchvision MobileNetV2, its 17 blocks and last convolution recorded, averaged over space
    local mb_ok, mb_metrics = run{"--weights", dir .. "/mobilenet_v2.safetensors", "--arch", "mobilenet_v2",
      "--width-mult", "0.25", "--num-classes", "3", "--data", dir .. "/images", "--out", dir .. "/out_mobilenet",
      "--ae-epochs", "2", "--est-epochs", "2", "--subset", "0"}
    truthy(mb_ok, tostring(mb_metrics))
    near(mb_metrics.classifier_accuracy_checked, tonumber(mb_right) / tonumber(mb_total), 1e-9,
      "PyTorch's MobileNetV2 accuracy")
    truthy(type(mb_metrics.latent_knn10_accuracy) == "number", "the MobileNetV2's map measured")
    local mb_opts = lm.json.decode(assert(io.open(dir .. "/out_mobilenet/options.json")):read("a"))
    eq(select(2, mb_opts.blocks:gsub("features%.", "")), 18, "18 blocks recorded: " .. mb_opts.blocks)
    -- a Bottleneck ResNet (Lumen's own file, torchvision's names), its four stages recorded
    lm.manual_seed(4)
    lm.models.resnet50{num_classes = 3, width = 8, stem = "cifar"}:save(dir .. "/resnet50.safetensors")
    local r50_ok, r50_metrics = run{"--weights", dir .. "/resnet50.safetensors", "--arch", "resnet50", "--width", "8",
      "--num-classes", "3", "--data", dir .. "/images", "--out", dir .. "/out_resnet50", "--ae-epochs", "2",
      "--est-epochs", "2", "--subset", "0"}
    truthy(r50_ok, tostring(r50_metrics))
    truthy(type(r50_metrics.latent_knn10_accuracy) == "number", "the ResNet-50's map measured")
    eq(lm.json.decode(assert(io.open(dir .. "/out_resnet50/options.json")):read("a")).blocks,
      "layer1,layer2,layer3,layer4")
    -- mistakes are refused before any work: a validation set that would take every training image, and
    -- the sizes of the other kind of network
    local build = os.getenv("LUMEN_BUILD_DIR") or "build"
    local function refused(args, classes)
      local p = io.popen(string.format("'%s/lumen' experiments/introspect_pytorch.lua --weights '%s' --data '%s' "
        .. "--num-classes %d %s --out '%s/out2' 2>&1; echo \"status $?\"", build, dir .. "/resnet18_f16.safetensors",
        dir .. "/images", classes or 3, args, dir))
      local said = p:read("a")
      p:close()
      return said
    end
    eq(refused("--val 72"), "--val 72: the 72 training images must leave some to map (--val 0 for no validation "
      .. "set) (see --help)\nstatus 2\n")
    eq(refused("--arch vit --width 16"), "--width is not an option of --arch vit (see --help)\nstatus 2\n")
    eq(refused("--mlp-dim 32"), "--mlp-dim is not an option of --arch resnet18 (see --help)\nstatus 2\n")
    eq(refused("--width-mult 0.5"), "--width-mult is not an option of --arch resnet18 (see --help)\nstatus 2\n")
    eq(refused("--arch vgg11 --stem imagenet"), "--stem is not an option of --arch vgg11 (see --help)\nstatus 2\n")
    eq(refused("--arch mobilenet_v2 --width 16"), "--width is not an option of --arch mobilenet_v2 (see --help)\n"
      .. "status 2\n")
    -- a folder of 3 classes for a network of 10 outputs (it ran every stage, then failed at the atlas)
    local said = refused("", 10)
    truthy(said:find("has 3 classes (", 1, true) and said:find("but the network has 10 outputs (--num-classes 10)",
      1, true) and said:find("status 2\n$"), said)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("experiments/pytorch/train_resnet18_cifar10.py: its weights load strictly and give its accuracy", function()
    local dir = os.tmpname()
    os.remove(dir)
    lm.mkdir(dir)
    -- CIFAR-10 binary records (a label byte, 3,072 pixel bytes), 10 classes of one dominant colour each
    local mean, std = {0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}
    local rng = 1
    local function byte() rng = (rng * 1103515245 + 12345) % 2147483648 return rng >> 23 end
    local function write(name, records)
      local f = assert(io.open(dir .. "/" .. name, "wb"))
      for r = 1, records do
        local label = (r - 1) % 10
        local pixels = {}
        for c = 0, 2 do
          local level = ((label >> c) & 1) == 1 and 128 or 0
          for i = 1, 1024 do pixels[c * 1024 + i] = string.char(level + byte() % 128) end
        end
        f:write(string.char(label), table.concat(pixels))
      end
      f:close()
    end
    for i = 1, 5 do write("data_batch_" .. i .. ".bin", 20) end
    write("test_batch.bin", 30)
    local ran, out = py.run("experiments/pytorch/train_resnet18_cifar10.py", string.format(
      "--data '%s' --width 4 --epochs 8 --lr 0.05 --val 20 --batch 16 --threads 1 --out '%s/r18.safetensors'",
      dir, dir))
    truthy(ran, "the trainer failed:\n" .. out)
    truthy(out:find("80 training, 20 validation, 30 test images", 1, true), out)
    local f = assert(io.open(dir .. "/r18.json"))
    local report = lm.json.decode(f:read("a"))
    f:close()
    eq(report.train_images, 80)
    eq(report.test_images, 30)

    local net = lm.models.resnet18{num_classes = 10, stem = "cifar", width = 4}
    net:load(dir .. "/r18.safetensors") -- strict
    net:eval()
    local test = lm.data.cifar10{dir = dir}.test
    local x = (test.x - lm.tensor(mean):view(1, 3, 1, 1)) / lm.tensor(std):view(1, 3, 1, 1)
    local right = lm.no_grad(function() return net(x):argmax(2):eq(test.y):sum():item() end)
    near(right / 30, report.test_accuracy, 1e-9, "Lumen's accuracy with PyTorch's weights")
    local bad_ok, bad_out = py.run("experiments/pytorch/train_resnet18_cifar10.py",
      string.format("--data '%s' --val 100 --out '%s/x.safetensors'", dir, dir))
    truthy(not bad_ok, "--val 100 of 100 images is refused")
    truthy(bad_out:find("--val 100: the validation set must hold at least one of the 100 images and leave some",
      1, true), bad_out)
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
