"""PyTorch reference for tests/lua/torch_spec.lua.

Reads the inputs Lumen saved (safetensors), recomputes every case's forward
pass and the gradients of sum(output * r) with PyTorch, and writes them to a
second safetensors file. The MMD formula is written here independently from
Lumen's, following DESIGN.md. Usage: reference.py IN OUT
"""
import json
import struct
import sys

import torch
import torch.nn.functional as F


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dtype = {"F32": torch.float32, "I32": torch.int32}[info["dtype"]]
        t = torch.frombuffer(bytearray(data[base + a : base + b]), dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def save(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().to(torch.float32)
        raw = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def mmd(z, p):
    d = z.shape[1]

    def k(a, b):
        sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return torch.exp(-sq / (d * d))

    return k(z, z).mean() + k(p, p).mean() - 2 * k(z, p).mean()


CASES = {
    "linear": (["x", "w", "b"], lambda t: F.linear(t["x"], t["w"], t["b"])),
    "conv2d": (["x", "w", "b"], lambda t: F.conv2d(t["x"], t["w"], t["b"], stride=2, padding=1)),
    "elu": (["x"], lambda t: F.elu(t["x"])),
    "sigmoid": (["x"], lambda t: torch.sigmoid(t["x"])),
    "softmax": (["x"], lambda t: F.softmax(t["x"], dim=1)),
    "dropout_eval": (["x"], lambda t: F.dropout(t["x"], 0.2, training=False)),
    "mse": (["y_hat", "y"], lambda t: 0.5 * ((t["y_hat"] - t["y"]) ** 2).sum() / t["y"].shape[0]),
    "cross_entropy": (["logits"], lambda t: F.cross_entropy(t["logits"], t["labels"].long() - 1)),
    "mmd": (["z", "p"], lambda t: mmd(t["z"], t["p"])),
}


def main():
    torch.set_num_threads(1)
    inputs = load(sys.argv[1])
    results = {}
    for case, (grad_names, fn) in CASES.items():
        t = {k.split(".", 1)[1]: v for k, v in inputs.items() if k.startswith(case + ".")}
        for name in grad_names:
            t[name].requires_grad_(True)
        out = fn(t)
        (out * t["r"]).sum().backward()
        results[case + ".out"] = out
        for name in grad_names:
            results[case + ".grad_" + name] = t[name].grad
    save(sys.argv[2], results)


if __name__ == "__main__":
    main()
