"""Half precision and integer safetensors files against PyTorch's own
conversions (Debian's python3-torch, run by tests/lua/safetensors_dtypes_spec.lua).

  dtype_reference.py write PATH
      writes one file holding the same values in F16, BF16, F64, I64, I32,
      I16, U8, I8 and BOOL, each beside "<name>.expected": what torch makes of
      it in float32 / int32 (U8 as itself), the values Lumen must load.
  dtype_reference.py check F32_PATH HALF_PATH DTYPE
      reads a file Lumen wrote with {dtype = DTYPE} and the same tensors
      written as F32, and checks every stored half is bit for bit what torch's
      float32 -> DTYPE conversion gives (NaN: any NaN). Prints "ok" or exits 1.
"""
import json
import struct
import sys

import torch

NAMES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.int64: "I64",
         torch.float32: "F32", torch.int32: "I32", torch.int16: "I16", torch.uint8: "U8",
         torch.int8: "I8", torch.bool: "BOOL"}
FROM_NAME = {v: k for k, v in NAMES.items()}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        raw = raw_bytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dtype = FROM_NAME[e["dtype"]]
        raw = bytearray(data[8 + n + a:8 + n + b])
        if dtype in (torch.float16, torch.bfloat16):
            t = torch.frombuffer(raw, dtype=torch.int16).view(dtype) if raw else torch.zeros(0, dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=dtype) if raw else torch.zeros(0, dtype=dtype)
        out[name] = (e["dtype"], t.reshape(e["shape"]))
    return out


def edge_floats():
    """Values on every rounding boundary of the two half formats."""
    return torch.tensor([0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 65504.0, 65519.0, 65520.0, 70000.0,
                         -70000.0, 2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 1e-8,
                         1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,
                         3.0e38, -3.0e38, float("inf"), float("-inf"), float("nan")],
                        dtype=torch.float32)


def write(path):
    g = torch.Generator().manual_seed(7)
    floats = torch.cat([edge_floats(), torch.randn(200, generator=g) * 10.0 ** torch.randint(-6, 5, (200,), generator=g)])
    ints = torch.tensor([0, 1, -1, 127, -128, 255, 32767, -32768, 2 ** 31 - 1, -2 ** 31], dtype=torch.int64)
    tensors = {}
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        t = floats.to(dtype).reshape(25, 9)
        tensors[NAMES[dtype]] = t
        tensors[NAMES[dtype] + ".expected"] = t.to(torch.float32)
    for dtype, lo, hi in ((torch.int64, -2 ** 31, 2 ** 31 - 1), (torch.int32, -2 ** 31, 2 ** 31 - 1),
                          (torch.int16, -32768, 32767), (torch.uint8, 0, 255), (torch.int8, -128, 127)):
        t = ints[(ints >= lo) & (ints <= hi)].to(dtype)
        tensors[NAMES[dtype]] = t
        # Lumen keeps uint8 as uint8 (its bytes dtype) and widens the others
        tensors[NAMES[dtype] + ".expected"] = t if dtype == torch.uint8 else t.to(torch.int32)
    b = torch.tensor([[True, False, True], [False, False, True]])
    tensors["BOOL"] = b
    tensors["BOOL.expected"] = b.to(torch.int32)
    tensors["empty_F16"] = torch.zeros(0, 3, dtype=torch.float16)
    tensors["empty_F16.expected"] = torch.zeros(0, 3, dtype=torch.float32)
    save(path, tensors)


def check(f32_path, half_path, dtype_name):
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype_name]
    ref, got = load(f32_path), load(half_path)
    assert sorted(ref) == sorted(got), f"names differ: {sorted(ref)} vs {sorted(got)}"
    bad = []
    for name, (file_dtype, t) in ref.items():
        got_dtype, h = got[name]
        if file_dtype == "I32":
            if got_dtype != "I32" or not torch.equal(t, h):
                bad.append(f"{name}: int32 tensor changed (stored as {got_dtype})")
            continue
        if got_dtype != NAMES[dtype]:
            bad.append(f"{name}: stored as {got_dtype}, expected {NAMES[dtype]}")
            continue
        want = t.to(dtype)
        same = (want.view(torch.int16) == h.view(torch.int16)) | (want.isnan() & h.isnan())
        if h.shape != want.shape or not bool(same.all()):
            i = (~same).nonzero()[0].tolist() if h.shape == want.shape else "shape"
            bad.append(f"{name}: differs at {i}")
    if bad:
        print("\n".join(bad))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4])
