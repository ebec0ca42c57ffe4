"""The beer-sample demo as its one command runs it (``python -m demo.beer``), for the tests:
on free loopback ports, in a data directory of its own, stopped by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.servers import ROOT, free_port, wait_until_up

ADMIN = "admin:demo-admin-secret"


class DemoServer:
    def __init__(self, *, breweries: int, beers: int) -> None:
        self.port, self.settee_port = free_port(), free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="settee-demo-"))
        self.data_dir = self.workdir / "data"
        self.breweries, self.beers = breweries, beers
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settee_url(self) -> str:
        """settee's, with its server admin's credentials."""
        return f"http://{ADMIN}@127.0.0.1:{self.settee_port}"

    def start(self) -> DemoServer:
        args = [sys.executable, "-m", "demo.beer", "--demo-port", str(self.port)]
        args += ["--port", str(self.settee_port), "--data-dir", str(self.data_dir)]
        args += ["--admin", ADMIN, "--log-level", "warning"]
        args += ["--breweries", str(self.breweries), "--beers", str(self.beers)]
        environ = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
        environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), environ.get("PYTHONPATH")])
        )
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, start_new_session=True
        )
        wait_until_up(self.url + "/", timeout=120, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
