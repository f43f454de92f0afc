"""Padding and resampling against torch.nn.functional.pad and
torch.nn.functional.interpolate (run by tests/lua/torch_resample_spec.lua).

  resample_reference.py write DIR
      DIR/cases.json: {"torch": version, "cases": [{name, op ("pad" or
      "interpolate"), shape, transposed, and the op's arguments: pad, mode,
      value; or size, scale_factor, mode, align_corners,
      recompute_scale_factor}]}; for each case DIR/<name>.safetensors holds
      the input "x" (contiguous; a transposed case transposes its last two
      dimensions into a view first), the upstream gradient "gy", torch's
      output "y" and the input gradient "gx" of sum(y * gy).

torch 1.13's bicubic and nearest backward copy the gradient through where
the output keeps the input's size, while their forward still resamples
(scale_factor 1.05 on 10 gives 10 and a shifted grid; torch.autograd.gradcheck
fails there). For such a case ("forward_gradient": true) gx is the gradient of
torch's forward itself: the op is linear on each plane, so gx is its
plane-to-plane matrix, formed by resampling unit planes in float64,
transposed and applied to gy.
"""
import json
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import save  # noqa: E402


def pad(name, shape, p, mode="constant", value=None, transposed=False):
    return {"name": name, "op": "pad", "shape": shape, "pad": p, "mode": mode, "value": value,
            "transposed": transposed}


def interp(name, shape, mode="nearest", size=None, scale=None, align=None, recompute=None,
           transposed=False, forward_gradient=False):
    return {"name": name, "op": "interpolate", "shape": shape, "mode": mode, "size": size,
            "scale_factor": scale, "align_corners": align, "recompute_scale_factor": recompute,
            "transposed": transposed, "forward_gradient": forward_gradient}


CASES = [
    pad("constant_2", [2, 3, 7], [1, 2]),
    pad("constant_4_value", [2, 3, 5, 6], [1, 2, 0, 3], value=1.5),
    pad("constant_6", [2, 2, 3, 4, 5], [1, 0, 2, 1, 0, 2]),
    pad("constant_8_batch", [2, 3, 4, 5], [1, 1, 0, 2, 1, 0, 1, 1], value=-2.0),
    pad("constant_negative", [2, 3, 5, 6], [-1, 2, -2, 1]),
    pad("constant_negative_both", [2, 3, 5, 6], [-2, -1, 1, -3], value=0.5),
    pad("constant_crop_empty", [1, 2, 6], [-6, 0]),
    pad("constant_transposed", [2, 3, 5, 6], [2, 1, 1, 2], value=3.0, transposed=True),
    pad("reflect_2", [2, 3, 7], [3, 2], "reflect"),
    pad("reflect_2_max", [2, 3, 7], [6, 6], "reflect"),
    pad("reflect_2_unbatched", [3, 7], [2, 4], "reflect"),
    pad("reflect_4", [2, 3, 5, 6], [2, 1, 3, 0], "reflect"),
    pad("reflect_4_max", [2, 3, 5, 6], [5, 5, 4, 4], "reflect"),
    pad("reflect_4_unbatched", [3, 5, 6], [1, 1, 1, 1], "reflect"),
    pad("reflect_6", [1, 2, 3, 4, 5], [1, 2, 1, 1, 2, 0], "reflect"),
    pad("reflect_negative", [2, 3, 6], [-1, 5], "reflect"),
    pad("reflect_transposed", [2, 3, 5, 6], [2, 3, 1, 2], "reflect", transposed=True),
    pad("replicate_2", [2, 3, 7], [4, 2], "replicate"),
    pad("replicate_4", [2, 3, 5, 6], [2, 6, 3, 1], "replicate"),
    pad("replicate_6", [1, 2, 3, 4, 5], [2, 1, 0, 3, 1, 1], "replicate"),
    pad("replicate_negative", [2, 3, 5, 6], [-2, 3, 1, -1], "replicate"),
    pad("circular_2", [2, 3, 7], [3, 2], "circular"),
    pad("circular_4_full", [2, 3, 5, 6], [6, 6, 5, 5], "circular"),
    pad("circular_6", [1, 2, 3, 4, 5], [1, 2, 1, 1, 2, 0], "circular"),
    pad("circular_negative", [2, 3, 6], [-3, 2], "circular"),
    pad("circular_negative_4", [2, 3, 5, 6], [2, -3, -1, 1], "circular"),
    interp("nearest_x2", [2, 3, 5, 7], scale=2),
    interp("nearest_half", [2, 3, 8, 9], scale=0.5),
    interp("nearest_1.7", [2, 3, 5, 7], scale=1.7),
    interp("nearest_pair", [2, 3, 5, 7], scale=[2, 1.5]),
    interp("nearest_same_size_scale", [2, 3, 10, 10], scale=1.05, forward_gradient=True),
    interp("nearest_one_same_size_scale", [2, 3, 10, 7], scale=[1.05, 2], forward_gradient=True),
    interp("nearest_1d_same_size_scale", [2, 3, 10], scale=1.05, forward_gradient=True),
    interp("nearest_exact_same_size_scale", [2, 3, 10, 7], "nearest-exact", scale=[1.05, 2]),
    interp("nearest_recompute", [2, 3, 5, 7], scale=1.7, recompute=True),
    interp("nearest_size_up", [2, 3, 5, 7], size=[9, 11]),
    interp("nearest_size_down", [2, 3, 9, 11], size=[4, 6]),
    interp("nearest_1d", [2, 3, 7], scale=1.7),
    interp("nearest_1d_size", [2, 3, 7], size=3),
    interp("nearest_exact_1.7", [2, 3, 5, 7], "nearest-exact", scale=1.7),
    interp("nearest_exact_size", [2, 3, 9, 7], "nearest-exact", size=[4, 10]),
    interp("nearest_transposed", [2, 3, 5, 7], scale=1.7, transposed=True),
    interp("linear_x2", [2, 3, 7], "linear", scale=2),
    interp("linear_x2_corners", [2, 3, 7], "linear", scale=2, align=True),
    interp("linear_half", [2, 3, 9], "linear", scale=0.5),
    interp("linear_1.7_corners", [2, 3, 7], "linear", scale=1.7, align=True),
    interp("linear_size_down", [2, 3, 11], "linear", size=4),
    interp("linear_size_one_corners", [2, 3, 5], "linear", size=1, align=True),
    interp("bilinear_x2", [2, 3, 5, 7], "bilinear", scale=2),
    interp("bilinear_x2_corners", [2, 3, 5, 7], "bilinear", scale=2, align=True),
    interp("bilinear_half", [2, 3, 8, 9], "bilinear", scale=0.5),
    interp("bilinear_half_corners", [2, 3, 8, 9], "bilinear", scale=0.5, align=True),
    interp("bilinear_1.7", [2, 3, 5, 7], "bilinear", scale=1.7),
    interp("bilinear_1.7_corners", [2, 3, 5, 7], "bilinear", scale=1.7, align=True),
    interp("bilinear_same_size_scale", [2, 3, 10, 10], "bilinear", scale=1.05),
    interp("bilinear_one_same_size_scale", [2, 3, 10, 7], "bilinear", scale=[1.05, 2]),
    interp("linear_same_size_scale", [2, 3, 10], "linear", scale=1.05),
    interp("bilinear_recompute", [2, 3, 5, 7], "bilinear", scale=1.7, recompute=True),
    interp("bilinear_size", [2, 3, 5, 7], "bilinear", size=[9, 4]),
    interp("bilinear_size_corners", [2, 3, 5, 7], "bilinear", size=[3, 11], align=True),
    interp("bilinear_from_one", [2, 3, 1, 5], "bilinear", size=[3, 7]),
    interp("bilinear_transposed", [2, 3, 5, 7], "bilinear", scale=1.7, transposed=True),
    interp("bicubic_x2", [2, 3, 5, 7], "bicubic", scale=2),
    interp("bicubic_x2_corners", [2, 3, 5, 7], "bicubic", scale=2, align=True),
    interp("bicubic_half", [2, 3, 8, 9], "bicubic", scale=0.5),
    interp("bicubic_1.7", [2, 3, 5, 7], "bicubic", scale=1.7),
    interp("bicubic_size_corners", [2, 3, 5, 7], "bicubic", size=[9, 4], align=True),
    interp("bicubic_same_size_scale", [2, 3, 10, 10], "bicubic", scale=1.05, forward_gradient=True),
    interp("bicubic_one_same_size_scale", [2, 3, 10, 7], "bicubic", scale=[1.05, 2]),
]


def run(case, x):
    if case["op"] == "pad":
        kw = {"mode": case["mode"]}
        if case["value"] is not None:
            kw["value"] = case["value"]
        return F.pad(x, case["pad"], **kw)
    return F.interpolate(x, size=case["size"], scale_factor=case["scale_factor"], mode=case["mode"],
                         align_corners=case["align_corners"],
                         recompute_scale_factor=case["recompute_scale_factor"])


def forward_gradient(case, shape, gy):
    """The input gradient of sum(y * gy) from the forward alone (a linear map of each plane)."""
    plane = 1
    for n in shape[2:]:
        plane *= n
    # two channels: torch 1.13 takes another kernel for one (that copies where sizes stay)
    unit = torch.eye(plane, dtype=torch.float64).view(plane, 1, *shape[2:]).repeat(1, 2, *[1] * len(shape[2:]))
    rows = run(case, unit)[:, 0].reshape(plane, -1)  # rows[p, q]: output q of unit input p
    g = gy.to(torch.float64).reshape(shape[0] * shape[1], -1)
    return (g @ rows.t()).reshape(shape).to(torch.float32)


def write_case(folder, case):
    torch.manual_seed(sum(map(ord, case["name"])))
    x = torch.randn(*case["shape"])
    leaf = x.clone().requires_grad_(True)
    source = leaf
    if case["transposed"]:  # the same values through a transposed view
        source = leaf.transpose(-1, -2).contiguous().transpose(-1, -2)
        assert not source.is_contiguous()
    y = run(case, source)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    gx = leaf.grad
    if case.get("forward_gradient"):
        gx = forward_gradient(case, x.shape, gy)
    save(f"{folder}/{case['name']}.safetensors",
         {"x": x, "gy": gy.contiguous(), "y": y.detach().contiguous(), "gx": gx})
    return case


def write(folder):
    cases = [write_case(folder, c) for c in CASES]
    with open(f"{folder}/cases.json", "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)


if __name__ == "__main__":
    write(sys.argv[2])
