"""Real CouchDB-compatible servers for the tests and benchmarks: pouchdb-server, CouchDB, and
settee itself (``run.py``): serving its embedded store (the one to kill for the embedded
backend), or in front of another backend (for the client suite run through settee).

pouchdb-server comes from the project's pinned npm packages (scripts/setup installs them).
CouchDB comes from a release: a release directory, or the release archive, which is unpacked
once into ``var/couchdb/``. Each server runs in a directory of its own on a free loopback
port, and is stopped by its PID.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from service.couch.transport import Endpoint

ROOT = Path(__file__).resolve().parent.parent
POUCHDB_SERVER = ROOT / "node_modules" / ".bin" / "pouchdb-server"
COUCHDB_CACHE = ROOT / "var" / "couchdb"
# The server admin of every embedded store the tests serve, as CouchDB's is the test server's.
EMBEDDED_ADMIN = ("admin", secrets.token_hex(8))


SERVER_PORTS = (20000, 32767)  # below Linux's ephemeral range (32768-60999)


def free_port() -> int:
    """A port for a server process to bind soon: free now, and below the ephemeral range, so
    that no client's connection takes it as its local port in the meantime (with the suite
    in several processes, with thousands of connections, one did)."""
    while True:
        port = random.randint(*SERVER_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def wait_until_up(
    url: str,
    timeout: float = 30.0,
    process: subprocess.Popen | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Wait until ``url`` answers 2xx; give up early if ``process`` has exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers or {}), timeout=1
            ):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                message = f"exited with {process.returncode} before {url} answered"
                raise RuntimeError(message) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class PouchServer:
    """A pouchdb-server process: in memory, or on disk so that it keeps data across restarts."""

    kind = "pouchdb"

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


class SetteeServer:
    """A settee process (``run.py``): serving its embedded store from a directory of its own,
    or in front of ``couch_url``. ``url`` carries that backend's credentials, if it has any,
    for clients to send: settee acts with each client's own."""

    kind = "embedded"

    def __init__(
        self, *, port: int | None = None, couch_url: str | None = None, args: Sequence[str] = ()
    ) -> None:
        self.port = port or free_port()
        self.couch_url = couch_url
        self.args = list(args)  # more of run.py's flags, such as ``--processes 2``
        self.workdir = Path(tempfile.mkdtemp(prefix="settee-embedded-"))
        self.process: subprocess.Popen | None = None
        self.embedded = not couch_url or couch_url.startswith("embedded:")
        auth = EMBEDDED_ADMIN if self.embedded else Endpoint.parse(couch_url).auth
        self.credentials = ":".join(quote(part, safe="") for part in auth) + "@" if auth else ""

    @property
    def url(self) -> str:
        return f"http://{self.credentials}127.0.0.1:{self.port}"

    def start(self) -> SetteeServer:
        args = [sys.executable, str(ROOT / "run.py"), "--port", str(self.port)]
        args += ["--data-dir", str(self.workdir / "data"), "--log-level", "warning"]
        if self.couch_url:
            args += ["--couch-url", self.couch_url]
        if self.embedded:
            args += ["--admin", ":".join(EMBEDDED_ADMIN)]
        args += self.args
        environ = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
        self.process = subprocess.Popen(
            args, cwd=self.workdir, env=environ, stdout=subprocess.DEVNULL, start_new_session=True
        )
        wait_until_up(f"http://127.0.0.1:{self.port}/_up", process=self.process)
        return self

    kill = PouchServer.kill
    stop = PouchServer.stop
    restart = PouchServer.restart


def couchdb_release(home: str | os.PathLike) -> Path:
    """The CouchDB release directory that ``home`` names: itself, or an archive's, unpacked.

    An archive (``.tar.gz`` holding one ``apache-couchdb-X/`` directory) is unpacked once into
    ``var/couchdb/``, again only if the archive is newer than what was unpacked.
    """
    home = Path(home).resolve()
    if home.is_dir():
        if not (home / "bin" / "couchdb").exists():
            raise RuntimeError(f"COUCHDB_HOME={home}: no bin/couchdb in it")
        return home
    if not home.is_file():
        raise RuntimeError(f"COUCHDB_HOME={home}: no such release directory or archive")
    target = COUCHDB_CACHE / home.name.removesuffix(".gz").removesuffix(".tar")
    COUCHDB_CACHE.mkdir(parents=True, exist_ok=True)
    with open(COUCHDB_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be unpacking the same archive
        stamp = target / ".unpacked"
        if not stamp.exists() or stamp.stat().st_mtime < home.stat().st_mtime:
            shutil.rmtree(target, ignore_errors=True)
            partial = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=COUCHDB_CACHE))
            with tarfile.open(home) as archive:
                archive.extractall(partial, filter="tar")
            partial.rename(target)
            stamp.touch()
    releases = [path.parent.parent for path in target.glob("*/bin/couchdb")]
    if len(releases) != 1:
        raise RuntimeError(f"COUCHDB_HOME={home}: expected one */bin/couchdb, found {releases}")
    return releases[0]


class CouchServer:
    """An Apache CouchDB node from a release directory, with its own port, name and data.

    Nothing is written into the release: the node's config (``10-settee-test.ini``), its
    ``vm.args`` (a unique Erlang node name, so it never clashes with another CouchDB on this
    machine) and its data live in a fresh directory of its own, named to ``bin/couchdb`` by
    ``COUCHDB_INI_FILES`` and ``COUCHDB_ARGS_FILE``. So one release serves several nodes at
    once, and a release that is some other CouchDB's installation is left as it is. The
    data outlive ``kill()`` (a crash) and ``start()`` again; ``stop()`` removes them.
    """

    kind = "couchdb"
    user = "admin"

    def __init__(
        self,
        release: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        name: str | None = None,
    ) -> None:
        self.release = release
        self.port = port or free_port()
        self.password = password or secrets.token_hex(8)
        self.name = name or f"settee-{os.getpid()}-{self.port}@127.0.0.1"
        self.workdir = Path(tempfile.mkdtemp(prefix="settee-couchdb-"))
        self.process: subprocess.Popen | None = None
        self._configure()

    @property
    def url(self) -> str:
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def _configure(self) -> None:
        data = self.workdir / "data"
        data.mkdir()
        (self.workdir / "10-settee-test.ini").write_text(self._ini(data))
        args = (self.release / "etc" / "vm.args").read_text().splitlines()
        args = [f"-name {self.name}" if line.startswith("-name ") else line for line in args]
        (self.workdir / "vm.args").write_text("\n".join(args + self._more_vm_args()) + "\n")

    def _more_vm_args(self) -> list[str]:
        return []

    def _ini(self, data: Path) -> str:
        """The node's settings: its port, its admin, its data directory."""
        return (
            "[couchdb]\n"
            "single_node = true\n"
            f"database_dir = {data}\n"
            f"view_index_dir = {data}\n"
            "[chttpd]\n"
            "bind_address = 127.0.0.1\n"
            f"port = {self.port}\n"
            "[admins]\n"
            f"{self.user} = {self.password}\n"
            "[replicator]\n"
            "startup_jitter = 0\n"  # a replication starts at once, not up to 5 s later
            "[log]\n"
            "level = warning\n"
        )

    def start(self) -> CouchServer:
        self.launch()
        return self.wait_started()

    def launch(self) -> None:
        """Start the node's process, without waiting for it to answer."""
        ini_files = [self.release / "etc" / "default.ini", self.workdir / "10-settee-test.ini"]
        env = {
            **os.environ,
            "COUCHDB_ARGS_FILE": str(self.workdir / "vm.args"),
            "COUCHDB_INI_FILES": " ".join(map(str, ini_files)),  # bin/couchdb splits on spaces
        }
        with open(self.workdir / "couchdb.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(self.release / "bin" / "couchdb")],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def admin_headers(self) -> dict[str, str]:
        admin = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {admin}"}

    def wait_started(self, *, system_databases: bool = True) -> CouchServer:
        """Wait until the launched node answers (and, unless told not to, has made its
        system databases); kill it and raise with its log's tail if it does not."""
        assert self.process is not None
        try:
            wait_until_up(f"http://127.0.0.1:{self.port}/_up", timeout=60, process=self.process)
            if system_databases:
                # A single node makes its system databases only after it answers /_up, and
                # the rules of user documents (_design/_auth) a moment after _users.
                wait_until_up(
                    f"http://127.0.0.1:{self.port}/_users/_design/_auth",
                    timeout=60,
                    process=self.process,
                    headers=self.admin_headers,
                )
        except (OSError, RuntimeError) as exc:
            self.kill()
            tail = (self.workdir / "couchdb.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"CouchDB from {self.release} did not start: {exc}\n{tail}") from exc
        return self

    def kill(self) -> None:
        """End the node abruptly (SIGKILL to its process group), as a crash would."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Stop the node (SIGTERM, then SIGKILL after 10 s) and remove its data."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        self.kill()
        self.start()
