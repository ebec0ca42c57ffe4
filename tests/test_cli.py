"""The ``settee`` command, ``python -m service``, ``scripts/serve``, and ``pip install .``.

What a newcomer runs first: each test runs it as they would, in a process of its own, and
waits for the server to answer before it looks further.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.servers import ROOT, free_port, wait_until_up

PYTHON_ONLY = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL" and "SETTEE" not in k}
"""The environment minus any backend or setting: the commands then serve the embedded store."""


def run(*command: str | Path, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=PYTHON_ONLY,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def serving(*command: str | Path, cwd: Path = ROOT, env: dict | None = None) -> Iterator[str]:
    """Start ``command`` (which serves on the port it is given), yield its URL once it answers,
    then SIGTERM it and check it exits 0."""
    port = free_port()
    process = subprocess.Popen(
        [*map(str, command), "--port", str(port), "--log-level", "warning"],
        cwd=cwd,
        env=env or PYTHON_ONLY,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/_up", timeout=120, process=process)
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def welcome(url: str) -> dict:
    with urllib.request.urlopen(url + "/", timeout=10) as response:
        return json.load(response)


def test_settee_help_names_its_commands():
    result = run(sys.executable, "-m", "service", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: settee ")
    assert "serve" in result.stdout


def test_settee_serve_help_lists_the_settings_under_its_own_name():
    result = run(sys.executable, "-m", "service", "serve", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: settee serve ")
    assert "--couch-url" in result.stdout and "default: 8888" in result.stdout


def test_settee_without_a_command_says_what_it_takes():
    result = run(sys.executable, "-m", "service")
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


def test_settee_serve_serves_the_embedded_store_and_stops_on_sigterm(tmp_path):
    command = (sys.executable, "-m", "service", "serve", "--data-dir", tmp_path / "data")
    with serving(*command) as url:
        assert welcome(url)["backend"]["kind"] == "embedded"


def test_scripts_serve_needs_nothing_but_python(tmp_path):
    """No npm, no Node, no system package: each is a stand-in on PATH that notes its call."""
    shims, calls = tmp_path / "bin", tmp_path / "calls"
    shims.mkdir()
    for name in ("npm", "npx", "node", "apt-get", "sudo", "dpkg"):
        shim = shims / name
        shim.write_text(f'#!/bin/sh\necho {name} >> "{calls}"\nexit 1\n')
        shim.chmod(0o755)
    env = {**PYTHON_ONLY, "PATH": f"{shims}:{os.environ['PATH']}"}
    with serving(ROOT / "scripts" / "serve", "--data-dir", tmp_path / "data", env=env) as url:
        assert welcome(url)["backend"]["kind"] == "embedded"
    assert not calls.exists(), calls.read_text()


def test_pip_install_gives_a_settee_command_that_serves(tmp_path):
    """``pip install .`` into a clean virtualenv, outside the checkout: the command, its
    help, and a server from the installed package alone (the store ships with it)."""
    source = tmp_path / "settee"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "node_modules", "var", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    installed = run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", source, timeout=600)
    assert installed.returncode == 0, installed.stderr
    settee = venv / "bin" / "settee"
    result = run(settee, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    result = run(settee, "serve", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--data-dir" in result.stdout, result.stderr
    with serving(settee, "serve", "--data-dir", tmp_path / "data", cwd=tmp_path) as url:
        assert welcome(url)["backend"]["kind"] == "embedded"
