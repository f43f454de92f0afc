"""Hovers points of an atlas in headless Chromium and prints, for each, the
tooltip's first line, its text and the RGBA of its image's first pixel (null
where the page holds no image for the point), as JSON.

    /usr/bin/python3 tests/browser/atlas_pixels.py PAGE.html SET I [I ...]

Exit status 77 when Chromium is missing."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser, find_chromium  # noqa: E402


def main():
    page, set_name, indices = sys.argv[1], sys.argv[2], [int(i) for i in sys.argv[3:]]
    exe = find_chromium()
    if not exe:
        print("skip: chromium is not installed")
        return 77
    b = Browser(exe)
    out = []
    try:
        b.call("Page.navigate", url="file://" + os.path.abspath(page))
        b.wait_for("window.atlas && window.atlas.ready", what="the atlas to load")
        for i in indices:
            x, y = b.evaluate(f"window.atlas.screenOf({json.dumps(set_name)}, {i})")
            b.mouse("mouseMoved", 1, 1)
            b.mouse("mouseMoved", x, y)
            # a point whose image the page does not hold says so instead
            tip = b.wait_for("(() => { const t = window.atlas.tooltip(); return t.visible && "
                             "(t.imageReady || t.text.includes('image not stored')) && t; })()",
                             what="the tooltip")
            out.append({"title": tip["text"].split("\n")[0], "text": tip["text"],
                        "pixel": tip["pixels"][0:4] if tip["pixels"] else None})
    finally:
        b.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
