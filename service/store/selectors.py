"""Mango selectors: whether a document matches one, as CouchDB 3.4's ``mango_selector``
decides.

A field condition needs the field to exist (but ``$exists: false``); comparisons use CouchDB's
view collation (``collation.sort_key``), so ``{"$gt": 5}`` and a view's ``startkey=5`` agree.
A nested object without operators is a condition on its dotted fields. Paths are dotted
(``a.b``; ``\\.`` is a dot inside a name).
"""

from __future__ import annotations

import re
from typing import Any

from ..couch.errors import BadRequest
from .collation import sort_key

MISSING = object()
LOGICAL = ("$and", "$or", "$nor")  # on a field, they combine conditions on that field
TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def invalid(reason: str) -> BadRequest:
    return BadRequest("invalid_operator", reason)


def path_of(field: str) -> list[str]:
    """``"a.b\\.c"`` → ``["a", "b.c"]``."""
    return [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", field)]


def value_at(doc: Any, path: list[str]) -> Any:
    for name in path:
        if not isinstance(doc, dict) or name not in doc:
            return MISSING
        doc = doc[name]
    return doc


def matches(selector: dict[str, Any], doc: Any) -> bool:
    """Whether ``doc`` matches ``selector`` (every member of it: an implicit ``$and``)."""
    return all(_member(name, condition, doc) for name, condition in selector.items())


def _member(name: str, condition: Any, doc: Any) -> bool:
    if name == "":
        return _field(doc, condition)  # the value itself, as in a normalized ``$elemMatch``
    if name == "$text":
        return True  # CouchDB 3.4 without a search service lets a text search match anything
    if name == "$and":
        return all(matches(_selector(each), doc) for each in _list(name, condition))
    if name == "$or":
        return any(matches(_selector(each), doc) for each in _list(name, condition))
    if name == "$nor":
        return not any(matches(_selector(each), doc) for each in _list(name, condition))
    if name == "$not":
        return not matches(_selector(condition), doc)
    if name.startswith("$"):
        return _condition(doc, name, condition)  # an operator on the value itself
    return _field(value_at(doc, path_of(name)), condition)


def _field(value: Any, condition: Any) -> bool:
    """A field's value against its condition: operators, a nested selector, or a value."""
    if isinstance(condition, dict) and condition:
        if all(key.startswith("$") for key in condition):
            return all(
                _member(op, arg, value) if op in LOGICAL else _condition(value, op, arg)
                for op, arg in condition.items()
            )
        return matches(condition, value) if value is not MISSING else False
    return value is not MISSING and _equal(value, condition)


def _equal(a: Any, b: Any) -> bool:
    return sort_key(a) == sort_key(b)


def _condition(value: Any, op: str, arg: Any) -> bool:
    if op == "$exists":
        return (value is not MISSING) is bool(arg)
    if value is MISSING:
        return False
    if op in COMPARISONS:
        return COMPARISONS[op](sort_key(value), sort_key(arg))
    if op == "$in":
        options = _list(op, arg)
        if isinstance(value, list):
            return any(_equal(item, option) for item in value for option in options) or any(
                _equal(value, option) for option in options
            )
        return any(_equal(value, option) for option in options)
    if op == "$nin":
        return not _condition(value, "$in", arg)
    if op == "$type":
        return arg in TYPES and TYPES[arg](value)  # CouchDB: a type it lacks matches nothing
    if op == "$size":
        return isinstance(value, list) and isinstance(arg, int) and len(value) == arg
    if op == "$mod":
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(n, int) for n in arg)):
            raise invalid("$mod requires [Divisor, Remainder] integers")
        if arg[0] == 0:
            raise invalid("$mod divisor cannot be 0")
        return isinstance(value, int) and not isinstance(value, bool) and value % arg[0] == arg[1]
    if op == "$regex":
        if not isinstance(arg, str):
            raise invalid("$regex requires a string")
        return isinstance(value, str) and re.search(arg, value) is not None
    if op == "$beginsWith":
        return isinstance(value, str) and isinstance(arg, str) and value.startswith(arg)
    if op == "$all":
        wanted = _list(op, arg)
        return isinstance(value, list) and all(any(_equal(v, w) for v in value) for w in wanted)
    if op in ("$elemMatch", "$allMatch"):
        if not isinstance(value, list):
            return False
        test = any if op == "$elemMatch" else all
        return bool(value) and test(_field(item, _selector(arg)) for item in value)
    if op == "$keyMapMatch":
        return isinstance(value, dict) and any(_field(k, _selector(arg)) for k in value)
    if op == "$not":
        return not _field(value, arg)
    raise invalid(f"Invalid operator: {op}")


COMPARISONS = {
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
}


def _list(op: str, arg: Any) -> list[Any]:
    if not isinstance(arg, list):
        raise invalid(f"{op} requires an array")
    return arg


def _selector(arg: Any) -> dict[str, Any]:
    if not isinstance(arg, dict):
        raise invalid("a selector must be a JSON object")
    return arg


def fields_of(selector: dict[str, Any]) -> set[str]:
    """The fields a selector requires to exist (at its top level, in ``$and``, and in every
    branch of an ``$or``): those an index must have all of to answer it."""
    required: set[str] = set()
    for name, condition in selector.items():
        if name == "$and" and isinstance(condition, list):
            for each in condition:
                if isinstance(each, dict):
                    required |= fields_of(each)
        elif name == "$or" and isinstance(condition, list) and condition:
            branches = [fields_of(e) if isinstance(e, dict) else set() for e in condition]
            required |= set.intersection(*branches)
        elif not name.startswith("$"):
            if isinstance(condition, dict) and condition.get("$exists") is False:
                continue
            if (
                isinstance(condition, dict)
                and condition
                and not any(key.startswith("$") for key in condition)
            ):
                required |= {f"{name}.{inner}" for inner in fields_of(condition)}
            else:
                required.add(name)
    return required
