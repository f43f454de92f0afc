"""JPEG files written by PIL and the pixels PIL reads from them (run by
tests/lua/image_jpeg_spec.lua). PIL decodes through the same libjpeg-turbo
Lumen links, so the 8-bit values must agree exactly.

  jpeg_reference.py write DIR
      DIR/cases.json: {"pil": version, "cases": [{name, mode, size,
      stored}]}; for each case DIR/<name>.jpg and DIR/<name>.safetensors
      holding the values 0-255 as float32 [C, H, W] that Lumen should read
      for 1, 3 and 4 channels ("c1", "c3", "c4"; "c4" has alpha 255). Grey
      from colour is stb_image's (77 r + 150 g + 29 b) >> 8 (Lumen's rule for
      every format); CMYK becomes RGB as c * k / 255 on Adobe's inverted
      values, rounded as stb rounds.
      DIR/many_scans.jpg: a valid progressive file of 600 DC scans, which
      Lumen refuses (more than 500 scans).
"""
import json
import sys

import numpy as np
import PIL
import torch
from PIL import Image

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import save  # noqa: E402

# name, PIL mode, (width, height), save options. Odd sizes put partial
# blocks at the right and bottom edges, where chroma upsampling differs most.
CASES = [
    ("rgb_420", "RGB", (37, 29), {"quality": 90}),
    ("rgb_422", "RGB", (40, 17), {"quality": 80, "subsampling": 1}),
    ("rgb_444", "RGB", (23, 31), {"quality": 75, "subsampling": 0}),
    ("rgb_progressive", "RGB", (45, 33), {"quality": 85, "progressive": True}),
    ("rgb_optimized", "RGB", (64, 48), {"quality": 70, "optimize": True}),
    ("grey", "L", (33, 21), {"quality": 90}),
    ("grey_progressive", "L", (19, 40), {"quality": 60, "progressive": True}),
    ("cmyk", "CMYK", (24, 18), {"quality": 95}),
]


def picture(mode, size):
    """Smooth gradients with a sharp edge and noise: every block differs."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(7)
    planes = []
    for k in range(len(mode)):
        p = 128 + 100 * np.sin(x / (3 + k) + y / (5 + 2 * k)) + 20 * rng.standard_normal((h, w))
        p[:, w // 2:] = 255 - p[:, w // 2:]
        planes.append(np.clip(p, 0, 255).astype(np.uint8))
    a = np.stack(planes, -1)
    return Image.fromarray(a[..., 0] if mode == "L" else a, mode)


def scale255(a, b):
    t = a.astype(np.int64) * b + 128
    return ((t + (t >> 8)) >> 8).astype(np.uint8)


def expected(img):
    """Lumen's pixels for 1, 3 and 4 channels, [C, H, W] uint8."""
    if img.mode == "L":
        g = np.asarray(img)
        rgb = np.stack([g, g, g], -1)
    elif img.mode == "CMYK":
        # PIL undoes Adobe's inversion; Lumen multiplies the inverted values
        c = 255 - np.asarray(img).astype(np.int64)
        rgb = np.stack([scale255(c[..., k], c[..., 3]) for k in range(3)], -1)
        g = None
    else:
        rgb = np.asarray(img)
        g = None
    if g is None:
        r, gg, b = (rgb[..., k].astype(np.int64) for k in range(3))
        g = ((r * 77 + gg * 150 + b * 29) >> 8).astype(np.uint8)
    alpha = np.full(g.shape, 255, np.uint8)
    c3 = np.moveaxis(rgb, -1, 0)
    return {"c1": g[None], "c3": c3, "c4": np.concatenate([c3, alpha[None]])}


def markers(data):
    """(marker, start, end) of each segment up to the first scan's end."""
    at, out = 2, []
    while at < len(data):
        assert data[at] == 0xFF, "a marker was expected"
        m = data[at + 1]
        length = int.from_bytes(data[at + 2:at + 4], "big")
        end = at + 2 + length
        if m == 0xDA:  # entropy-coded data run to the next marker: not stuffing, not a restart
            while not (data[end] == 0xFF and data[end + 1] != 0 and
                       not 0xD0 <= data[end + 1] <= 0xD7):
                end += 1
            out.append((m, at, end))
            return out
        out.append((m, at, end))
        at = end
    raise AssertionError("no scan")


def many_scans(src, dst, count):
    """The tables and frame of a progressive file, then its first (DC) scan
    `count` times with Ah = Al = 0: each repeat is legal, so only a scan
    limit stops the decoder."""
    data = open(src, "rb").read()
    segs = markers(data)
    head_end = segs[-1][1]
    scan = bytearray(data[head_end:segs[-1][2]])
    ns = scan[4]
    approx = 4 + 1 + 2 * ns + 2  # the Ah/Al byte of the SOS header
    assert scan[approx - 2] == 0 and scan[approx - 1] == 0, "the first scan is DC only"
    scan[approx] = 0
    with open(dst, "wb") as f:
        f.write(data[:head_end] + bytes(scan) * count + b"\xff\xd9")


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "write":
        sys.exit(__doc__)
    out = sys.argv[2]
    cases = []
    for name, mode, size, options in CASES:
        path = f"{out}/{name}.jpg"
        picture(mode, size).save(path, "JPEG", **options)
        img = Image.open(path)
        img.load()
        assert img.mode == mode, (name, img.mode)
        save(f"{out}/{name}.safetensors",
             {k: torch.from_numpy(v.astype(np.float32)) for k, v in expected(img).items()})
        cases.append({"name": name, "mode": mode, "size": list(size),
                      "stored": 1 if mode == "L" else 3})
    many_scans(f"{out}/grey_progressive.jpg", f"{out}/many_scans.jpg", 600)
    with open(f"{out}/cases.json", "w") as f:
        json.dump({"pil": PIL.__version__, "cases": cases}, f)


if __name__ == "__main__":
    main()
