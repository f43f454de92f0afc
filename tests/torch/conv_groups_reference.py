"""Grouped and dilated convolutions against torch.nn.functional.conv2d and
torch.nn.Conv2d (run by tests/lua/torch_conv_groups_spec.lua).

  conv_groups_reference.py write DIR
      DIR/cases.json: {"torch": version, "cases": [{name, shape, out, kernel,
      stride, padding, dilation [dh, dw], groups, bias}]}; for each case
      DIR/<name>.safetensors holds "x", "w", "b" (when bias), the upstream
      gradient "gy", torch's output "y" and gradients "gx", "gw", "gb" of
      sum(y * gy). DIR/module.safetensors: the state_dict of a torch
      Sequential of grouped, depthwise and dilated nn.Conv2d layers (random
      weights), with DIR/module_io.safetensors its input "x" and output "y".
"""
import json
import sys

import torch
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import save  # noqa: E402

# name, input [N, C, H, W], out channels, kernel, stride, padding, dilation (dh, dw), groups, bias
CASES = [
    ("groups2", (2, 4, 9, 9), 6, 3, 1, 1, (1, 1), 2, True),
    ("groups2_stride2_odd", (3, 6, 11, 9), 4, 3, 2, 1, (1, 1), 2, True),
    ("groups3_5x5", (2, 6, 10, 10), 9, 5, 1, 2, (1, 1), 3, False),
    ("depthwise", (2, 8, 10, 10), 8, 3, 1, 1, (1, 1), 8, True),
    ("depthwise_x2", (2, 5, 9, 11), 10, 3, 1, 1, (1, 1), 5, True),
    ("depthwise_x2_stride2", (3, 4, 13, 10), 8, 3, 2, 1, (1, 1), 4, True),
    ("depthwise_mobilenet_s2", (2, 16, 14, 14), 16, 3, 2, 1, (1, 1), 16, False),
    ("depthwise_convnext_7x7", (2, 12, 14, 14), 12, 7, 1, 3, (1, 1), 12, True),
    ("depthwise_5x5_s2_odd", (3, 6, 15, 13), 6, 5, 2, 2, (1, 1), 6, True),
    ("dilation2", (2, 3, 11, 11), 4, 3, 1, 2, (2, 2), 1, True),
    ("dilation2_stride2", (3, 3, 13, 12), 5, 3, 2, 1, (2, 2), 1, True),
    ("dilation23", (2, 3, 12, 14), 4, 3, 1, 2, (2, 3), 1, True),
    ("dilation23_stride2_pad3", (2, 4, 13, 15), 4, 3, 2, 3, (2, 3), 1, False),
    ("dilation2_groups2", (2, 4, 11, 11), 6, 3, 1, 2, (2, 2), 2, True),
    ("dilation23_depthwise_s2", (3, 6, 15, 14), 6, 3, 2, 3, (2, 3), 6, True),
    ("dilation3_depthwise_x2", (2, 3, 12, 12), 6, 3, 1, 3, (3, 3), 3, True),
    ("dilation2_groups2_1x1_pad", (2, 4, 5, 5), 4, 1, 1, 1, (2, 2), 2, True),
]


def write_case(folder, case):
    name, shape, out, k, stride, pad, dil, groups, bias = case
    torch.manual_seed(sum(map(ord, name)))
    x = (torch.randn(*shape) * 1.5 + 0.3).requires_grad_(True)
    w = (torch.randn(out, shape[1] // groups, k, k) * 0.5).requires_grad_(True)
    b = torch.randn(out).requires_grad_(True) if bias else None
    y = nn.functional.conv2d(x, w, b, stride, pad, dil, groups)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    t = {"x": x.detach(), "w": w.detach(), "gy": gy, "y": y.detach(), "gx": x.grad, "gw": w.grad}
    if bias:
        t["b"], t["gb"] = b.detach(), b.grad
    save(f"{folder}/{name}.safetensors", {k: v.contiguous() for k, v in t.items()})
    return {"name": name, "shape": list(shape), "out": out, "kernel": k, "stride": stride,
            "padding": pad, "dilation": list(dil), "groups": groups, "bias": bias}


def module():
    """A depthwise-separable stack as MobileNet and ConvNeXt build it, with a dilated layer."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),
        nn.Conv2d(8, 16, 1),
        nn.Conv2d(16, 16, 7, padding=3, groups=16),
        nn.Conv2d(16, 8, 3, padding=2, dilation=2, groups=4),
        nn.Conv2d(8, 8, 3, padding=3, dilation=(2, 3)),
    )


def write(folder):
    cases = [write_case(folder, c) for c in CASES]
    torch.manual_seed(5)
    m = module()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    save(f"{folder}/module.safetensors", {k: v.contiguous() for k, v in m.state_dict().items()})
    x = torch.randn(2, 3, 17, 17)
    with torch.no_grad():
        y = m(x)
    save(f"{folder}/module_io.safetensors", {"x": x, "y": y})
    with open(f"{folder}/cases.json", "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)


if __name__ == "__main__":
    write(sys.argv[2])
