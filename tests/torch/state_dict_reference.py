"""PyTorch state_dicts both ways (run by tests/lua/torch_state_dict_spec.lua).

  state_dict_reference.py write DIR
      trains two small torch.nn.Sequential models a few seeded steps on
      generated data (an MLP and a small all-convolutional net with the
      paper's layers), saves each state_dict as safetensors in F32, F16 and
      BF16 (DIR/<model>_<dtype>.safetensors), and the inputs with torch's
      outputs in evaluation mode for each precision (DIR/<model>_io.safetensors;
      the outputs of the F16/BF16 files are computed in float32 from the
      rounded weights, which is what loading them gives).
  state_dict_reference.py check DIR MODEL
      loads Lumen's file DIR/<MODEL>_lumen.safetensors into a fresh torch
      model with strict=True, runs it on the inputs and compares with the
      outputs Lumen computed (DIR/<MODEL>_lumen_out.safetensors). Prints the
      relative error; exits 1 above 1e-5.
"""
import sys

import torch
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import load, save  # noqa: E402


def mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.ELU(), nn.Dropout(0.1), nn.Linear(16, 16), nn.ELU(),
                         nn.Linear(16, 4), nn.Sigmoid())


def convnet():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ELU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.ELU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 2 * 2, 5), nn.Sigmoid())


MODELS = {"mlp": (mlp, (12, 6)), "convnet": (convnet, (5, 3, 8, 8))}


def trained(name):
    make, shape = MODELS[name]
    torch.manual_seed(3)
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        x = torch.randn(*shape)
        y = torch.rand(shape[0], model[-2].out_features)
        loss = ((model(x) - y) ** 2).sum(1).mean() / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), torch.randn(*shape)


def write(folder):
    for name in MODELS:
        model, x = trained(name)
        io = {"x": x}
        for dtype, tag in ((torch.float32, "F32"), (torch.float16, "F16"), (torch.bfloat16, "BF16")):
            sd = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
            save(f"{folder}/{name}_{tag}.safetensors", sd)
            rounded = MODELS[name][0]().eval()
            rounded.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
            with torch.no_grad():
                io["y_" + tag] = rounded(x)
        save(f"{folder}/{name}_io.safetensors", io)


def check(folder, name):
    state = {k: v for k, (_, v) in load(f"{folder}/{name}_lumen.safetensors").items()}
    model = MODELS[name][0]().eval()
    model.load_state_dict(state, strict=True)
    x = load(f"{folder}/{name}_io.safetensors")["x"][1]
    want = load(f"{folder}/{name}_lumen_out.safetensors")["y"][1]
    with torch.no_grad():
        got = model(x)
    err = float((got - want).abs().max() / want.abs().max())
    print(f"relative error {err:.3g}")
    sys.exit(0 if err <= 1e-5 else 1)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3])
