"""What the shelf tests share: a shelf's database as a URL another process can open, and
other processes running real shelf code."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from service.couch import blocking
from tests.servers import ROOT

WAIT = 60  # seconds at most for another process's work that takes well under one


def url_of(bcouch: blocking.Couch, bdb: blocking.Database) -> str:
    """``bdb``'s URL with the test server's credentials in it (the embedded store's is a
    path, which needs none)."""
    url = bdb.url
    auth = bcouch.endpoint.auth
    if url.startswith("embedded:") or not auth:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{auth[0]}:{auth[1]}@{rest}"


def start_python(code: str, *args: str) -> subprocess.Popen:
    """Run ``code`` in another Python process (``sys.argv[1:]`` is ``args``), its input and
    output piped as text."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    """Wait for ``process``, check it succeeded, and return what it printed."""
    out, err = process.communicate(timeout=WAIT)  # closes its input, if still open
    assert process.returncode == 0, err
    return out


def wait_for_line(process: subprocess.Popen, expected: str) -> None:
    """Read ``process``'s output until the line ``expected``."""
    assert process.stdout is not None
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"ended before {expected!r}: {process.stderr.read()}")
        if line.strip() == expected:
            return
    raise AssertionError(f"no {expected!r} within {WAIT} s")


def go(*processes: subprocess.Popen) -> None:
    """Send each process the line it waits for before it starts work."""
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
