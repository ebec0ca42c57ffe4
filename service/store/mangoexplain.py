"""What ``_explain`` says beyond the index chosen, as CouchDB 3.4 says it: how the index
would be read (``mrargs``: the key range, its direction, whether documents are fetched;
``covering``), and why each other index was not used (``index_candidates``).

The range comes from the selector's normal form, as CouchDB's: per index field, the
conditions every match meets (``$eq``, ``$gt``, ``$gte``, ``$lt``, ``$lte`` at the top level
or in a top-level ``$and``) bound it from below and above; the start key holds the lower
bounds of the leading fields that have one, the end key the upper bounds and then
``"<MAX>"``. A range with nothing in it has null keys.
"""

from __future__ import annotations

from typing import Any

from . import jsonindex
from .collation import sort_key
from .jsonindex import JsonIndex
from .mangoplan import Query, all_docs_unusable, named, ranked, unusable
from .normalize import normal_conditions, normalized

MAX = "<MAX>"
NONE = object()  # no bound (JSON null is a bound)
LOWER = ("$eq", "$gt", "$gte")
UPPER = ("$eq", "$lt", "$lte")


def _bounds(conditions: list[tuple[str, str, Any]], field: str) -> tuple[Any, Any, bool] | None:
    """The lower and upper bounds of ``field`` (NONE: unbounded), and whether the range is
    empty; None if a bound is not a JSON value."""
    ops: list[tuple[str, Any]] = []
    for name, op, arg in conditions:
        if name == field and op == "$beginsWith" and isinstance(arg, str):
            ops += [("$gte", arg), ("$lte", arg + "\uffff")]  # CouchDB's bounds of a prefix
        elif name == field:
            ops.append((op, arg))
    low, high = NONE, NONE
    low_open = high_open = False
    try:
        for op, arg in ops:
            if op in LOWER and (low is NONE or sort_key(arg) > sort_key(low)):
                low, low_open = arg, op == "$gt"
            elif op == "$gt" and sort_key(arg) == sort_key(low):
                low_open = True
            if op in UPPER and (high is NONE or sort_key(arg) < sort_key(high)):
                high, high_open = arg, op == "$lt"
            elif op == "$lt" and sort_key(arg) == sort_key(high):
                high_open = True
        empty = False
        if low is not NONE and high is not NONE:
            order = (sort_key(low) > sort_key(high)) - (sort_key(low) < sort_key(high))
            empty = order > 0 or (order == 0 and (low_open or high_open))
    except (TypeError, ValueError):
        return None
    return low, high, empty


def mrargs(q: Query, index: JsonIndex | None) -> dict[str, Any]:
    """CouchDB's ``mrargs``: how the view (or ``_all_docs``) is read."""
    conditions = normal_conditions(normalized(q.selector))
    fields = index.fields if index else ("_id",)
    ranges = [r for r in (_bounds(conditions, field) for field in fields) if r is not None]
    reverse = bool(q.sort) and q.sort[0][1] == "desc"
    start: Any
    end: Any
    if len(ranges) < len(fields) or any(empty for _, _, empty in ranges):
        start = end = None
    elif index is None:
        ((low, high, _),) = ranges
        start = None if low is NONE else low
        end = MAX if high is NONE else high
        if reverse:
            start, end = (MAX if high is NONE else high), ("" if low is NONE else low)
    else:
        lows = _leading([low for low, _, _ in ranges])
        highs = [*_leading([high for _, high, _ in ranges]), MAX]
        start, end = (highs, lows) if reverse else (lows, highs)
    conflicts = q.body.get("conflicts") is True
    stale = q.body.get("stale") == "ok"  # as stable and no update
    quorum = q.body.get("r", 1) != 1  # documents are read afterwards, from a quorum
    return {
        "include_docs": not covering(q, index) and not quorum,
        "view_type": "map",
        "reduce": False,
        "partition": None,
        "start_key": start,
        "end_key": end,
        "direction": "rev" if reverse else "fwd",
        "stable": stale or q.body.get("stable", False),
        "update": not stale and q.body.get("update", True),
        "conflicts": True if conflicts else "undefined",
    }


def _leading(bounds: list[Any]) -> list[Any]:
    """The bounds up to the first field that has none."""
    found = []
    for bound in bounds:
        if bound is NONE:
            break
        found.append(bound)
    return found


def covering(q: Query, index: JsonIndex | None) -> bool:
    """Whether the index alone holds every field asked for (CouchDB then reads no document)."""
    if index is None or not q.fields:
        return False
    return all(field == "_id" or field in index.fields for field in q.fields)


ALL_DOCS = None  # ``_all_docs`` among the candidates
NO_INDEX = object()  # the winner of a query no index can answer


def candidates(indexes: list[JsonIndex], q: Query, winner: Any) -> list[dict[str, Any]]:
    """CouchDB's ``index_candidates``: every index but the one used, whether it could have
    answered, why it was not used, and its rank (``mango_cursor``'s groups: partial, not
    usable, excluded by ``use_index``, not of the type used, the usable ones not chosen; an
    index in two groups, a partial one named by ``use_index``, adds their ranks up)."""
    partial = [i for i in indexes if i.partial]
    scope: list[JsonIndex | None] = [i for i in indexes if not i.partial or named(i, q)]
    scope.append(ALL_DOCS)
    reasons = {id(i): all_docs_unusable(q) if i is ALL_DOCS else unusable(i, q) for i in scope}
    usable = [i for i in scope if reasons[id(i)] is None]
    filtered = [i for i in usable if i is not ALL_DOCS and named(i, q)] or usable
    views = [i for i in filtered if i is not None]
    of_type: list[JsonIndex | None] = list(views) if views else list(filtered)
    order = ranked(views, q) if views else []
    unfavored = [i for i in filtered if i not in of_type]
    excluded = [i for i in usable if i not in filtered]
    not_usable = [i for i in scope if i not in usable]
    unfavored_rank = max(1, len(order))
    excluded_rank = unfavored_rank + bool(unfavored)
    not_usable_rank = excluded_rank + bool(excluded)
    partial_rank = not_usable_rank + bool(not_usable)
    tags: dict[int, tuple[bool, list[str], int]] = {}

    def tag(index: JsonIndex | None, usable_too: bool, why: str, rank: int) -> None:
        was_usable, whys, was_rank = tags.get(id(index), (True, [], 0))
        tags[id(index)] = (was_usable and usable_too, [*whys, why], was_rank + rank)

    for each in partial:
        tag(each, False, "is_partial", partial_rank)
    for candidate in not_usable:
        tag(candidate, False, reasons[id(candidate)] or "", not_usable_rank)
    for candidate in excluded:
        tag(candidate, True, "excluded_by_user", excluded_rank)
    for candidate in unfavored:
        tag(candidate, True, "unfavored_type", unfavored_rank)
    width = 0 if winner is NO_INDEX else 1 if winner is ALL_DOCS else len(winner.fields)
    for rank, (index, missed) in enumerate(order):
        why = (
            "less_overlap"
            if missed > 0
            else "too_many_fields"
            if len(index.fields) > width
            else "alphabetically_comes_after"
        )
        tag(index, True, why, rank)
    listed = sorted(indexes, key=lambda i: (i.ddoc, i.name), reverse=True)
    found = []
    for candidate in [*listed, ALL_DOCS]:
        if candidate is winner:
            continue
        usable_too, whys, rank = tags[id(candidate)]
        found.append(
            {
                "index": candidate.described() if candidate else jsonindex.ALL_DOCS,
                "analysis": {
                    "usable": usable_too,
                    "reasons": [{"name": whys[0]}],
                    "ranking": rank,
                    "covering": covering(q, candidate) if candidate else None,
                },
            }
        )
    return found
