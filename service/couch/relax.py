"""``@relax``: write Tornado handlers that ``yield`` client calls as if they were blocking.

Corduroy's ``@relax`` was built on ``web.asynchronous`` and ``gen.engine``, which Tornado 6
removed. This one turns a generator method into a coroutine that awaits whatever each
``yield`` hands it: a client call (or a list or dict of them, run at once) evaluates to its
result, and a failed call raises its exception at the yield. Tornado awaits that coroutine as
it awaits any ``async def`` handler method, so no ``gen.coroutine`` runner and no IOLoop
callbacks stand between a call's answer and the handler (~30 µs of CPU less per request in
bench/gateway.py). An ``async def`` method needs nothing of the kind and is returned as is.

Unlike gen.coroutine, and like any ``async def``, a relaxed method runs when it is awaited
(Tornado awaits handler methods): to start one without waiting for it, hand it to
``asyncio.ensure_future``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tornado import gen

F = TypeVar("F", bound=Callable)


def relax(method: F) -> F:
    """Let ``method`` yield (or await) the client's calls and get their results back."""
    if not inspect.isgeneratorfunction(method):
        return method

    @functools.wraps(method)
    async def relaxed(*args: Any, **kwargs: Any) -> Any:
        steps = method(*args, **kwargs)
        try:
            yielded = next(steps)
            while True:
                try:
                    result = await _awaitable(yielded)
                except BaseException as exc:  # cancellation too: the generator may clean up
                    yielded = steps.throw(exc)
                else:
                    yielded = steps.send(result)
        except StopIteration as finished:
            return finished.value
        except gen.Return as returned:  # Tornado's old way to return from a generator
            return returned.value

    return relaxed  # type: ignore[return-value]


def _awaitable(yielded: Any) -> Awaitable[Any]:
    """What a ``yield`` under ``@relax`` waits for, as gen.coroutine would take it."""
    if isinstance(yielded, asyncio.Future):
        return yielded  # a client call: the common case first
    if isinstance(yielded, concurrent.futures.Future):
        return asyncio.wrap_future(yielded)  # from an executor
    if inspect.isawaitable(yielded):
        return yielded
    if yielded is None or yielded is gen.moment:
        return asyncio.sleep(0)  # one turn of the loop
    # A list or dict of calls (run at once, results in the same shape), or a type registered
    # with Tornado; BadYieldError for anything else.
    return gen.convert_yielded(yielded)
