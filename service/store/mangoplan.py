"""A Mango query's options, checked as CouchDB 3.4 checks them, and the index that answers it.

CouchDB picks by itself, among the json indexes that are not partial, one whose fields the
selector all requires (for a ``sort``, one whose fields begin with the sort's, its other
fields required, else 400 ``no_usable_index``): the one whose leading fields are most of
those the selector bounds, then the one of fewest fields, then by design document and name;
with none, ``_all_docs`` and a warning. An index named by ``use_index`` (``"ddoc"``,
``"_design/ddoc"`` or ``["ddoc", "name"]``) is used if it can answer, partial or not; if it
cannot, CouchDB picks as if it were not named and warns, unless ``allow_fallback`` is false
(400 ``invalid_index``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..couch.errors import BadRequest
from . import selectors
from .erlterm import term
from .jsonindex import JsonIndex
from .normalize import normal_conditions, normalized

DEFAULT_LIMIT = 25
NO_INDEX_WARNING = "No matching index found, create an index to optimize query time."
KEYS = {
    "selector",
    "use_index",
    "bookmark",
    "limit",
    "skip",
    "sort",
    "fields",
    "partition",
    "r",
    "conflicts",
    "update",
    "stable",
    "stale",
    "execution_stats",
    "allow_fallback",
}
RANGES = ("$eq", "$gt", "$gte", "$lt", "$lte", "$beginsWith")  # conditions a view key can bound
FLAGS = {"conflicts": False, "update": True, "stable": False, "execution_stats": False}


def invalid_keys(body: dict[str, Any], allowed: set[str]) -> None:
    """400 ``invalid_key`` for the first member of ``body`` not in ``allowed``."""
    for key in body:
        if key not in allowed:
            raise BadRequest("invalid_key", f"Invalid key {key} for this request.")


def sort_fields(sort: Any) -> list[tuple[str, str]]:
    """A ``sort`` (or an index's ``fields``) as ``(field, direction)`` pairs."""
    if sort is None:
        return []
    if not isinstance(sort, list):
        raise BadRequest("invalid_sort_json", "Sort must be an array")
    fields = []
    for item in sort:
        if isinstance(item, str):
            fields.append((item, "asc"))
        elif isinstance(item, dict) and len(item) == 1:
            ((field, direction),) = item.items()
            if direction not in ("asc", "desc"):
                raise BadRequest("invalid_sort_dir", f"Invalid sort direction: {direction}")
            fields.append((field, direction))
        else:
            raise BadRequest("invalid_sort_field", f"Invalid sort field: {json.dumps(item)}")
    if len({d for _, d in fields}) > 1:
        raise BadRequest(
            "unsupported_mixed_sort",
            "Sorts currently only support a single direction for all fields.",
        )
    return fields


def _use_index(value: Any) -> list[str]:
    """``use_index`` as a list of none, one (a design document) or two (and a name) names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and len(value) <= 2 and all(isinstance(v, str) for v in value):
        return value
    raise BadRequest("invalid_index_name", f"Invalid index name: {term(value)}")


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest("invalid_boolean", f"Invalid boolean value: {term(value)}")
    return value


@dataclass(frozen=True, slots=True)
class Query:
    """A ``_find`` body, checked."""

    body: dict[str, Any]
    selector: dict[str, Any]
    limit: int
    skip: int
    fields: list[str] | None
    sort: list[tuple[str, str]]
    use_index: list[str]
    allow_fallback: bool

    @property
    def opts(self) -> dict[str, Any]:
        """The options as ``_explain`` shows them."""
        named = list(self.use_index)
        if named:
            named[0] = named[0].removeprefix("_design/")
        flags = {name: self.body.get(name, default) for name, default in FLAGS.items()}
        return {
            "use_index": named,
            "bookmark": self.body.get("bookmark", "nil"),
            "limit": self.limit,
            "skip": self.skip,
            "sort": dict(self.sort),
            "fields": self.fields or [],
            "partition": self.body.get("partition", ""),
            "r": self.body.get("r", 1),
            "conflicts": flags["conflicts"],
            "stale": self.body.get("stale", False),
            "update": flags["update"],
            "stable": flags["stable"],
            "execution_stats": flags["execution_stats"],
            "allow_fallback": self.allow_fallback,
        }


def query(body: dict[str, Any]) -> Query:
    """The ``_find``/``_explain`` body checked: 400 as CouchDB 3.4 words it."""
    invalid_keys(body, KEYS)
    selector = body.get("selector")
    if not isinstance(selector, dict):
        raise BadRequest("missing_required_key", "Missing required key: selector")
    normalized(selector)  # refuses an operator CouchDB does not know
    limit, skip = body.get("limit", DEFAULT_LIMIT), body.get("skip", 0)
    for name, value in (("limit", limit), ("skip", skip)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequest("invalid_argument", f"Invalid value for {name}")
    fields = body.get("fields")
    if fields is not None and (
        not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)
    ):
        raise BadRequest("invalid_field_json", "fields must be an array of strings")
    for name, default in FLAGS.items():
        _flag(body, name, default)
    sort = sort_fields(body.get("sort"))
    use_index = _use_index(body.get("use_index"))
    allow_fallback = _flag(body, "allow_fallback", True)
    return Query(body, selector, limit, skip, fields, sort, use_index, allow_fallback)


@dataclass(frozen=True, slots=True)
class Choice:
    """The index that answers a query (None: ``_all_docs``) and the warnings it gives."""

    index: JsonIndex | None
    warnings: tuple[str, ...]


def unusable(index: JsonIndex, q: Query) -> str | None:
    """Why ``index`` cannot answer ``q`` (CouchDB's reason), or None if it can: its fields
    must begin with the sort's (after fields the selector holds equal), and the selector
    require all the others (a sorted answer holds only documents that have the sort's
    fields, as CouchDB's does)."""
    sort_names = [f for f, _ in q.sort]
    if "$text" in q.selector:
        return "needs_text_search"
    if not set(index.fields) <= selectors.fields_of(q.selector) | set(sort_names):
        return "field_mismatch"
    if sort_names and not _sorts(list(index.fields), sort_names, _constant(q)):
        return "sort_order_mismatch"
    return None


def _sorts(fields: list[str], sort: list[str], constant: set[str]) -> bool:
    """Whether an index on ``fields`` is in ``sort``'s order: its fields begin with the
    sort's, but for leading fields the selector holds equal (``$eq``)."""
    while fields and fields[0] != sort[0] and fields[0] in constant:
        fields = fields[1:]
    return fields[: len(sort)] == sort


def _constant(q: Query) -> set[str]:
    return {f for f, op, _ in normal_conditions(normalized(q.selector)) if op == "$eq"}


def all_docs_unusable(q: Query) -> str | None:
    """Why ``_all_docs`` cannot answer ``q``, or None: it answers no sort but on ``_id``,
    and that only if the selector bounds ``_id``."""
    if not q.sort:
        return None
    if "_id" not in bounded(q):
        return "field_mismatch"
    if [f for f, _ in q.sort] != ["_id"]:
        return "sort_order_mismatch"
    return None


def _usable(indexes: list[JsonIndex], q: Query) -> list[JsonIndex]:
    return [index for index in indexes if unusable(index, q) is None]


def bounded(q: Query) -> set[str]:
    """The fields the selector bounds as a view's keys can be bounded."""
    return {
        field
        for field, op, arg in normal_conditions(normalized(q.selector))
        if op in RANGES or (op == "$exists" and arg is True)
    }


def ranked(usable: list[JsonIndex], q: Query) -> list[tuple[JsonIndex, int]]:
    """Usable indexes in CouchDB's order of preference, each with how many of the fields
    the selector bounds its leading fields miss: fewest missed, then fewest fields, then
    by design document id and name."""
    bounds = bounded(q)

    def missed(index: JsonIndex) -> int:
        prefix = 0
        for field in index.fields:
            if field not in bounds:
                break
            prefix += 1
        return len(bounds) - prefix

    order = sorted(usable, key=lambda i: (missed(i), len(i.fields), i.ddoc, i.name))
    return [(index, missed(index)) for index in order]


def _picked(indexes: list[JsonIndex], q: Query) -> JsonIndex | None:
    """The index CouchDB picks by itself (no partial one), None for ``_all_docs``."""
    if [f for f, _ in q.sort] == ["_id"] and all_docs_unusable(q) is None:
        return None
    usable = _usable([i for i in indexes if not i.partial], q)
    if q.sort and not usable:
        raise BadRequest(
            "no_usable_index",
            "No index exists for this sort, try indexing by the sort fields.",
        )
    return ranked(usable, q)[0][0] if usable else None


def _design_id(ddoc: str) -> str:
    return ddoc if ddoc.startswith("_design/") else f"_design/{ddoc}"


def named(index: JsonIndex, q: Query) -> bool:
    """Whether ``use_index`` names ``index``: its design document, and its name if given."""
    if not q.use_index:
        return False
    wanted = q.use_index[1:]
    return index.ddoc == _design_id(q.use_index[0]) and wanted in ([], [index.name])


def chosen(indexes: list[JsonIndex], q: Query) -> Choice:
    """The index CouchDB answers ``q`` with, and its warnings."""
    warnings: list[str] = []
    if q.use_index:
        usable = _usable([i for i in indexes if named(i, q)], q)
        if usable:
            return Choice(ranked(usable, q)[0][0], ())
        ddoc, name = _design_id(q.use_index[0]), q.use_index[1:]
        label = ", ".join([ddoc, *name])
        if not q.allow_fallback:
            reason = f"{label} specified by `use_index` could not be found or it is not suitable."
            raise BadRequest("invalid_index", reason)
        why = "is not a valid index" if name else "does not contain a valid index"
        warnings.append(f"{label} was not used because it {why} for this query.")
    index = _picked(indexes, q)
    if index is None:
        if not q.allow_fallback and not q.use_index:
            reason = "You must specify an index with the `use_index` parameter."
            raise BadRequest("invalid_index", reason)
        warnings.append(NO_INDEX_WARNING)
    return Choice(index, tuple(warnings))
