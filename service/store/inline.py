"""Store work the event loop does itself, and what sends it back to a thread.

A request the store answers with a few indexed reads of one snapshot (a document's GET)
costs less than the hop to a worker thread and back: under load, each SQLite call a worker
makes hands the GIL to and from the loop, and the hop is most of a GET's time. The async
transport therefore runs such requests on the loop, inside ``running()``. Work that may take
long although the request looked cheap (hashing a password not seen before, making a
database's file) calls ``slow_work_ahead()`` first: on the loop it raises ``WouldBlock``
before any effect, and the transport asks a worker thread to answer the request instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_on_the_loop: ContextVar[bool] = ContextVar("settee_store_on_the_loop", default=False)


class WouldBlock(Exception):
    """The request needs slow work: answer it in a worker thread."""


def slow_work_ahead() -> None:
    """Raise ``WouldBlock`` when called on the event loop, inside ``running()``."""
    if _on_the_loop.get():
        raise WouldBlock


@contextlib.contextmanager
def running() -> Iterator[None]:
    """Run the block as the event loop's own store work."""
    token = _on_the_loop.set(True)
    try:
        yield
    finally:
        _on_the_loop.reset(token)
