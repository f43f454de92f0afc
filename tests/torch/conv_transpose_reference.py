"""Transposed convolutions against torch.nn.functional.conv_transpose2d and
torch.nn.ConvTranspose2d (run by tests/lua/torch_conv_transpose_spec.lua).

  conv_transpose_reference.py write DIR
      DIR/cases.json: {"torch": version, "cases": [{name, shape, out, kernel,
      stride, padding, output_padding, dilation [dh, dw], groups, bias}],
      "init": {inputs, outputs, kernel, groups, fan_in, weight_bound,
      bias_bound}}; for each case DIR/<name>.safetensors holds "x", "w", "b"
      (when bias), the upstream gradient "gy", torch's output "y" and
      gradients "gx", "gw", "gb" of sum(y * gy). DIR/module.safetensors: the
      state_dict of a torch Sequential of nn.ConvTranspose2d layers (random
      weights), with DIR/module_io.safetensors its input "x" and output "y".
      "init" holds the bounds of torch's default initialisation of one
      grouped nn.ConvTranspose2d, from torch's own fan-in.
"""
import json
import math
import sys

import torch
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import save  # noqa: E402

# name, input [N, C, H, W], out channels, kernel, stride, padding, output_padding,
# dilation (dh, dw), groups, bias
CASES = [
    ("stride1", (2, 3, 5, 5), 4, 3, 1, 0, 0, (1, 1), 1, True),
    ("stride2_outpad1", (2, 3, 5, 6), 4, 3, 2, 1, 1, (1, 1), 1, True),
    ("pad1", (2, 4, 6, 6), 3, 3, 1, 1, 0, (1, 1), 1, True),
    ("pad2_k5", (2, 3, 7, 7), 5, 5, 1, 2, 0, (1, 1), 1, True),
    ("k2_stride2_unet", (2, 8, 4, 4), 4, 2, 2, 0, 0, (1, 1), 1, True),
    ("k4_stride2_pad1_dcgan", (3, 6, 5, 5), 3, 4, 2, 1, 0, (1, 1), 1, True),
    ("k5_stride2_pad2_outpad1", (2, 3, 6, 5), 4, 5, 2, 2, 1, (1, 1), 1, True),
    ("k1_stride2_outpad1", (2, 4, 5, 5), 3, 1, 2, 0, 1, (1, 1), 1, True),
    ("k3_16ch_pad1", (2, 16, 8, 8), 16, 3, 1, 1, 0, (1, 1), 1, True),
    ("groups2", (2, 4, 5, 5), 6, 3, 2, 1, 1, (1, 1), 2, True),
    ("groups3_pad2_k5", (2, 6, 6, 6), 9, 5, 1, 2, 0, (1, 1), 3, False),
    ("depthwise", (2, 6, 5, 5), 6, 3, 1, 1, 0, (1, 1), 6, True),
    ("depthwise_x2_stride2", (2, 4, 5, 6), 8, 3, 2, 1, 1, (1, 1), 4, True),
    ("dilation2", (2, 3, 5, 5), 4, 3, 1, 2, 0, (2, 2), 1, True),
    ("dilation23_stride2", (2, 3, 6, 5), 4, 3, 2, 1, 1, (2, 3), 1, True),
    # output_padding at least the stride, below the dilation: the conv it
    # transposes is taller and wider than the input
    ("dilation2_outpad1_stride1", (2, 3, 5, 5), 4, 3, 1, 0, 1, (2, 2), 1, True),
    ("dilation34_stride2_outpad2", (2, 3, 5, 4), 4, 3, 2, 1, 2, (3, 4), 1, True),
    ("dilation2_groups2", (2, 4, 5, 5), 6, 3, 2, 2, 1, (2, 2), 2, True),
    ("no_bias_stride2", (2, 5, 4, 6), 3, 3, 2, 1, 1, (1, 1), 1, False),
    ("batch1", (1, 3, 4, 4), 2, 3, 2, 1, 0, (1, 1), 1, True),
    ("non_square", (2, 3, 4, 9), 5, 3, 2, 1, 1, (1, 1), 1, True),
    # kernel, stride, padding and output_padding as (h, w) pairs
    ("pairs_k2x3_s21_p10_op10", (2, 3, 5, 6), 4, (2, 3), (2, 1), (1, 0), (1, 0), (1, 1), 1, True),
    ("pairs_k1x5_s12_p02_op01_groups2", (2, 4, 4, 5), 6, (1, 5), (1, 2), (0, 2), (0, 1), (1, 1), 2, True),
    ("pairs_k3x1_s3_p1_dil21", (2, 3, 4, 4), 2, (3, 1), 3, (1, 0), (2, 0), (2, 1), 1, False),
]


def write_case(folder, case):
    name, shape, out, k, stride, pad, out_pad, dil, groups, bias = case
    torch.manual_seed(sum(map(ord, name)))
    x = (torch.randn(*shape) * 1.5 + 0.3).requires_grad_(True)
    kh, kw = (k, k) if isinstance(k, int) else k
    w = (torch.randn(shape[1], out // groups, kh, kw) * 0.5).requires_grad_(True)
    b = torch.randn(out).requires_grad_(True) if bias else None
    y = nn.functional.conv_transpose2d(x, w, b, stride, pad, out_pad, groups, dil)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    t = {"x": x.detach(), "w": w.detach(), "gy": gy, "y": y.detach(), "gx": x.grad, "gw": w.grad}
    if bias:
        t["b"], t["gb"] = b.detach(), b.grad
    save(f"{folder}/{name}.safetensors", {k: v.contiguous() for k, v in t.items()})
    return {"name": name, "shape": list(shape), "out": out, "kernel": k, "stride": stride,
            "padding": pad, "output_padding": out_pad, "dilation": list(dil), "groups": groups,
            "bias": bias}


def module():
    """A decoder as U-Nets and autoencoders build it: upsampling by 2 three ways."""
    return nn.Sequential(
        nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(6, 6, 3, padding=1, groups=3, bias=False),
        nn.ConvTranspose2d(6, 4, 2, stride=2),
        nn.ConvTranspose2d(4, 3, 3, stride=2, padding=2, output_padding=1, dilation=(2, 3)),
        nn.ConvTranspose2d(3, 2, (1, 3), stride=(1, 2), padding=(0, 1), output_padding=(0, 1)),
    )


def init_bounds():
    """torch's default init of a grouped layer: kaiming_uniform_(a = sqrt 5) on the weight
    [in, out / groups, k, k], whose fan-in torch takes from dimension 1 (out / groups * k * k)."""
    inputs, outputs, kernel, groups = 16, 32, 3, 2
    m = nn.ConvTranspose2d(inputs, outputs, kernel, groups=groups)
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
    gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    return {"inputs": inputs, "outputs": outputs, "kernel": kernel, "groups": groups,
            "fan_in": fan_in, "weight_bound": gain * math.sqrt(3 / fan_in),
            "bias_bound": 1 / math.sqrt(fan_in),
            "torch_weight_max": m.weight.abs().max().item(),
            "torch_bias_max": m.bias.abs().max().item()}


def write(folder):
    cases = [write_case(folder, c) for c in CASES]
    torch.manual_seed(5)
    m = module()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    save(f"{folder}/module.safetensors", {k: v.contiguous() for k, v in m.state_dict().items()})
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        y = m(x)
    save(f"{folder}/module_io.safetensors", {"x": x, "y": y})
    with open(f"{folder}/cases.json", "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases, "init": init_bounds()}, f)


if __name__ == "__main__":
    write(sys.argv[2])
