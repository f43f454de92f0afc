"""Drives the lumen REPL through a pseudo-terminal, as a person at a
keyboard would, and prints what the terminal showed.

    /usr/bin/python3 tests/repl/pty_session.py LUMEN KEYS...

Each KEYS argument is sent after the previous output settles; escapes such as
\\t (Tab) and \\n (Enter) are interpreted. HOME points at a temporary folder,
so the user's history is left alone.
"""
import os
import pty
import select
import sys
import tempfile
import time


def read_until_quiet(fd, quiet=0.3, limit=10.0):
    out, start, last = b"", time.time(), time.time()
    while time.time() - start < limit:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            last = time.time()
        elif time.time() - last > quiet and out:
            break
    return out


def main():
    lumen, keys = sys.argv[1], sys.argv[2:]
    home = tempfile.mkdtemp(prefix="lumen-home-")
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["HOME"] = home
        os.environ["TERM"] = "dumb"
        os.environ["INPUTRC"] = "/dev/null"
        os.execv(lumen, [lumen])
    shown = read_until_quiet(fd)
    for k in keys:
        os.write(fd, k.encode().decode("unicode_escape").encode())
        shown += read_until_quiet(fd)
    os.write(fd, b"\x04")  # Ctrl-D ends the session
    shown += read_until_quiet(fd)
    os.waitpid(pid, 0)
    sys.stdout.write(shown.decode(errors="replace").replace("\r", ""))


if __name__ == "__main__":
    main()
