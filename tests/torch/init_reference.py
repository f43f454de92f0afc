"""PyTorch reference for tests/lua/torch_init_spec.lua: what torch.nn.init
(torch 1.13) draws from, for each case of CASES below.

Each case calls one torch.nn.init function on a float32 tensor of the
case's shape, with torch.Tensor.uniform_ and normal_ wrapped so as to record
the arguments torch passes them: the bound (uniform: the draw's [lo, hi])
or the mean and std (normal) are torch's own numbers, not formulas
re-derived here. Also recorded: fan_in and fan_out
(_calculate_fan_in_and_fan_out) and the gain (calculate_gain) where the
function uses them; for trunc_normal_ the standard deviation of the
truncated distribution (closed form, checked against torch's own draws).
GAINS: calculate_gain for each (nonlinearity, param). ERFINV: torch.erfinv
(trunc_normal_'s inverse CDF) at float32 points of (-1, 1).
Writes JSON {"torch": version, "cases": [{name, fn, shape, draw ("uniform" |
"normal" | "trunc_normal"), lo, hi, mean, std, fan_in, fan_out, gain, a,
b}], "gains": [{nonlinearity, param, gain}], "erfinv": {x, y}}.
Usage: init_reference.py OUT
"""
import json
import math
import sys

import torch
from torch.nn import init

# name, function, shape, positional arguments, keyword arguments, (the
# nonlinearity and param its gain comes from, for kaiming and xavier)
CASES = [
    ("uniform_default", init.uniform_, (200, 300), (), {}, None),
    ("uniform_ab", init.uniform_, (200, 300), (-0.5, 2.0), {}, None),
    ("normal_default", init.normal_, (200, 300), (), {}, None),
    ("normal_mean_std", init.normal_, (200, 300), (3.0, 0.5), {}, None),
    ("xavier_uniform_linear", init.xavier_uniform_, (300, 784), (), {}, ("linear", None)),
    ("xavier_uniform_conv_relu_gain", init.xavier_uniform_, (64, 32, 3, 3), (init.calculate_gain("relu"),), {},
     ("relu", None)),
    ("xavier_normal_linear", init.xavier_normal_, (200, 100), (), {}, ("linear", None)),
    ("xavier_normal_conv_gain", init.xavier_normal_, (64, 32, 5, 5), (0.5,), {}, None),
    ("xavier_uniform_conv3d", init.xavier_uniform_, (40, 12, 2, 3, 5), (), {}, ("linear", None)),
    ("kaiming_uniform_default", init.kaiming_uniform_, (256, 128), (), {}, ("leaky_relu", 0)),
    ("kaiming_uniform_torch_linear", init.kaiming_uniform_, (100, 500), (math.sqrt(5),), {},
     ("leaky_relu", math.sqrt(5))),
    ("kaiming_uniform_fan_out_relu", init.kaiming_uniform_, (64, 16, 3, 3), (), {"mode": "fan_out",
     "nonlinearity": "relu"}, ("relu", None)),
    ("kaiming_uniform_leaky", init.kaiming_uniform_, (128, 256), (), {"a": 0.2}, ("leaky_relu", 0.2)),
    ("kaiming_uniform_positional", init.kaiming_uniform_, (200, 150), (0.1, "fan_out", "leaky_relu"), {},
     ("leaky_relu", 0.1)),
    ("kaiming_uniform_selu", init.kaiming_uniform_, (150, 200), (), {"nonlinearity": "selu"}, ("selu", None)),
    ("kaiming_uniform_sigmoid", init.kaiming_uniform_, (150, 200), (), {"nonlinearity": "sigmoid"},
     ("sigmoid", None)),
    ("kaiming_normal_default", init.kaiming_normal_, (256, 128), (), {}, ("leaky_relu", 0)),
    ("kaiming_normal_fan_out_relu", init.kaiming_normal_, (32, 16, 7, 7), (), {"mode": "fan_out",
     "nonlinearity": "relu"}, ("relu", None)),
    ("kaiming_normal_tanh_upper_mode", init.kaiming_normal_, (20, 100, 15), (), {"mode": "FAN_IN",
     "nonlinearity": "tanh"}, ("tanh", None)),
    ("kaiming_normal_conv_transpose", init.kaiming_normal_, (300, 100), (), {"nonlinearity": "conv_transpose2d"},
     ("conv_transpose2d", None)),
    ("trunc_normal_default", init.trunc_normal_, (400, 500), (), {}, None),
    ("trunc_normal_shifted", init.trunc_normal_, (400, 500), (), {"mean": 1.0, "std": 0.5, "a": 0.0, "b": 2.0},
     None),
    ("trunc_normal_vit", init.trunc_normal_, (400, 500), (), {"std": 0.02}, None),
    ("trunc_normal_asymmetric", init.trunc_normal_, (400, 500), (0.0, 1.0, -0.5, 3.0), {}, None),
]

GAINS = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None), ("conv_transpose1d", None),
         ("conv_transpose2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None),
         ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0), ("leaky_relu", 1),
         ("leaky_relu", math.sqrt(5)), ("selu", None), ("relu", 7.0)]


def norm_cdf(x):
    return (1 + math.erf(x / math.sqrt(2))) / 2


def truncated_std(mean, std, a, b):
    """The standard deviation of N(mean, std^2) truncated to [a, b]."""
    al, be = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    z = norm_cdf(be) - norm_cdf(al)
    m = (pdf(al) - pdf(be)) / z
    var = 1 + (al * pdf(al) - be * pdf(be)) / z - m * m
    return std * math.sqrt(var)


def run_case(name, fn, shape, args, kwargs, gain_of):
    calls = []
    uniform, normal = torch.Tensor.uniform_, torch.Tensor.normal_

    def rec_uniform(t, lo=0.0, hi=1.0):
        calls.append(("uniform", lo, hi))
        return uniform(t, lo, hi)

    def rec_normal(t, mean=0.0, std=1.0):
        calls.append(("normal", mean, std))
        return normal(t, mean, std)

    torch.Tensor.uniform_, torch.Tensor.normal_ = rec_uniform, rec_normal
    try:
        t = torch.empty(shape)
        fn(t, *args, **kwargs)
    finally:
        torch.Tensor.uniform_, torch.Tensor.normal_ = uniform, normal
    assert len(calls) == 1, (name, calls)
    kind, p0, p1 = calls[0]
    case = {"name": name, "fn": fn.__name__, "shape": list(shape), "draw": kind}
    if kind == "uniform":
        case["lo"], case["hi"] = p0, p1
    else:
        case["mean"], case["std"] = p0, p1
    if fn.__name__.startswith(("xavier", "kaiming")):
        case["fan_in"], case["fan_out"] = init._calculate_fan_in_and_fan_out(t)
    if gain_of:
        case["gain"] = init.calculate_gain(*gain_of)
    if fn is init.trunc_normal_:
        opts = dict(zip(("mean", "std", "a", "b"), args))
        opts.update(kwargs)
        mean, std, a, b = opts.get("mean", 0.0), opts.get("std", 1.0), opts.get("a", -2.0), opts.get("b", 2.0)
        case.update(draw="trunc_normal", mean=mean, a=a, b=b, std=truncated_std(mean, std, a, b))
        # the closed form against torch's own draws
        assert float(t.min()) >= a and float(t.max()) <= b, name
        assert abs(float(t.std()) / case["std"] - 1) < 0.01, (name, float(t.std()), case["std"])
    return case


def main():
    torch.manual_seed(0)
    cases = [run_case(*c) for c in CASES]
    gains = [{"nonlinearity": n, "param": p, "gain": init.calculate_gain(n, p)} for n, p in GAINS]
    x = torch.cat([torch.linspace(-0.999, 0.999, 2001), torch.tensor([-0.9999999, 0.9999, 0.99999, 0.999999])])
    erfinv = {"x": x.tolist(), "y": torch.erfinv(x).tolist()}
    with open(sys.argv[1], "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases, "gains": gains, "erfinv": erfinv}, f)


if __name__ == "__main__":
    main()
