"""``python run.py`` (``settee serve``): settings from file, environment and flags; a graceful
SIGTERM."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gc
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.couch.transport import Endpoint
from service.serving import YOUNG_GENERATION_THRESHOLD, tune_garbage_collector
from service.settings import Settings, load
from tests.servers import EMBEDDED_ADMIN, ROOT, free_port, wait_until_up


def test_the_shipped_config_file_lists_every_setting():
    text = (ROOT / "config" / "settee.toml").read_text()
    missing = [f.name for f in dataclasses.fields(Settings) if f"# {f.name} = " not in text]
    assert missing == ["couch_password"]  # left out on purpose: it belongs in the environment


def test_flags_override_environment_override_file(tmp_path):
    config = tmp_path / "settee.toml"
    config.write_text('port = 7000\nlog_level = "debug"\ncors_origins = ["https://a.example"]\n')
    environ = {"SETTEE_CONFIG": str(config), "SETTEE_PORT": "7001", "COUCHDB_URL": "http://c:1"}
    settings = load(["--port", "7002"], environ)
    assert settings.port == 7002
    assert settings.couch_url == "http://c:1"
    assert settings.log_level == "debug"
    assert settings.cors_origins == ("https://a.example",)
    assert load([], environ).port == 7001
    assert load(["--config", str(config)], {}).port == 7000
    assert load([], {}) == Settings()


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "http"],
        ["--port", "70000"],
        ["--xheaders", "maybe"],
        ["--log-level", "loud"],
        ["--event-loop", "twisted"],
    ],
)
def test_invalid_settings_are_refused(argv):
    with pytest.raises(ValueError):
        load(argv, {})


def test_unknown_settings_in_the_file_are_refused(tmp_path):
    config = tmp_path / "settee.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="prot"):
        load(["--config", str(config)], {})


def test_the_password_is_never_shown():
    settings = load(["--couch-password", "s3cret"], {})
    assert "s3cret" not in repr(settings)


def test_serving_freezes_what_was_loaded_and_collects_young_objects_less_often():
    threshold = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_help_lists_every_setting_with_its_default():
    result = subprocess.run(
        [sys.executable, "run.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    for flag in ("--address", "--port", "--couch-url", "--couch-user", "--couch-password"):
        assert flag in result.stdout
    for flag in ("--max-body-size", "--cors-origins", "--log-level", "--shutdown-grace"):
        assert flag in result.stdout
    assert "default: 8888" in result.stdout


def auth_lines(server_url: str) -> str:
    """The test server's credentials, as the client's own: settee passes those on."""
    endpoint = Endpoint.parse(server_url)
    if not (auth := EMBEDDED_ADMIN if endpoint.embedded else endpoint.auth):
        return ""
    return "Authorization: Basic " + base64.b64encode(":".join(auth).encode()).decode() + "\r\n"


def http_request(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head)
    return sock


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            None,
        )
        if length is not None and len(body) >= length:
            break
    return int(data.split(b" ")[1]), data.partition(b"\r\n\r\n")[2]


@contextlib.contextmanager
def serving(port: int, *flags: str) -> Iterator[subprocess.Popen]:
    """``python run.py --port PORT FLAGS`` until it answers; killed on the way out if alive."""
    process = subprocess.Popen(
        [sys.executable, "run.py", "--port", str(port), *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/_up")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(
    server_url, bcouch, db_name, event_loop
):
    port = free_port()
    admin = ["--admin", ":".join(EMBEDDED_ADMIN)]  # the embedded store's; else unused
    with serving(port, "--couch-url", server_url, "--event-loop", event_loop, *admin) as process:
        half = b"x" * 50_000
        sock = http_request(
            port,
            f"PUT /{db_name}/doc/a.bin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x\r\n"
            f"{auth_lines(server_url)}"
            f"Content-Length: {2 * len(half)}\r\n\r\n".encode()
            + half,
        )
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, "exited with a request in flight"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        sock.sendall(half)
        status, body = read_response(sock)
        sock.close()
        assert status == 201
        assert json.loads(body)["ok"] is True
        assert process.wait(timeout=15) == 0
    output = process.stdout.read()
    assert f"({event_loop} event loop)" in output
    assert "requests in flight" in output
    assert bcouch[db_name].get_attachment("doc", "a.bin") == half + half


class HeldBackend(ThreadingHTTPServer):
    """A stand-in CouchDB on a free port that receives each PUT, then holds its answer (201)
    until ``release`` is set."""

    def __init__(self) -> None:
        self.received, self.release = threading.Event(), threading.Event()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                backend.received.set()
                backend.release.wait(10)
                body = json.dumps({"ok": True, "id": "doc", "rev": "1-a"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_port}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_sigterm_waits_for_the_write_of_a_client_that_has_left():
    """The write goes on without its client, as in CouchDB, and shutdown waits for it."""
    backend = HeldBackend()
    port = free_port()
    try:
        with serving(port, "--couch-url", backend.url) as process:
            http_request(
                port,
                b"PUT /db/doc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\n\r\n{}",
            ).close()
            assert backend.received.wait(10)
            time.sleep(0.3)  # settee sees its client go
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert process.poll() is None, "exited with a write in flight"
            backend.release.set()
            assert process.wait(timeout=15) == 0
        output = process.stdout.read()
        assert "stopping: 1 requests in flight" in output
        assert '"PUT /db/doc" 201' in output
        assert "cannot reach" not in output
    finally:
        backend.release.set()
        backend.shutdown()
        backend.server_close()


def test_processes_share_the_port_and_stop_together(server_url):
    port = free_port()
    with serving(port, "--processes=2", f"--couch-url={server_url}") as process:
        time.sleep(1)  # both children log "serving" as they start
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    output = process.stdout.read()
    pids = {line.split()[5] for line in output.splitlines() if " serving " in line}
    assert len(pids) == 2, output
    assert output.count("stopped") == 2


@pytest.mark.parametrize(
    ("flags", "setting"),
    [
        (["--couch-url", "ftp://user:hunter2@host/x"], "couch_url:"),
        (["--couch-url", "not a url"], "couch_url:"),
        (["--config", "/nonexistent/settee.toml"], "config:"),
        (["--config", "CONFIG_DIR"], "config:"),
        (["--config", "BAD_TOML"], "config:"),
        (["--port", "PORT_IN_USE"], "address, port:"),
    ],
)
def test_a_start_up_error_is_one_line_naming_the_setting_and_exit_2(tmp_path, flags, setting):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("port = [unclosed\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        substitutes = {
            "CONFIG_DIR": str(tmp_path),
            "BAD_TOML": str(bad_toml),
            "PORT_IN_USE": str(taken.getsockname()[1]),
        }
        argv = [substitutes.get(flag, flag) for flag in flags]
        result = subprocess.run(
            [sys.executable, "run.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"run.py: {setting}"), result.stderr
    assert "hunter2" not in result.stderr
