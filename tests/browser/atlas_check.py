"""Checks an activation atlas in headless Chromium, as a user would use it.

    /usr/bin/python3 tests/browser/atlas_check.py PAGE.html EXPECT.json OUT_DIR

EXPECT.json (written by tests/lua/atlas_spec.lua) names a point of a set and
what the page must show for it: its true and predicted class, e_hat, the
pixels of its image and its quantised activations. Hovers the point, checks
the tooltip, clicks it, checks the selection panel, zooms with the wheel and
hovers again, switches the colour mode and saves screenshots into OUT_DIR.
Exit status 0 when every check holds; 77 when Chromium is missing.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser, find_chromium  # noqa: E402


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def main():
    page, expect_path, out_dir = sys.argv[1:4]
    exe = find_chromium()
    if not exe:
        print("skip: chromium is not installed (apt-get install chromium)")
        return 77
    with open(expect_path) as f:
        want = json.load(f)
    b = Browser(exe)
    try:
        b.call("Page.navigate", url="file://" + os.path.abspath(page))
        b.wait_for("window.atlas && window.atlas.ready", what="the atlas to load")
        status = b.evaluate("document.getElementById('status').textContent")
        check("atlas error" not in status, f"page reports {status!r}")
        check(not b.console_errors(), f"JavaScript exceptions: {b.console_errors()}")
        check(b.evaluate("window.atlas.sets") == want["sets"], "set names")
        print("loaded:", status)

        s, i = want["set"], want["index"]

        def hover_and_check(label):
            x, y = b.evaluate(f"window.atlas.screenOf({json.dumps(s)}, {i})")
            b.mouse("mouseMoved", x, y)
            tip = b.wait_for("(() => { const t = window.atlas.tooltip(); return t.visible && t.imageReady && t; })()",
                             what="the tooltip with its image")
            text = tip["text"]
            check(f"{s} #{i}" in text, f"{label}: tooltip names another point: {text!r}")
            check("true: " + want["true"] in text, f"{label}: true label missing in {text!r}")
            check("predicted: " + want["predicted"] in text, f"{label}: predicted label missing in {text!r}")
            check((" (wrong)" in text) == (want["true"] != want["predicted"]), f"{label}: wrong-mark in {text!r}")
            ehat = float(text.split("e_hat: ")[1].split(" ")[0])
            check(abs(ehat / want["e_hat"] - 1) < 0.01, f"{label}: e_hat {ehat} vs {want['e_hat']}")
            red = tip["pixels"][0::4]
            check(red == want["image"], f"{label}: tooltip image differs from the input image")
            print(f"{label}: tooltip ok: {text!r}")
            return x, y

        x, y = hover_and_check("hover")
        b.screenshot(os.path.join(out_dir, "atlas_hover.png"))

        b.mouse("mousePressed", x, y, button="left", clickCount=1)
        b.mouse("mouseReleased", x, y, button="left", clickCount=1)
        sel = b.wait_for("(() => { const s = window.atlas.selection(); return s && s.activations && s; })()",
                         what="the selected point's activations")
        check(sel["set"] == s and sel["index"] == i, f"selected {sel['set']} #{sel['index']}")
        diffs = [abs(a - e) for a, e in zip(sel["activations"], want["activations"])]
        check(len(sel["activations"]) == len(want["activations"]) and max(diffs) <= 1,
              f"activation pattern differs (max difference {max(diffs)})")
        drawn = b.evaluate("(() => { const c = document.getElementById('network');"
                           " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                           " const seen = new Set(); for (let k = 0; k < d.length; k += 4) seen.add(d[k] << 16 | d[k+1] << 8 | d[k+2]);"
                           " return seen.size; })()")
        check(drawn >= 5, f"network panel shows {drawn} colours")
        print(f"click: selection ok, {len(sel['activations'])} activations, network panel in {drawn} colours")

        before = b.evaluate("window.atlas.view().scale")
        b.mouse("mouseWheel", x, y, deltaX=0, deltaY=-400)
        b.wait_for(f"window.atlas.view().scale > {before} * 1.5", what="the wheel to zoom in")
        nx, ny = b.evaluate(f"window.atlas.screenOf({json.dumps(s)}, {i})")
        check(abs(nx - x) < 2 and abs(ny - y) < 2, "zoom moved the point under the cursor")
        b.mouse("mouseMoved", x + 40, y + 40)  # away, then back: the tooltip must come again
        hover_and_check("hover after zoom")

        b.evaluate("window.atlas.setMode('error'), window.atlas.render()")
        legend = b.evaluate("document.getElementById('legend').innerText")
        check("log10 e_hat" in legend, f"error mode legend: {legend!r}")
        b.evaluate("window.atlas.setMode('correct'), window.atlas.render()")
        b.screenshot(os.path.join(out_dir, "atlas_correct.png"))
        b.evaluate("window.atlas.setMode('class'), window.atlas.render()")
        b.mouse("mouseMoved", 5, 5)
        b.screenshot(os.path.join(out_dir, "atlas.png"))
        check(not b.console_errors(), f"JavaScript exceptions: {b.console_errors()}")
        print("modes, zoom and screenshots ok:", os.path.join(out_dir, "atlas.png"))
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
