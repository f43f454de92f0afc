"""PyTorch reference for tests/lua/torch_transformer_spec.lua: this file defines the cases.

Usage (Debian's python3-torch works only with /usr/bin/python3):
  transformer_reference.py write DIR
      for every case, builds the torch module with a seed (parameters drawn
      afresh so that LayerNorm weights and biases are not ones and zeros),
      draws its inputs and the upstream gradients r, and writes
      DIR/<case>.safetensors holding
        state/<name>       the module's state_dict (float32)
        in/<name>          the inputs (float32; masks int32, 1 = masked,
                           standing for torch's bool masks, unless the case
                           says the mask is float and additive)
        r/<output>         the weights of the loss sum_o sum(output_o * r_o)
        out/<output>       torch's outputs
        grad/in/<name>     the loss's gradient for each float input
        grad/state/<name>  ... and for every parameter
      The module runs in float64 from the float32 parameters and inputs, so the
      reference is more exact than either side's float32 arithmetic. Cases in
      evaluation mode have dropout p = 0.1 (inactive); training-mode cases
      have p = 0. DIR/manifest.json lists the cases and their options.
      Then trains a small ViT classifier a few seeded Adam steps (dropout
      0.1, float32), saves its state_dict as DIR/vit_trained.safetensors and
      its evaluation-mode inputs and outputs as DIR/vit_trained_io.safetensors.
  transformer_reference.py check DIR
      loads Lumen's DIR/vit_lumen.safetensors into a fresh torch ViT with
      strict=True, runs it on the saved inputs and compares with Lumen's
      outputs (DIR/vit_lumen_out.safetensors). Prints the relative error;
      exits 1 above 1e-5.

Relative error everywhere: max|a - b| / max|b|.
"""
import json
import math
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dtype_reference import load  # noqa: E402
from safetensors_file import save  # noqa: E402

SEED = 20240716


class ViT(nn.Module):
    """The twin of lm.models.vit (lua/lumen/models_vit.lua), with its names."""

    def __init__(self, image_size, patch_size, num_classes, dim, depth, heads, mlp_dim, channels=3,
                 dropout=0.0):
        super().__init__()
        patches = (image_size // patch_size) ** 2
        self.dim = dim
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, patches + 1, dim) * 0.02)
        self.conv_proj = nn.Conv2d(channels, dim, patch_size, stride=patch_size)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(*[
            nn.TransformerEncoderLayer(dim, heads, dim_feedforward=mlp_dim, dropout=dropout, activation="gelu",
                                       norm_first=True, batch_first=True, layer_norm_eps=1e-6)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        n = x.shape[0]
        tokens = self.conv_proj(x).reshape(n, self.dim, -1).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(n, 1, self.dim), tokens], 1) + self.pos_embedding
        tokens = self.norm(self.layers(self.dropout(tokens)))
        return self.head(tokens[:, 0])


VIT = dict(image_size=8, patch_size=4, num_classes=3, dim=8, depth=2, heads=2, mlp_dim=16, channels=3)


def randomise(module):
    """Draws every parameter afresh (normal, std 0.5), so ones and zeros do not hide mistakes."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


def bool_mask(*shape, p=0.3, keep_first=True):
    """int32 0/1 with about p masked; with keep_first the first key of every row stays unmasked,
    so no row is masked entirely (torch and Lumen then both give NaN)."""
    m = (torch.rand(*shape) < p).to(torch.int32)
    if keep_first:
        m[..., 0] = 0
    return m


def causal(length):
    return torch.triu(torch.ones(length, length, dtype=torch.int32), 1)


# Each case: module (built after seeding), inputs (float tensors get gradients), a call
# function (module, inputs as torch wants them) -> list of outputs, output names, options
# for the Lua side (which builds the twin from them).
CASES = []


def case(name, build, inputs, call, outputs, options):
    CASES.append(dict(name=name, build=build, inputs=inputs, call=call, outputs=outputs, options=options))


def as_bool(m):
    return m != 0


def mha_call(opts):
    def call(m, t):
        q = t["q"]
        k, v = t.get("k", q), t.get("v", t.get("k", q))
        kw = {}
        if "attn_mask" in t:
            kw["attn_mask"] = t["attn_mask"] if opts.get("float_mask") else as_bool(t["attn_mask"])
        if "key_padding_mask" in t:
            kw["key_padding_mask"] = as_bool(t["key_padding_mask"])
        out, w = m(q, k, v, need_weights=True, **kw)
        return [out, w]
    return call


def define_cases():
    # LayerNorm
    for name, shape, x_shape, affine in [("layernorm", [8], (3, 5, 8), True),
                                         ("layernorm_2d", [4, 6], (2, 3, 4, 6), True),
                                         ("layernorm_no_affine", [8], (4, 8), False)]:
        case(name, lambda shape=shape, affine=affine: nn.LayerNorm(shape, elementwise_affine=affine),
             lambda x_shape=x_shape: {"x": torch.randn(*x_shape) * 2 + 1},
             lambda m, t: [m(t["x"])], ["out"], {"normalized_shape": shape, "elementwise_affine": affine})
    case("layernorm_eps", lambda: nn.LayerNorm(8, eps=0.1), lambda: {"x": torch.randn(3, 8) * 0.3},
         lambda m, t: [m(t["x"])], ["out"], {"normalized_shape": [8], "eps": 0.1})
    for approximate in ["none", "tanh"]:
        case("gelu_module_" + approximate, lambda a=approximate: nn.GELU(approximate=a),
             lambda: {"x": torch.randn(4, 7) * 2}, lambda m, t: [m(t["x"])], ["out"], {"approximate": approximate})

    # MultiheadAttention, batch first
    def mha(opts):
        return lambda: nn.MultiheadAttention(8, 2, dropout=opts.get("dropout", 0.0), bias=opts.get("bias", True),
                                             batch_first=opts.get("batch_first", True))
    for mode in ["train", "eval"]:
        p = 0.0 if mode == "train" else 0.1
        o = {"dropout": p, "mode": mode}
        case(f"mha_self_{mode}", mha(o), lambda: {"q": torch.randn(3, 5, 8)}, mha_call(o), ["out", "weights"], o)
        o2 = dict(o)
        case(f"mha_cross_masks_{mode}", mha(o2),
             lambda: {"q": torch.randn(3, 4, 8), "k": torch.randn(3, 6, 8), "v": torch.randn(3, 6, 8),
                      "attn_mask": bool_mask(4, 6), "key_padding_mask": bool_mask(3, 6)},
             mha_call(o2), ["out", "weights"], o2)
    o = {"dropout": 0.0, "mode": "train", "float_mask": True}
    case("mha_float_mask_per_head", mha(o),
         lambda: {"q": torch.randn(2, 4, 8), "k": torch.randn(2, 5, 8), "v": torch.randn(2, 5, 8),
                  "attn_mask": torch.randn(2 * 2, 4, 5) * 2, "key_padding_mask": bool_mask(2, 5)},
         mha_call(o), ["out", "weights"], o)
    o = {"dropout": 0.0, "mode": "train", "bias": False, "batch_first": False}
    case("mha_no_bias_seq_first", mha(o),
         lambda: {"q": torch.randn(4, 3, 8), "k": torch.randn(6, 3, 8), "attn_mask": causal(6)[:4]},
         mha_call(o), ["out", "weights"], o)

    # TransformerEncoderLayer
    def tel(opts):
        return lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=opts["dropout"],
                                                  activation=opts["activation"], norm_first=opts["norm_first"],
                                                  batch_first=True, layer_norm_eps=opts.get("eps", 1e-5))

    def tel_call(m, t):
        kw = {}
        if "src_mask" in t:
            kw["src_mask"] = as_bool(t["src_mask"])
        if "src_key_padding_mask" in t:
            kw["src_key_padding_mask"] = as_bool(t["src_key_padding_mask"])
        return [m(t["x"], **kw)]
    for mode in ["train", "eval"]:
        for activation in ["relu", "gelu"]:
            for norm_first in [False, True]:
                o = {"dropout": 0.0 if mode == "train" else 0.1, "mode": mode, "activation": activation,
                     "norm_first": norm_first}
                tag = f"encoder_{activation}_{'prenorm' if norm_first else 'postnorm'}_{mode}"
                case(tag, tel(o), lambda: {"x": torch.randn(3, 5, 8)}, tel_call, ["out"], o)
                case(tag + "_masks", tel(o),
                     lambda: {"x": torch.randn(3, 5, 8), "src_mask": causal(5),
                              "src_key_padding_mask": torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0],
                                                                    [0, 1, 0, 0, 1]], dtype=torch.int32)},
                     tel_call, ["out"], o)

    # the vision transformer, training mode (dropout 0) and evaluation mode (dropout 0.1)
    for mode in ["train", "eval"]:
        o = dict(VIT, dropout=0.0 if mode == "train" else 0.1, mode=mode)
        case(f"vit_{mode}", lambda o=o: ViT(**{k: v for k, v in o.items() if k != "mode"}),
             lambda: {"x": torch.randn(2, 3, 8, 8)}, lambda m, t: [m(t["x"])], ["out"], o)


def run_case(c, index, folder):
    torch.manual_seed(SEED + index)
    module = c["build"]()
    randomise(module)
    if c["options"].get("mode") == "eval":
        module.eval()
    inputs = c["inputs"]()
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    module = module.double()
    t64 = {}
    for k, v in inputs.items():
        t64[k] = v.double().requires_grad_(True) if v.is_floating_point() and "mask" not in k else \
            (v.double() if v.is_floating_point() else v)
    outs = c["call"](module, t64)
    rs = {name: torch.randn(o.shape, dtype=torch.float64) for name, o in zip(c["outputs"], outs)}
    loss = sum((o * rs[name]).sum() for name, o in zip(c["outputs"], outs))
    loss.backward()
    tensors = {}
    for k, v in state.items():
        tensors["state/" + k] = v
    for k, v in inputs.items():
        tensors["in/" + k] = v
        if t64[k].requires_grad:
            tensors["grad/in/" + k] = t64[k].grad
    for name, p in module.named_parameters():
        tensors["grad/state/" + name] = p.grad
    for name, o in zip(c["outputs"], outs):
        tensors["out/" + name] = o
        tensors["r/" + name] = rs[name]
    save(f"{folder}/{c['name']}.safetensors", tensors, {"case": c["name"]})


def trained_vit():
    torch.manual_seed(SEED)
    model = ViT(**VIT, dropout=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        x = torch.randn(8, 3, 8, 8)
        labels = torch.randint(0, VIT["num_classes"], (8,))
        loss = nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def write(folder):
    define_cases()
    for i, c in enumerate(CASES):
        run_case(c, i, folder)
    with open(f"{folder}/manifest.json", "w") as f:
        json.dump({"count": len(CASES), "cases": [{"name": c["name"], "options": c["options"],
                                                   "outputs": c["outputs"]} for c in CASES]}, f)
    model = trained_vit()
    save(f"{folder}/vit_trained.safetensors", model.state_dict(), {"format": "pt"})
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        y = model(x)
    save(f"{folder}/vit_trained_io.safetensors", {"x": x, "y": y}, {"format": "pt"})


def check(folder):
    state = {k: v for k, (_, v) in load(f"{folder}/vit_lumen.safetensors").items()}
    model = ViT(**VIT).eval()
    model.load_state_dict(state, strict=True)
    x = load(f"{folder}/vit_trained_io.safetensors")["x"][1]
    want = load(f"{folder}/vit_lumen_out.safetensors")["y"][1]
    with torch.no_grad():
        got = model(x)
    err = float((got - want).abs().max() / want.abs().max())
    print(f"relative error {err:.3g}")
    sys.exit(0 if err <= 1e-5 and math.isfinite(err) else 1)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        check(sys.argv[2])
