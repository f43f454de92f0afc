"""Times an activation atlas in headless Chromium: page load until the map is
drawn, a full redraw (median of 30 at several zoom levels), and a hover until
the tooltip shows the input image (first hover in an image chunk, then a
hover in a chunk already inflated).

    /usr/bin/python3 bench/atlas_render.py results/introspect_mnist/atlas.html [screenshot.png]

Chromium runs without a GPU (--disable-gpu): canvas work is on the CPU.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "browser"))
from cdp import Browser, find_chromium  # noqa: E402


def hover_ms(b, set_name, i):
    x, y = b.evaluate(f"window.atlas.screenOf({set_name!r}, {i})")
    b.mouse("mouseMoved", 1, 1)
    t = time.perf_counter()
    b.mouse("mouseMoved", x, y)
    b.wait_for("window.atlas.tooltip().imageReady", what="the tooltip")
    return (time.perf_counter() - t) * 1000


def main():
    page = os.path.abspath(sys.argv[1])
    b = Browser(find_chromium())
    try:
        t = time.perf_counter()
        b.call("Page.navigate", url="file://" + page)
        # ready, or the page's own error (a broken page is reported, not waited on)
        status = "(document.getElementById('status') || {textContent: ''}).textContent"
        b.wait_for(f"(window.atlas && window.atlas.ready) || /error/.test({status})", timeout=120, what="the atlas")
        if not b.evaluate("!!(window.atlas && window.atlas.ready)"):
            sys.exit(f"the atlas failed to load: {b.evaluate(status)}")
        load = time.perf_counter() - t
        points = b.evaluate("document.getElementById('status').textContent")
        renders = []
        for zoom in (1, 2, 4):
            for _ in range(10):
                renders.append(b.evaluate("window.atlas.render()"))
            b.mouse("mouseWheel", 400, 400, deltaX=0, deltaY=-460)  # about 2x closer
        b.evaluate("document.getElementById('reset').click(), window.atlas.render()")
        sets = b.evaluate("window.atlas.sets")
        last = sets[-1]
        # hover times need a set whose first images the page holds
        if not b.evaluate(f"(() => {{ const d = JSON.parse(document.getElementById('atlas-data').textContent); "
                          f"const s = d.sets[d.sets.length - 1]; return !!(s.image && s.image.rows >= 2); }})()"):
            sys.exit(f"set {last!r} holds no images: no hover to time")
        first_hover = hover_ms(b, last, 1)
        warm_hover = hover_ms(b, last, 2)
        print(f"page: {page} ({os.path.getsize(page) / 2**20:.1f} MB)")
        print(f"load until drawn: {load:.2f} s; {points}")
        print(f"full redraw: median {statistics.median(renders):.1f} ms, max {max(renders):.1f} ms over {len(renders)}")
        print(f"hover to tooltip with image: first in a chunk {first_hover:.0f} ms, then {warm_hover:.0f} ms")
        if len(sys.argv) > 2:
            b.call("Runtime.evaluate", expression="window.atlas.setMode('class')")
            b.screenshot(sys.argv[2])
    finally:
        b.close()


if __name__ == "__main__":
    main()
