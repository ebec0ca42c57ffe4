"""``@relax``: write Tornado handlers that ``yield`` client calls as if they were blocking.

Corduroy's ``@relax`` was built on ``web.asynchronous`` and ``gen.engine``, which Tornado 6
removed. This one runs a generator method as a ``gen.coroutine``: each yielded client call (or a
list or dict of them, run in parallel) evaluates to its result, and a failed call raises its
exception at the yield. An ``async def`` method needs nothing of the kind and is returned as is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from tornado import gen

F = TypeVar("F", bound=Callable)


def relax(method: F) -> F:
    """Let ``method`` yield (or await) the client's calls and get their results back."""
    if inspect.isgeneratorfunction(method):
        return gen.coroutine(method)
    return method
