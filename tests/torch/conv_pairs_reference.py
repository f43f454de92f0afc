"""Convolutions and pools with (h, w) pairs and padding 'same' against torch
(run by tests/lua/torch_conv_pairs_spec.lua).

  conv_pairs_reference.py write DIR
      DIR/cases.json: {"torch": version, "convs": [{name, shape, out, kernel
      [kh, kw], stride [sh, sw], padding [ph, pw] or 'same' / 'valid',
      dilation [dh, dw], groups, bias}], "pools": [{name, shape, max, kernel,
      stride, padding}]}; for each case DIR/<name>.safetensors holds "x", "w"
      and "b" (convolutions; "b" when bias), the upstream gradient "gy",
      torch's output "y" and the gradients "gx", "gw", "gb" of sum(y * gy).
      DIR/module.safetensors: the state_dict of a torch Sequential of such
      layers (random weights and batch-norm statistics), with
      DIR/module_io.safetensors its input "x" and its output "y" in eval mode.
"""
import json
import math
import sys
import warnings

import torch
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import save  # noqa: E402

# torch notes that an even kernel's padding 'same' copies the input; the values are what is tested
warnings.filterwarnings("ignore", "Using padding='same'")

# name, input [N, C, H, W], out channels, kernel, stride, padding, dilation, groups, bias
CONVS = [
    ("k1x7_pad0x3", (2, 3, 9, 10), 4, (1, 7), (1, 1), (0, 3), (1, 1), 1, True),
    ("k7x1_pad3x0", (2, 3, 10, 9), 4, (7, 1), (1, 1), (3, 0), (1, 1), 1, True),
    ("k3x5_s2x1_pad1x2", (2, 3, 11, 12), 5, (3, 5), (2, 1), (1, 2), (1, 1), 1, True),
    ("k5x3_s1x2_pad0x3", (2, 3, 12, 11), 4, (5, 3), (1, 2), (0, 3), (1, 1), 1, False),
    ("k3x5_valid", (2, 3, 8, 9), 4, (3, 5), (1, 1), "valid", (1, 1), 1, True),
    # wide enough for the direct kernels (strided forward, input gradient)
    ("direct_k3x5_s2x1_pad1x2", (2, 20, 16, 18), 24, (3, 5), (2, 1), (1, 2), (1, 1), 1, True),
    ("direct_k5x3_s1x3_pad2x0", (2, 20, 14, 25), 24, (5, 3), (1, 3), (2, 0), (1, 1), 1, False),
    ("direct_k1x7_s1x2_pad0x3", (2, 20, 10, 30), 24, (1, 7), (1, 2), (0, 3), (1, 1), 1, True),
    ("direct_k3_s2x1_pad1", (2, 20, 17, 16), 24, (3, 3), (2, 1), (1, 1), (1, 1), 1, True),
    # 3x3 at stride 1, Winograd's layers, with padding that differs by dimension
    ("winograd_pad0x1", (2, 16, 10, 12), 16, (3, 3), (1, 1), (0, 1), (1, 1), 1, True),
    ("winograd_pad2x1", (2, 16, 9, 11), 16, (3, 3), (1, 1), (2, 1), (1, 1), 1, False),
    ("winograd_pad1x0", (2, 16, 12, 9), 16, (3, 3), (1, 1), (1, 0), (1, 1), 1, True),
    # planes of at most 16 tiles (Winograd's small-plane transforms and weight gradient)
    ("winograd_small_pad0x1", (3, 16, 6, 8), 16, (3, 3), (1, 1), (0, 1), (1, 1), 1, True),
    ("winograd_small_pad2x0", (3, 16, 5, 9), 16, (3, 3), (1, 1), (2, 0), (1, 1), 1, True),
    # padding 'same': even kernels pad one more at the bottom or right, as torch
    ("same_k2", (2, 3, 9, 10), 4, (2, 2), (1, 1), "same", (1, 1), 1, True),
    ("same_k4", (2, 3, 9, 10), 4, (4, 4), (1, 1), "same", (1, 1), 1, True),
    ("same_k2x4", (2, 3, 9, 10), 4, (2, 4), (1, 1), "same", (1, 1), 1, False),
    ("same_k3x4", (2, 3, 9, 10), 4, (3, 4), (1, 1), "same", (1, 1), 1, True),
    ("same_k3x4_wide", (2, 16, 9, 10), 16, (3, 4), (1, 1), "same", (1, 1), 1, True),
    ("same_k3_d2", (2, 3, 11, 10), 4, (3, 3), (1, 1), "same", (2, 2), 1, True),
    ("same_k2_d2", (2, 3, 9, 10), 4, (2, 2), (1, 1), "same", (2, 2), 1, True),
    ("same_k3x2_d2x3", (2, 3, 11, 12), 4, (3, 2), (1, 1), "same", (2, 3), 1, True),
    ("same_k3_winograd", (2, 16, 9, 10), 16, (3, 3), (1, 1), "same", (1, 1), 1, True),
    # grouped and depthwise with pairs
    ("groups2_k3x1_s1x2", (2, 4, 9, 10), 6, (3, 1), (1, 2), (1, 0), (1, 1), 2, True),
    ("depthwise_k1x5_pad0x2", (2, 8, 9, 10), 8, (1, 5), (1, 1), (0, 2), (1, 1), 8, True),
    ("depthwise_k5x3_s2x1_pad2x1", (3, 6, 13, 11), 6, (5, 3), (2, 1), (2, 1), (1, 1), 6, True),
    ("depthwise_x2_k3x7_s1x2_pad1x3", (2, 5, 10, 15), 10, (3, 7), (1, 2), (1, 3), (1, 1), 5, False),
    ("depthwise_same_k4x3", (2, 6, 9, 10), 6, (4, 3), (1, 1), "same", (1, 1), 6, True),
    ("depthwise_same_k2_d2x1", (2, 6, 9, 10), 12, (2, 2), (1, 1), "same", (2, 1), 6, True),
]

# name, input, max, kernel, stride, padding[, ceil_mode, count_include_pad[, values]]: values "ties" are
# -1, 0 and 1 with -inf scattered and in whole windows (see pool_input), else normal draws
POOLS = [
    ("max_k2x3_s2x1_pad1", (2, 3, 9, 10), True, (2, 3), (2, 1), (1, 1)),
    ("avg_k2x3_s2x1_pad1", (2, 3, 9, 10), False, (2, 3), (2, 1), (1, 1)),
    ("max_k3x1", (2, 3, 9, 10), True, (3, 1), None, (0, 0)),
    ("avg_k1x3_s1x2_pad0x1", (2, 3, 8, 11), False, (1, 3), (1, 2), (0, 1)),
    ("max_k3_s2x1_pad1x0", (2, 4, 11, 10), True, (3, 3), (2, 1), (1, 0)),
    ("avg_k4x2_s3x2_pad2x1", (2, 4, 13, 10), False, (4, 2), (3, 2), (2, 1)),
    # torch's ceil_mode (windows past the padding) and count_include_pad=False
    ("max_ceil_k3_s2", (2, 3, 10, 11), True, (3, 3), (2, 2), (0, 0), True, True),
    ("max_ceil_k2x3_s2_pad1", (2, 3, 9, 10), True, (2, 3), (2, 2), (1, 1), True, True),
    ("max_ceil_last_window_dropped", (2, 2, 5, 5), True, (2, 2), (2, 2), (1, 1), True, True),
    ("avg_ceil_k3_s2_pad1", (2, 3, 10, 11), False, (3, 3), (2, 2), (1, 1), True, True),
    ("avg_ceil_k3_s3", (2, 3, 8, 10), False, (3, 3), (3, 3), (0, 0), True, True),
    ("avg_ceil_exclude_k3x2_s2x3_pad1", (2, 3, 10, 11), False, (3, 2), (2, 3), (1, 1), True, False),
    ("avg_exclude_k3_s1_pad1", (2, 3, 7, 8), False, (3, 3), (1, 1), (1, 1), False, False),
    ("avg_exclude_k2x4_s2x1_pad1x2", (2, 3, 9, 10), False, (2, 4), (2, 1), (1, 2), False, False),
    # inputs smaller than the kernel, which ceil_mode pools (the padded input too, with padding)
    ("max_ceil_small", (1, 2, 2, 2), True, (3, 3), (2, 2), (0, 0), True, True),
    ("max_ceil_small_1x1", (1, 2, 1, 1), True, (2, 2), (2, 2), (0, 0), True, True),
    ("max_ceil_small_pad1", (1, 2, 1, 2), True, (4, 4), (3, 3), (1, 1), True, True),
    ("avg_ceil_small", (1, 2, 3, 3), False, (4, 4), (4, 4), (0, 0), True, True),
    ("avg_ceil_small_exclude", (1, 2, 3, 3), False, (4, 4), (4, 4), (0, 0), True, False),
    ("avg_ceil_small_pad1", (1, 2, 1, 2), False, (4, 4), (2, 2), (1, 1), True, True),
    ("avg_ceil_small_pad1_exclude", (1, 2, 1, 2), False, (4, 4), (2, 2), (1, 1), True, False),
    # ties and -inf (whole windows of it, in the padding's and the ceil windows' corners): torch's
    # gradient goes to each window's first maximum
    ("max_ties_inf_k3_s2_pad1", (2, 3, 9, 9), True, (3, 3), (2, 2), (1, 1), False, True, "ties"),
    ("max_ties_inf_k2x3_s1_pad1", (2, 3, 6, 7), True, (2, 3), (1, 1), (1, 1), False, True, "ties"),
    ("max_ceil_ties_inf_k3_s2", (2, 3, 8, 8), True, (3, 3), (2, 2), (0, 0), True, True, "ties"),
    ("max_ceil_ties_inf_k3_s2_pad1", (2, 3, 8, 9), True, (3, 3), (2, 2), (1, 1), True, True, "ties"),
    # average pools whose last window would start in the bottom or right padding (dropped, as torch)
    ("avg_ceil_last_window_dropped", (2, 2, 5, 5), False, (2, 2), (2, 2), (1, 1), True, True),
    ("avg_ceil_exclude_last_window_dropped", (2, 2, 5, 7), False, (2, 2), (2, 2), (1, 1), True, False),
    # count_include_pad=False at every border: top and left padding, bottom and right padding and ceil windows
    ("avg_ceil_exclude_every_border", (2, 3, 6, 8), False, (3, 3), (2, 2), (1, 1), True, False),
    ("avg_exclude_every_border_k3x2_s1", (2, 3, 5, 6), False, (3, 2), (1, 1), (1, 1), False, False),
    ("avg_exclude_every_border_k5_s2", (2, 3, 9, 8), False, (5, 5), (2, 2), (2, 2), False, False),
]


def seed(name):
    torch.manual_seed(sum(map(ord, name)))


def write_conv(folder, case):
    name, shape, out, k, stride, pad, dil, groups, bias = case
    seed(name)
    x = (torch.randn(*shape) * 1.5 + 0.3).requires_grad_(True)
    w = (torch.randn(out, shape[1] // groups, *k) * 0.5).requires_grad_(True)
    b = torch.randn(out).requires_grad_(True) if bias else None
    y = nn.functional.conv2d(x, w, b, stride, pad, dil, groups)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    t = {"x": x.detach(), "w": w.detach(), "gy": gy, "y": y.detach(), "gx": x.grad, "gw": w.grad}
    if bias:
        t["b"], t["gb"] = b.detach(), b.grad
    save(f"{folder}/{name}.safetensors", {k: v.contiguous() for k, v in t.items()})
    return {"name": name, "shape": list(shape), "out": out, "kernel": list(k), "stride": list(stride),
            "padding": pad if isinstance(pad, str) else list(pad), "dilation": list(dil), "groups": groups,
            "bias": bias}


def pool_input(shape, values):
    if values != "ties":
        return torch.randn(*shape)
    x = torch.randint(-1, 2, shape).float()  # many equal maxima in a window
    x[:, :, ::3, 1::4] = -math.inf
    x[:, 0, :2, :2] = -math.inf  # the top-left windows (padding and input) all -inf
    x[:, 1, -2:, -2:] = -math.inf  # the bottom-right ones, ceil windows included
    return x


def write_pool(folder, case):
    name, shape, is_max, k, stride, pad = case[:6]
    ceil, include = case[6:8] if len(case) > 6 else (False, True)
    values = case[8] if len(case) > 8 else "normal"
    seed(name)
    x = pool_input(shape, values).requires_grad_(True)
    if is_max:
        y = nn.functional.max_pool2d(x, k, stride, pad, ceil_mode=ceil)
    else:
        y = nn.functional.avg_pool2d(x, k, stride, pad, ceil_mode=ceil, count_include_pad=include)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    save(f"{folder}/{name}.safetensors", {"x": x.detach(), "gy": gy, "y": y.detach(), "gx": x.grad})
    return {"name": name, "shape": list(shape), "max": is_max, "kernel": list(k),
            "stride": list(stride) if stride else None, "padding": list(pad), "ceil_mode": ceil,
            "count_include_pad": include, "values": values}


def module():
    """Factorised (1x7, 7x1) and rectangular layers, pools and batch norms, as Inception builds them."""
    return nn.Sequential(
        nn.Conv2d(3, 8, (1, 7), padding=(0, 3)),
        nn.ReLU(),
        nn.Conv2d(8, 8, (7, 1), padding=(3, 0), groups=8, bias=False),
        nn.BatchNorm2d(8),
        nn.MaxPool2d((2, 3), stride=(2, 1), padding=(1, 1)),
        nn.Conv2d(8, 6, (3, 5), stride=(2, 1), padding=(1, 2), bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 6, 4, padding="same", bias=False),
        nn.BatchNorm2d(6),
        nn.Conv2d(6, 6, (3, 4), padding="same", dilation=2),
        nn.AvgPool2d((3, 1), stride=(1, 2), padding=(1, 0)),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        nn.AvgPool2d((2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True, count_include_pad=False),
    )


def write(folder):
    convs = [write_conv(folder, c) for c in CONVS]
    pools = [write_pool(folder, c) for c in POOLS]
    torch.manual_seed(5)
    m = module()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for name, buf in m.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn_like(buf) * 0.2)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand_like(buf) + 0.5)
    m.eval()
    save(f"{folder}/module.safetensors", {k: v.contiguous() for k, v in m.state_dict().items()})
    x = torch.randn(2, 3, 17, 19)
    with torch.no_grad():
        y = m(x)
    save(f"{folder}/module_io.safetensors", {"x": x, "y": y})
    with open(f"{folder}/cases.json", "w") as f:
        json.dump({"torch": torch.__version__, "convs": convs, "pools": pools}, f)


if __name__ == "__main__":
    write(sys.argv[2])
