"""CouchDB's built-in reduce functions, computed in Python: ``_count``, ``_sum``, ``_stats``
and ``_approx_count_distinct`` (exact here: a count of the distinct keys, which is what
CouchDB's HyperLogLog estimates).

Each takes the rows of one group (``keys`` as sort keys, ``values`` as JSON values) and gives
the group's value, with CouchDB's 500 ``builtin_reduce_error`` for values it cannot reduce.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..couch.errors import HTTPError

BUILT_IN = ("_count", "_sum", "_stats", "_approx_count_distinct")


class BuiltInReduceError(HTTPError):
    status = 500

    def __init__(self, reason: str) -> None:
        super().__init__("builtin_reduce_error", reason)


SUM_REASON = (
    "The _sum function requires that map values be numbers, arrays of numbers, or objects. "
    "Objects cannot be mixed with other data structures. Objects can be arbitrarily nested, "
    "provided that the values for all fields are themselves numbers, arrays of numbers, or "
    "objects."
)
STATS_REASON = (
    "The _stats function requires that map values be numbers or arrays of numbers, not '{}'"
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _add(total: Any, value: Any) -> Any:
    if _is_number(value) and (total is None or _is_number(total)):
        return value if total is None else total + value
    if isinstance(value, list) and (total is None or isinstance(total, list)):
        total = list(total or [])
        for i, item in enumerate(value):
            if not _is_number(item):
                raise BuiltInReduceError(SUM_REASON)
            if i < len(total):
                total[i] += item
            else:
                total.append(item)
        return total
    if isinstance(value, dict) and (total is None or isinstance(total, dict)):
        total = dict(total or {})
        for name, item in value.items():
            total[name] = _add(total.get(name), item)
        return total
    raise BuiltInReduceError(SUM_REASON)


def _sum(keys: list[bytes], values: list[Any]) -> Any:
    total = None
    for value in values:
        total = _add(total, value)
    return 0 if total is None else total


def _stats_of(values: list[float]) -> dict[str, Any]:
    return {
        "sum": sum(values),
        "count": len(values),
        "min": min(values),
        "max": max(values),
        "sumsqr": sum(v * v for v in values),
    }


def _stats(keys: list[bytes], values: list[Any]) -> Any:
    if values and isinstance(values[0], list):
        width = max(len(v) for v in values if isinstance(v, list))
        columns: list[list[float]] = [[] for _ in range(width)]
        for value in values:
            if not isinstance(value, list) or not all(_is_number(v) for v in value):
                raise BuiltInReduceError(STATS_REASON.format(value))
            for i, item in enumerate(value):
                columns[i].append(item)
        return [_stats_of(column) for column in columns]
    numbers = []
    for value in values:
        if not _is_number(value) or not math.isfinite(value):
            raise BuiltInReduceError(STATS_REASON.format(value))
        numbers.append(value)
    return _stats_of(numbers)


def _count(keys: list[bytes], values: list[Any]) -> int:
    return len(values)


def _approx_count_distinct(keys: list[bytes], values: list[Any]) -> int:
    return len(set(keys))


FUNCTIONS: dict[str, Callable[[list[bytes], list[Any]], Any]] = {
    "_count": _count,
    "_sum": _sum,
    "_stats": _stats,
    "_approx_count_distinct": _approx_count_distinct,
}
