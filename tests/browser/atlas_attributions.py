"""Checks the attributions of an activation atlas in headless Chromium.

    /usr/bin/python3 tests/browser/atlas_attributions.py PAGE.html EXPECT.json OUT_DIR

EXPECT.json (written by tests/lua/atlas_explain_spec.lua) names a point with
attributions and, per map, its caption, the values the page must decode and
the RGB of every pixel lm.explain.colorize gives for it; a named region and
a rectangle of the map with the mean attributions of their points. Clicks
the point, compares the drawn attribution images pixel by pixel, picks the
region, shift-drags the rectangle, and compares their mean maps; with
{"none": true} checks that a page without attributions shows no trace of
them. Prints the largest differences. Exit status 0 when every check holds;
77 when Chromium is missing.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser, find_chromium  # noqa: E402


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def compare(label, got, want, pixel_tol, value_tol):
    """Largest |value| and |pixel channel| differences of drawn maps against the expected ones."""
    check(len(got) == len(want), f"{label}: {len(got)} maps drawn, {len(want)} expected")
    worst_v, worst_p = 0.0, 0
    for g, w in zip(got, want):
        check(g["name"] == w["name"], f"{label}: caption {g['name']!r}, expected {w['name']!r}")
        check(len(g["values"]) == len(w["values"]), f"{label}: {len(g['values'])} values")
        dv = max(abs(a - b) for a, b in zip(g["values"], w["values"]))
        check(dv <= value_tol, f"{label} {w['name']}: values differ by {dv} (> {value_tol})")
        px = g["pixels"]
        dp = max(abs(px[4 * p + c] - w["rgb"][3 * p + c]) for p in range(len(w["rgb"]) // 3) for c in range(3))
        check(dp <= pixel_tol, f"{label} {w['name']}: pixels differ by {dp} (> {pixel_tol}) from lm.explain.colorize")
        check(all(px[4 * p + 3] == 255 for p in range(len(px) // 4)), f"{label}: transparent pixels")
        worst_v, worst_p = max(worst_v, dv), max(worst_p, dp)
    return worst_v, worst_p


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
        if want.get("none"):
            gone = b.evaluate("!document.getElementById('sel-attr') && !document.getElementById('region-box')")
            check(gone, "a page without attributions has attribution panels")
            x, y = b.evaluate(f"window.atlas.screenOf({json.dumps(want['set'])}, 1)")
            b.mouse("mousePressed", x, y, button="left", clickCount=1)
            b.mouse("mouseReleased", x, y, button="left", clickCount=1)
            sel = b.wait_for("window.atlas.selection()", what="the selection")
            check(sel["attributions"] is None, "attributions for a page without them")
            check(not b.console_errors(), f"JavaScript exceptions: {b.console_errors()}")
            print("no attributions: no panels")
            return 0

        s, i = want["set"], want["index"]
        x, y = b.evaluate(f"window.atlas.screenOf({json.dumps(s)}, {i})")
        b.mouse("mouseMoved", x, y)
        b.mouse("mousePressed", x, y, button="left", clickCount=1)
        b.mouse("mouseReleased", x, y, button="left", clickCount=1)
        sel = b.wait_for("(() => { const s = window.atlas.selection(); return s && s.attributions && s; })()",
                         what="the selected point's attributions")
        check(sel["set"] == s and sel["index"] == i, f"selected {sel['set']} #{sel['index']}")
        captions = b.evaluate("Array.from(document.querySelectorAll('#sel-attr figcaption')).map((c) => c.textContent)")
        check(captions == [m["name"] for m in want["maps"]], f"captions {captions}")
        dv, dp = compare("click", sel["attributions"], want["maps"], want["pixel_tolerance"], want["value_tolerance"])
        print(f"click: {len(captions)} attribution maps, values within {dv:.3g}, pixels within {dp} of colorize")
        b.screenshot(os.path.join(out_dir, "atlas_attributions.png"))

        # a point without attributions says where they are
        if want.get("unattributed"):
            ux, uy = b.evaluate(f"window.atlas.screenOf({json.dumps(s)}, {want['unattributed']})")
            b.mouse("mouseMoved", ux, uy)
            b.mouse("mousePressed", ux, uy, button="left", clickCount=1)
            b.mouse("mouseReleased", ux, uy, button="left", clickCount=1)
            note = b.wait_for("(() => { const s = window.atlas.selection(); const e = document.getElementById('sel-attr');"
                              f" return s && s.index === {want['unattributed']} && e.innerText; }})()",
                              what="the note of a point without attributions")
            check("Attributions are stored for" in note, f"note {note!r}")

        # a named region from the list
        r = want["region"]
        check(b.evaluate("window.atlas.regions()") == r["names"], "region names")
        b.evaluate(f"(() => {{ const p = document.getElementById('region-select'); p.value = '{r['k'] - 1}';"
                   " p.dispatchEvent(new Event('change')); })()")
        got = b.wait_for(f"(() => {{ const g = window.atlas.region(); return g && g.name === {json.dumps(r['name'])} && g; }})()",
                         what="the region's mean attributions")
        check(got["n"] == r["n"], f"region: {got['n']} points, expected {r['n']}")
        dv, dp = compare("region", got["maps"], r["maps"], want["mean_pixel_tolerance"], want["value_tolerance"])
        print(f"region {r['name']!r}: {got['n']} points, mean values within {dv:.3g}, pixels within {dp}")

        # a rectangle dragged with shift held
        q = want["brush"]
        ax, ay = b.evaluate(f"window.atlas.screenOfZ({q['z0'][0]}, {q['z0'][1]})")
        bx, by = b.evaluate(f"window.atlas.screenOfZ({q['z1'][0]}, {q['z1'][1]})")
        b.mouse("mouseMoved", ax, ay)
        b.mouse("mousePressed", ax, ay, button="left", clickCount=1, modifiers=8)
        for k in range(1, 6):
            b.mouse("mouseMoved", ax + (bx - ax) * k / 5, ay + (by - ay) * k / 5, modifiers=8, buttons=1)
        b.mouse("mouseReleased", bx, by, button="left", clickCount=1, modifiers=8)
        got = b.wait_for("(() => { const g = window.atlas.region(); return g && g.name.startsWith('rectangle') && g; })()",
                         what="the rectangle's mean attributions")
        check(got["n"] == q["n"], f"rectangle: {got['n']} points, expected {q['n']}")
        view = b.evaluate("window.atlas.view()")
        dv, dp = compare("rectangle", got["maps"], q["maps"], want["mean_pixel_tolerance"], want["value_tolerance"])
        check(b.evaluate("window.atlas.selection().index") == (want.get("unattributed") or i),
              "shift-drag changed the selection")
        print(f"rectangle: {got['n']} points, mean values within {dv:.3g}, pixels within {dp}; view {view}")
        b.screenshot(os.path.join(out_dir, "atlas_region.png"))
        check(not b.console_errors(), f"JavaScript exceptions: {b.console_errors()}")
        print("attributions ok")
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
