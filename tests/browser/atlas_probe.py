"""Loads an atlas page in headless Chromium, runs steps and prints what the
page showed as JSON: {"ready", "status", "errors", "values"}. A step is a
JavaScript expression (its value goes to "values"), or "click:SET:I" /
"hover:SET:I" on point I (1-based) of set SET (its value is null).

    /usr/bin/python3 tests/browser/atlas_probe.py PAGE.html STEP [STEP ...]

Waits for the page to finish loading or to report an error, so a page that
breaks is a result, not a timeout. Exit status 77 when Chromium is missing."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser, find_chromium  # noqa: E402

STATUS = "(document.getElementById('status') || {textContent: ''}).textContent"
SETTLED = f"!!(window.atlas && window.atlas.ready) || /error/.test({STATUS})"


def pointer(b, step):
    kind, set_name, i = step.split(":")
    x, y = b.evaluate(f"window.atlas.screenOf({json.dumps(set_name)}, {int(i)})")
    b.mouse("mouseMoved", 1, 1)
    b.mouse("mouseMoved", x, y)
    if kind == "click":
        b.mouse("mousePressed", x, y, button="left", clickCount=1)
        b.mouse("mouseReleased", x, y, button="left", clickCount=1)
    time.sleep(0.3)  # the tooltip's and the selection's images inflate asynchronously


def main():
    page, steps = sys.argv[1], sys.argv[2:]
    exe = find_chromium()
    if not exe:
        print("skip: chromium is not installed")
        return 77
    b = Browser(exe)
    try:
        b.call("Page.navigate", url="file://" + os.path.abspath(page))
        deadline = time.time() + 30
        while not b.evaluate(SETTLED) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the first frames
        ready = b.evaluate("!!(window.atlas && window.atlas.ready)")
        values = []
        for step in steps:
            if step.startswith(("click:", "hover:")) and ready:
                pointer(b, step)
                values.append(None)
            else:
                values.append(b.evaluate(step) if ready else None)
        errors = [e["params"]["exceptionDetails"].get("text", "") for e in b.console_errors()]
        status = b.evaluate(STATUS)
    finally:
        b.close()
    print(json.dumps({"ready": ready, "status": status, "errors": errors, "values": values}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
