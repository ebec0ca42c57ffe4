"""Waiting in tests: for a condition, within a deadline; never for a fixed time.

``until`` returns as soon as a condition holds (and fails the test at the deadline).
``never_within`` is the one wait that must last its whole time: it shows that something does
NOT happen, which no event can announce, so it is bounded and says so by its name.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

Condition = Callable[[], bool | Awaitable[bool]]

POLL_INTERVAL = 0.02


async def _holds(condition: Condition) -> bool:
    value = condition()
    return bool(await value) if inspect.isawaitable(value) else bool(value)


async def until(condition: Condition, timeout: float = 10.0, what: str = "a condition") -> None:
    """Return once ``condition()`` (sync or async) holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _holds(condition):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(POLL_INTERVAL)


async def never_within(seconds: float, happened: Condition, what: str = "it") -> None:
    """Watch for ``seconds`` that ``happened()`` stays false: the proof that something does
    not happen (a longpoll that must still wait, a writer that must stay held back)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        assert not await _holds(happened), f"{what} happened"
        await asyncio.sleep(POLL_INTERVAL)
