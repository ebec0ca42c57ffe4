"""Commits told to the other processes serving the same data directory.

With ``--processes N`` each process has a Store and a writer of its own over the same files.
SQLite keeps their writes apart, but a feed waits on its own process's commit signal, so it
would not hear of another process's writes. So each Store listens on a Unix datagram socket
(Linux's abstract namespace: no file to leave behind, no path-length limit) registered by name
in the data directory's ``peers/``; after a commit the writer sends the database's name to
every other registered process, whose listener fires that database's signal. A peer that is
gone refuses the datagram and is forgotten.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("settee.store")

SEND_TIMEOUT = 0.5  # seconds a commit waits for a peer whose queue of news is full
MAX_NAME = 4096  # bytes: a database name is at most 238


class Neighbours:
    """This process's place among those sharing ``directory``: tells them of commits,
    and calls ``on_commit(name)`` for theirs."""

    def __init__(self, directory: Path, on_commit: Callable[[str], None]) -> None:
        self._registry = directory / "peers"
        self._registry.mkdir(exist_ok=True)
        self._prefix = b"\0settee-" + hashlib.sha1(bytes(directory)).hexdigest()[:20].encode()
        self._me = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._on_commit = on_commit
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._listener.bind(self._address(self._me))
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.settimeout(SEND_TIMEOUT)
        self._send_lock = threading.Lock()
        (self._registry / self._me).touch()
        self._thread = threading.Thread(target=self._listen, name="settee-store-peers", daemon=True)
        self._thread.start()

    def _address(self, peer: str) -> bytes:
        return self._prefix + b"-" + peer.encode()

    def tell(self, name: str) -> None:
        """Tell every other process that database ``name`` has a new commit."""
        message = name.encode()
        with self._send_lock:
            for entry in os.scandir(self._registry):
                if entry.name == self._me:
                    continue
                try:
                    self._sender.sendto(message, self._address(entry.name))
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                except OSError as exc:  # a peer too busy to read: its feeds wake late
                    log.warning("could not tell process %s of a commit: %s", entry.name, exc)

    def _listen(self) -> None:
        while True:
            try:
                message = self._listener.recv(MAX_NAME)
            except OSError:
                return
            if not message:
                return
            self._on_commit(message.decode(errors="replace"))

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._registry / self._me).unlink()
        with contextlib.suppress(OSError):
            self._listener.sendto(b"", self._address(self._me))  # wakes the listener to stop
        self._thread.join(timeout=5)
        self._listener.close()
        self._sender.close()
