"""A real nginx running the shipped ``config/nginx.conf``, for the deployment tests.

``render`` makes a copy of the shipped file that differs only where a test must differ: the
listen address, the upstream ports, and the pid, log and temp paths (under a directory of the
test's own, so nginx runs without root). Every substitution must find what it replaces: if
the shipped file changes shape, rendering fails loudly rather than test another config.
``Nginx`` runs that copy in the foreground, in a session of its own, and stops it by its PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "nginx.conf"
# Where Debian (and nginx's own builds) put it; /usr/sbin is not on every user's PATH.
CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
FEEDS_LOCATION = re.compile(r"(location ~ /_changes\$ \{)([^}]*)(\})")
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def find_nginx() -> str | None:
    """The nginx binary, or None if this machine has none."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in CANDIDATES if os.access(path, os.X_OK)), None)


def _sub(pattern: str, replacement: str, text: str, *, count: int | None = 1) -> str:
    """``re.sub`` that insists on finding ``count`` matches (None: at least one)."""
    new, found = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if (count is None and found == 0) or (count is not None and found != count):
        expected = "some" if count is None else count
        raise ValueError(f"{SHIPPED.name}: expected {expected} match of {pattern!r}, {found}")
    return new


def temp_path_modules(nginx: str) -> list[str]:
    """The temp paths this nginx has (a build may leave out fastcgi, uwsgi or scgi)."""
    built = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=True).stderr
    return [name for name in TEMP_PATHS if f"--without-http_{name}_module" not in built]


def render(
    text: str,
    *,
    port: int,
    upstream_ports: list[int],
    prefix: Path,
    feed_read_timeout: str | None = None,
    temp_paths: list[str] = ["client_body", "proxy"],  # noqa: B006 (read only)
) -> str:
    """The shipped config with the test's ports and paths (and feed read timeout)."""
    text = _sub(r"^(\s*)listen\s+[^;]+;", rf"\g<1>listen 127.0.0.1:{port};", text)
    servers = re.findall(r"^(\s*)server\s+127\.0\.0\.1:\d+([^;]*);\n", text, re.MULTILINE)
    if not servers:
        raise ValueError(f"{SHIPPED.name}: no `server 127.0.0.1:PORT` line in the upstream")
    indent, parameters = servers[0]
    lines = "".join(f"{indent}server 127.0.0.1:{p}{parameters};\n" for p in upstream_ports)
    text = _sub(r"(^\s*server\s+127\.0\.0\.1:\d+[^;]*;\n)+", lines.replace("\\", "\\\\"), text)
    text = _sub(r"^pid\s+[^;]+;", f"pid {prefix}/nginx.pid;", text)
    text = _sub(r"^error_log\s+[^\s;]+", f"error_log {prefix}/error.log", text)
    text = _sub(r"access_log\s+/[^\s;]+", f"access_log {prefix}/access.log", text, count=None)
    temp = "".join(f"    {name}_temp_path {prefix}/{name}_temp;\n" for name in temp_paths)
    text = _sub(r"^http \{\n", "http {\n" + temp, text)
    if feed_read_timeout is not None:
        location = FEEDS_LOCATION.search(text)
        if location is None:
            raise ValueError(f"{SHIPPED.name}: no `location ~ /_changes$` block")
        body = _sub(
            r"(proxy_read_timeout\s+)[^;]+;", rf"\g<1>{feed_read_timeout};", location.group(2)
        )
        text = text[: location.start(2)] + body + text[location.end(2) :]
    return text


class Nginx:
    """nginx on a free loopback port in front of ``upstream_ports``, from the shipped config."""

    def __init__(
        self,
        nginx: str,
        upstream_ports: list[int],
        port: int,
        *,
        feed_read_timeout: str | None = None,
        config: Path = SHIPPED,
    ) -> None:
        self.nginx = nginx
        self.port = port
        self.prefix = Path(tempfile.mkdtemp(prefix="settee-nginx-"))
        # Workers run as the config's `user` when nginx starts as root: let them in.
        self.prefix.chmod(0o755)
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            render(
                config.read_text(),
                port=port,
                upstream_ports=upstream_ports,
                prefix=self.prefix,
                feed_read_timeout=feed_read_timeout,
                temp_paths=temp_path_modules(nginx),
            )
        )
        self.output = self.prefix / "output.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *extra: str) -> list[str]:
        return [self.nginx, "-p", f"{self.prefix}/", "-c", str(self.conf), *extra]

    def check(self) -> subprocess.CompletedProcess:
        """``nginx -t`` on the rendered copy."""
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self, timeout: float = 15.0) -> Nginx:
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                self.command("-g", "daemon off;"),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                log = self.log()
                self.stop()
                raise RuntimeError(f"nginx exited {self.process.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    log = self.log()
                    self.stop()
                    raise RuntimeError(f"nginx did not listen on {self.port}: {log}") from None
                time.sleep(0.05)

    def log(self) -> str:
        """What nginx printed and wrote to its error log."""
        parts = [path.read_text(errors="replace") for path in (self.output,)]
        error_log = self.prefix / "error.log"
        if error_log.exists():
            parts.append(error_log.read_text(errors="replace"))
        return "\n".join(part for part in parts if part)

    def stop(self) -> None:
        """Stop the master and its workers (its own process group, by its PID), and remove
        the prefix directory."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)
