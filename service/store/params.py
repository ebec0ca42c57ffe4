"""Reading a request's query options and JSON body as CouchDB does, with its 400s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..couch.errors import BadRequest
from ..couch.protocol import decode_json
from .reads import DocOptions

Query = Mapping[str, str]


def flag(query: Query, name: str, default: bool = False) -> bool:
    value = query.get(name)
    if value is None:
        return default
    if value in ("true", "false"):
        return value == "true"
    raise BadRequest("query_parse_error", f"Invalid boolean parameter: {value!r} for {name}")


def integer(query: Query, name: str, default: int | None = None) -> int | None:
    value = query.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest("query_parse_error", f"Invalid value for integer: {value!r}") from None
    if number < 0:
        raise BadRequest("query_parse_error", f"Invalid value for positive integer: {value!r}")
    return number


def json_value(query: Query, name: str) -> Any:
    try:
        return decode_json(query[name])
    except ValueError:
        raise BadRequest("bad_request", "invalid UTF-8 JSON") from None


def body_json(body: bytes, *, want_object: bool = True) -> Any:
    """The request's JSON body; 400 ``bad_request`` as CouchDB words it when it is not."""
    try:
        value = decode_json(body or b"")
    except ValueError:
        raise BadRequest("bad_request", "invalid UTF-8 JSON") from None
    if want_object and not isinstance(value, dict):
        raise BadRequest("bad_request", "Request body must be a JSON object")
    return value


def doc_options(query: Query) -> DocOptions:
    meta = flag(query, "meta")
    return DocOptions(
        revs=flag(query, "revs"),
        revs_info=flag(query, "revs_info") or meta,
        conflicts=flag(query, "conflicts") or meta,
        deleted_conflicts=flag(query, "deleted_conflicts") or meta,
        local_seq=flag(query, "local_seq"),
        attachments=flag(query, "attachments"),
        latest=flag(query, "latest"),
    )
