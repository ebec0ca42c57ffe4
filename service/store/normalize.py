"""A Mango selector in CouchDB 3.4's normal form: what ``_explain`` shows and what a partial
index stores (``views.NAME.map.partial_filter_selector``).

Three passes, as CouchDB's: every object of several members becomes an ``$and`` of one-member
objects and a bare value an ``$eq``; field names nest into dotted paths (``{"a": {"b": 1}}``
→ ``{"a.b": {"$eq": 1}}``, the arguments of ``$elemMatch``, ``$allMatch`` and ``$keyMapMatch``
on their own, their value being the field ``""``); negations (``$not``, ``$nor``) are pushed
down to the conditions, by De Morgan's laws and the opposite comparison, a ``$not`` staying
only above an operator that has no opposite. The normal form matches the documents the
selector matches (``selectors.matches`` takes both).
"""

from __future__ import annotations

import re
from typing import Any

from ..couch.errors import BadRequest
from .erlterm import term
from .selectors import invalid

COMBINED = ("$and", "$or", "$nor")
ON_ELEMENTS = ("$elemMatch", "$allMatch", "$keyMapMatch")
OPERATORS = {
    *COMBINED,
    *ON_ELEMENTS,
    "$not",
    "$eq",
    "$ne",
    "$lt",
    "$lte",
    "$gt",
    "$gte",
    "$in",
    "$nin",
    "$exists",
    "$type",
    "$mod",
    "$regex",
    "$all",
    "$size",
    "$beginsWith",
    "$text",
    "$default",
}
UNSUPPORTED = ("$where", "$geoWithin", "$geoIntersects", "$near", "$nearSphere")
OPPOSITES = {
    "$lt": "$gte",
    "$gte": "$lt",
    "$lte": "$gt",
    "$gt": "$lte",
    "$eq": "$ne",
    "$ne": "$eq",
    "$in": "$nin",
    "$nin": "$in",
}


def normalized(selector: dict[str, Any]) -> dict[str, Any]:
    """``selector`` in normal form; 400 as CouchDB for what it refuses (an operator it lacks,
    a bad argument, a condition with no field)."""
    if not selector:
        return {}
    normal = _positive(_paths(_explicit(selector), ""))
    if "" in normal:
        raise BadRequest("invalid_selector", "One or more conditions is missing a field name.")
    return normal


def _single(value: Any) -> tuple[str, Any] | None:
    """The one member of a one-member object, else None."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        return name, arg
    return None


def _explicit(value: Any) -> Any:
    """Implicit ``$and`` and ``$eq`` made explicit; operators and their arguments checked
    as CouchDB checks them (400 ``bad_arg``, ``invalid_operator``, ``not_supported``)."""
    if isinstance(value, dict) and len(value) > 1:
        return {"$and": [_explicit({name: arg}) for name, arg in value.items()]}
    member = _single(value)
    if member is None:
        return {"$eq": value}
    name, arg = member
    if not name.startswith("$"):
        return {name: _explicit(arg)}
    _check(name, arg)
    if name in COMBINED:
        return {name: [_explicit(each) for each in arg]}
    if name in ("$not", *ON_ELEMENTS):
        return {name: _explicit(arg)}
    if name == "$text":
        return {"$default": {"$text": arg}}
    return value  # a condition on a value: its argument is a value, not a selector


def _check(op: str, arg: Any) -> None:
    """400 for an operator CouchDB 3.4 does not take, or an argument it refuses."""
    if op in UNSUPPORTED:
        raise BadRequest("not_supported", f"Unsupported operator: {op}")
    if op not in OPERATORS or (op in ("$regex", "$beginsWith") and not isinstance(arg, str)):
        raise invalid(f"Invalid operator: {op}")
    valid = ARGUMENTS.get(op, lambda _: True)(arg)
    if valid and op == "$regex":
        try:
            re.compile(arg)
        except re.error:
            valid = False
    if not valid:
        raise BadRequest("bad_arg", f"Bad argument for operator {op}: {term(arg)}")


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


ARGUMENTS = {
    **{op: (lambda arg: isinstance(arg, list)) for op in (*COMBINED, "$in", "$nin", "$all")},
    **{op: (lambda arg: isinstance(arg, dict)) for op in ("$not", *ON_ELEMENTS)},
    "$exists": lambda arg: isinstance(arg, bool),
    "$type": lambda arg: isinstance(arg, str),
    "$size": lambda arg: _integer(arg) and arg >= 0,
    "$mod": lambda arg: isinstance(arg, list) and len(arg) == 2 and all(map(_integer, arg)),
    "$text": lambda arg: isinstance(arg, str | int | float),
}


def _paths(value: Any, path: str) -> Any:
    """Field names joined into the dotted path of each condition."""
    member = _single(value)
    if member is None:
        return value
    name, arg = member
    if name in COMBINED and isinstance(arg, list):
        return {name: [_paths(each, path) for each in arg]}
    if name == "$not":
        return {name: _paths(arg, path)}
    if name in ON_ELEMENTS:
        return {path: {name: _paths(arg, "")}}
    if name == "$default":
        return value
    if name.startswith("$"):
        return {path: value}
    return _paths(arg, f"{path}.{name}" if path else name)


def _positive(value: Any) -> Any:
    """Negations pushed down (``norm_negations``)."""
    member = _single(value)
    if member is None:
        return value
    name, arg = member
    if name == "$not":
        return _negated(arg)
    if name == "$nor" and isinstance(arg, list):
        return {"$and": [_negated(each) for each in arg]}
    if name in ("$and", "$or") and isinstance(arg, list):
        return {name: [_positive(each) for each in arg]}
    if name in ("$elemMatch", "$allMatch"):
        return {name: _positive(arg)}
    return value


def _negated(value: Any) -> Any:
    """The negation of ``value``, pushed down as far as it goes."""
    member = _single(value)
    if member is None:
        return {"$not": value}
    name, arg = member
    if name == "$not":
        return _positive(arg)
    if name == "$nor" and isinstance(arg, list):
        return {"$or": [_positive(each) for each in arg]}
    if name in ("$and", "$or") and isinstance(arg, list):
        return {"$or" if name == "$and" else "$and": [_negated(each) for each in arg]}
    if name in OPPOSITES:
        return {OPPOSITES[name]: arg}
    if name == "$exists":
        return {"$exists": not arg}
    if name.startswith("$"):
        return {"$not": value}
    return {name: _negated(arg)}


def normal_conditions(normal: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """``(field, operator, argument)`` of the conditions of a normal form that every match
    meets: its own, or those of its top-level ``$and`` (and of the ``$and`` in those)."""
    if isinstance(normal.get("$and"), list):
        return [c for each in normal["$and"] for c in normal_conditions(each)]
    found = []
    for name, condition in normal.items():
        member = _single(condition)
        if not name.startswith("$") and member is not None:
            found.append((name, *member))
    return found
