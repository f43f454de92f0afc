"""The safetensors writer both PyTorch references use (standard library and
torch only): float32 and int32 tensors of any shape, 0-D included, float64
written as float32 (the references compute in double and compare float32),
and string metadata."""
import json
import struct

import torch

DTYPES = {torch.float32: "F32", torch.int32: "I32"}


def save(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if t.dtype == torch.float64:
            t = t.to(torch.float32)
        raw = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
