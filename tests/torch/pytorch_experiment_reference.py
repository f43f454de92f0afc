"""The PyTorch side of tests/lua/introspect_pytorch_spec.lua.

  pytorch_experiment_reference.py DIR
      trains a torchvision ResNet-18 (CIFAR stem, 3 classes) a few seeded
      SGD steps on random images, saves its state_dict in half precision as
      DIR/resnet18_f16.safetensors, and prints its accuracy (with the
      half-rounded weights, in evaluation mode, CIFAR-10's normalisation) on
      the PNG files of DIR/images/test/<class>/, read with PIL: the number
      experiments/introspect_pytorch.lua must report for the same files.
      Then the same for a torchvision VisionTransformer (32x32 images, 8x8
      patches, 2 layers of 2 heads, hidden 16, MLP 32) saved in bfloat16 as
      DIR/vit_bf16.safetensors: a second line with its accuracy; then a
      torchvision MobileNetV2 (width_mult 0.25, its first convolution at
      stride 1: Lumen's 'cifar' stem) in float32 as
      DIR/mobilenet_v2.safetensors: a third line.
"""
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dtype_reference import save  # noqa: E402

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def model():
    m = torchvision.models.resnet18(num_classes=3)
    m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = torch.nn.Identity()
    return m


def vit():
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                             num_classes=3)


def mobilenet():
    m = torchvision.models.mobilenet_v2(num_classes=3, width_mult=0.25)
    m.features[0][0].stride = (1, 1)
    return m


def trained(make, dtype, path):
    """make() trained 3 seeded SGD steps on random images, saved in dtype at
    path, and returned as loaded back from the rounded values"""
    torch.manual_seed(5)
    net = make()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 3, (8,))
        loss = torch.nn.functional.cross_entropy(net((x - MEAN) / STD), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rounded = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    save(path, rounded)
    net = make()
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in rounded.items()}, strict=True)
    return net.eval()


def accuracy(net, root):
    right = total = 0
    for label, name in enumerate(sorted(os.listdir(root))):
        for f in sorted(os.listdir(os.path.join(root, name))):
            img = np.asarray(Image.open(os.path.join(root, name, f)).convert("RGB"), dtype=np.float32) / 255
            x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)
            with torch.no_grad():
                pred = int(net((x - MEAN) / STD).argmax(1))
            right += pred == label
            total += 1
    return right, total


def main(folder):
    root = os.path.join(folder, "images", "test")
    for make, dtype, name in ((model, torch.float16, "resnet18_f16"), (vit, torch.bfloat16, "vit_bf16"),
                              (mobilenet, torch.float32, "mobilenet_v2")):
        net = trained(make, dtype, os.path.join(folder, name + ".safetensors"))
        print("%d %d" % accuracy(net, root))


if __name__ == "__main__":
    main(sys.argv[1])
