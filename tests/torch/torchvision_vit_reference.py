"""torchvision's VisionTransformer, the reference of
tests/lua/torch_vit_names_spec.lua: a small one (16x16 images, 8x8 patches,
two layers) with seeded, perturbed weights (so that no parameter sits at its
initial zeros or ones), its state_dict under torchvision's names, an input
batch and torchvision's output in evaluation mode.

    python3 torchvision_vit_reference.py write FOLDER
"""
import os
import sys

import torch
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_file import save  # noqa: E402

CONFIG = dict(image_size=16, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=5)


def write(folder):
    torch.manual_seed(11)
    model = VisionTransformer(**CONFIG).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        y = model(x)
    save(f"{folder}/vit_torchvision.safetensors", model.state_dict(), {"format": "pt"})
    save(f"{folder}/vit_torchvision_io.safetensors", {"x": x, "y": y}, {"format": "pt"})


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "write":
        sys.exit("usage: torchvision_vit_reference.py write FOLDER")
    write(sys.argv[2])
