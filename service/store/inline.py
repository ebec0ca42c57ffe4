"""Store work the event loop does itself, and what sends it back to a thread.

A request the store answers with a few indexed reads of one snapshot (a document's GET), or
with those and one write handed to the writer thread (a document's PUT), costs less than the
hop to a worker thread and back: under load, each SQLite call a worker makes hands the GIL to
and from the loop, the hop is most of a GET's time, and a worker waiting for the writer's
commit is a thread the next writes cannot use. The async transport therefore runs such
requests on the loop, inside ``running()``:

- work that may take long although the request looked cheap (hashing a password not seen
  before, running a validation function, making a database's file, any write not made
  through ``after``) calls ``slow_work_ahead()`` first: on the loop it raises ``WouldBlock``
  before any effect, and the transport asks a worker thread to answer the request instead;
- a write hands the writer its job and, rather than wait for the commit, raises ``Pending``
  (``after``): the transport awaits the commit without blocking the loop, then finishes the
  answer (``Pending.finish``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextvars import ContextVar
from typing import Any

_on_the_loop: ContextVar[bool] = ContextVar("settee_store_on_the_loop", default=False)


class Handoff(Exception):
    """The loop stops answering the request here; the transport takes it on."""


class WouldBlock(Handoff):
    """The request needs slow work: answer it in a worker thread."""


class Pending(Handoff):
    """The request's write is with the writer: ``finish(future)``, once ``future`` is done,
    gives the answer (or raises what the write raised)."""

    def __init__(self, future: Future, finish: Callable[[Future], Any]) -> None:
        super().__init__()
        self.future = future
        self.finish = finish

    def then(self, after: Callable[[Callable[[], Any]], Any]) -> Pending:
        """The same wait, its answer made by ``after(finish)``, where ``finish()`` is the
        answer so far: how each caller the exception passes adds its own last steps."""
        finish = self.finish
        self.finish = lambda future: after(lambda: finish(future))
        return self


def slow_work_ahead() -> None:
    """Raise ``WouldBlock`` when called on the event loop, inside ``running()``."""
    if _on_the_loop.get():
        raise WouldBlock


def after(future: Future, then: Callable[[Any], Any]) -> Any:
    """``then(result of future)``: waited for in a worker thread; on the loop, ``Pending``."""
    if _on_the_loop.get():
        raise Pending(future, lambda done: then(done.result()))
    return then(future.result())


@contextlib.contextmanager
def running() -> Iterator[None]:
    """Run the block as the event loop's own store work."""
    token = _on_the_loop.set(True)
    try:
        yield
    finally:
        _on_the_loop.reset(token)
