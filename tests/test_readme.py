"""The README runs as written: every code block in it is run here, in order, against a settee
this test starts on the test backend.

A block runs by its language: ``sh`` with bash (``set -e``; curl told by its config file to
fail on an HTTP error), ``python`` as a script with this interpreter, ``js`` with Node's
WebSocket (the browser's API). Two changes are made to a block: the README's
``127.0.0.1:8888`` becomes the test settee's, and its server admin ``admin:secret`` the test
backend's (on pouchdb-server, which has none, the credentials go). An HTML comment just
above a block says how else to take it:

- ``<!-- not run: WHY -->``: deliberately not run (the commands that run the tests, a
  deployment as root); kept to a few, and the count is pinned below.
- ``<!-- run: not on BACKEND (WHY) -->``: skipped on that backend, for what it lacks yet.
- ``<!-- run: a subscriber ... -->``: a program that follows a feed until stopped. Once it has
  printed something, the test writes a document and waits until the subscriber prints its id,
  then stops it. ``<!-- run: a subscriber, not on BACKEND (WHY) -->`` combines the two.

The examples run on the embedded store (what ``scripts/serve`` serves), on pouchdb-server and
on CouchDB, each through a settee of its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from service.couch import NotFound, blocking
from service.couch.transport import Endpoint
from tests.servers import ROOT, free_port, wait_until_up

README = ROOT / "README.md"
NOT_RUN_AT_MOST = 3
FENCE = re.compile(
    r"(?:^ *<!-- (?P<note>.*?) -->\n)?"  # how to take the block, if said
    r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<code>.*?)^(?P=indent)```$",
    re.MULTILINE | re.DOTALL,
)
ROOT_ONLY = ("apt-get", "systemctl", "useradd", "/etc/")
"""What a block that runs here must never do: the tests may run as root."""
RUNNERS = {
    "sh": ("bash", "-euo", "pipefail", "-c"),
    "python": (sys.executable, "-c"),
    "js": ("node", "--experimental-websocket", "--input-type=module", "-e"),
}
TIMEOUT = 60.0
README_ADMIN = "admin:secret"


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    code: str
    note: str

    @property
    def skipped_on(self) -> str | None:
        match = re.match(r"run: .*?\bnot on (\w+)", self.note)
        return match and match.group(1)

    @property
    def subscriber(self) -> bool:
        return self.note.startswith("run: a subscriber")

    def command(self, port: int, admin: str | None) -> list[str]:
        """How to run the block on settee's ``port``, as the backend's server ``admin``
        (``NAME:PASSWORD``; None: the backend has none, and the block sends no credentials)."""
        code = self.code.replace("127.0.0.1:8888", f"127.0.0.1:{port}")
        if admin is None:
            code = code.replace(f"-u {README_ADMIN} ", "").replace(f"{README_ADMIN}@", "")
        else:
            code = code.replace(README_ADMIN, admin)
        return [*RUNNERS[self.lang], code]


def blocks(text: str) -> list[Block]:
    found = []
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        lines = match["code"].splitlines(keepends=True)
        code = "".join(re.sub(f"^ {{0,{indent}}}", "", line) for line in lines)
        line = text.count("\n", 0, match.start("lang")) + 1
        found.append(Block(line, match["lang"], code, match["note"] or ""))
    return found


def test_every_block_runs_or_says_why_not():
    every = blocks(README.read_text())
    assert len(every) > 10
    unrunnable = [b.line for b in every if b.lang not in RUNNERS and not b.note]
    assert unrunnable == [], f"README lines {unrunnable}: no runner, and no '<!-- not run: -->'"
    not_run = [b.line for b in every if b.note.startswith("not run:")]
    assert len(not_run) <= NOT_RUN_AT_MOST, f"not run: README lines {not_run}"
    notes = [b.note for b in every if b.note and not b.note.startswith(("not run: ", "run: "))]
    assert notes == []


@dataclass(frozen=True)
class ReadmeSettee:
    url: str
    admin: str | None


@pytest.fixture
def readme_settee(backend, server_url, tmp_path) -> Iterator[ReadmeSettee]:
    """``settee serve`` on a free port, serving the test backend, once it answers."""
    port = free_port()
    flags = ["--data-dir", str(tmp_path / "data"), "--admin", README_ADMIN]
    admin: str | None = README_ADMIN
    if not server_url.startswith("embedded:"):
        flags = ["--couch-url", server_url]
        auth = Endpoint.parse(server_url).auth
        admin = ":".join(auth) if auth else None
        with blocking.Couch(server_url) as couch:  # the test server's, left by another run
            with contextlib.suppress(NotFound):
                couch.delete("albums")
            if admin is not None:
                with contextlib.suppress(NotFound):
                    couch.users.delete(couch.users.get("org.couchdb.user:alice"))
    environ = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), *flags],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/_up", process=process)
        yield ReadmeSettee(f"http://127.0.0.1:{port}", admin)
    finally:
        process.kill()
        process.wait()


def test_the_readme_runs_as_written(backend, readme_settee, tmp_path):
    port = int(readme_settee.url.rsplit(":", 1)[1])
    (tmp_path / ".curlrc").write_text("fail-with-body\nshow-error\n")
    environ = {**os.environ, "CURL_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for block in blocks(README.read_text()):
        if block.note.startswith("not run:") or block.skipped_on == backend:
            continue
        assert not [word for word in ROOT_ONLY if word in block.code], f"line {block.line}"
        command = block.command(port, readme_settee.admin)
        if block.subscriber:
            follow(command, environ, readme_settee.url, block.line)
            continue
        result = subprocess.run(
            command, env=environ, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert result.returncode == 0, f"README line {block.line}:\n{result.stdout}{result.stderr}"


def follow(command: list[str], environ: dict[str, str], settee: str, line: int) -> None:
    """Run a subscriber; once it prints, write a document and wait for it to print its id."""
    process = subprocess.Popen(
        command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    doc_id = "written-for-line-" + uuid.uuid4().hex[:8]
    try:
        wait_for(lambda: output or process.poll() is not None)
        assert process.poll() is None, f"README line {line} ended:\n{''.join(output)}"
        request = urllib.request.Request(
            f"{settee}/albums/{doc_id}",
            data=b"{}",
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()
        wait_for(lambda: doc_id in "".join(output) or process.poll() is not None)
        assert doc_id in "".join(output), f"README line {line}:\n{''.join(output)}"
    finally:
        process.kill()
        process.wait()
        reader.join(10)


def wait_for(condition, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
