"""Counting the requests being answered, so that shutdown can wait for them to finish."""

from __future__ import annotations

import asyncio


class InFlight:
    """How many requests are being answered; ``drained()`` waits until none are."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the count to reach 0; whether it did."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
