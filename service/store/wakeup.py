"""``Signal``: wakes whoever waits for a database's next commit, in threads or on event loops.

The writer thread fires it after each commit; continuous and longpoll ``_changes`` feeds wait
on it instead of polling. A waiter reads ``version`` before it looks at the database, then
waits for the version to move: a commit between the look and the wait is never missed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class Signal:
    """A version counter whose every change wakes the threads and coroutines waiting on it."""

    def __init__(self) -> None:
        self.version = 0
        self._condition = threading.Condition()
        self._futures: set[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = set()

    def fire(self) -> None:
        """Something was committed: wake every waiter."""
        with self._condition:
            self.version += 1
            self._condition.notify_all()
            futures, self._futures = self._futures, set()
        for loop, future in futures:
            loop.call_soon_threadsafe(_resolve, future)

    def wake_threads(self) -> None:
        """Wake waiting threads without a commit, so that they look at their own stop flag."""
        with self._condition:
            self._condition.notify_all()

    def wait(self, version: int, timeout: float | None, stop: Callable[[], bool]) -> None:
        """Block until the version is no longer ``version``, ``stop()`` is true, or
        ``timeout`` seconds have passed."""
        with self._condition:
            self._condition.wait_for(lambda: self.version != version or stop(), timeout)

    async def wait_async(self, version: int, timeout: float | None) -> None:
        """Wait until the version is no longer ``version``, or ``timeout`` seconds have passed."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        entry = (loop, future)
        with self._condition:
            if self.version != version:
                return
            self._futures.add(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            with self._condition:
                self._futures.discard(entry)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
