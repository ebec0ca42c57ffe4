"""Real CouchDB-compatible servers for the tests and benchmarks: pouchdb-server processes.

pouchdb-server comes from the project's pinned npm packages (scripts/setup installs them).
Each server runs in a directory of its own (it writes log.txt and config.json there) on a
free loopback port, and is stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POUCHDB_SERVER = ROOT / "node_modules" / ".bin" / "pouchdb-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class PouchServer:
    """A pouchdb-server process: in memory, or on disk so that it keeps data across restarts."""

    def __init__(self, *, in_memory: bool = True, port: int | None = None) -> None:
        if not POUCHDB_SERVER.exists():
            raise RuntimeError(f"{POUCHDB_SERVER} is missing: run scripts/setup")
        self.in_memory = in_memory
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="settee-pouchdb-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PouchServer:
        args = [str(POUCHDB_SERVER), "-n", "-o", "127.0.0.1", "-p", str(self.port)]
        args += ["-m"] if self.in_memory else ["-d", str(self.workdir / "data")]
        (self.workdir / "data").mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            args,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until_up(self.url)
        return self

    def kill(self) -> None:
        """End the server abruptly (SIGKILL), as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()
