"""Query options of the HTTP API, parsed and checked before anything reaches the database.

Each endpoint has a table of the options it knows, by kind. A value that does not parse is a
400 ``query_parse_error`` whose reason names the option; an option no table knows is ignored,
as CouchDB ignores it. Parsed values are Python values that the client encodes again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ujson

from . import preconditions
from .couch.errors import BadRequest


def _boolean(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError("expected true or false")


def _count(text: str) -> int:
    if not text.isdigit():
        raise ValueError("expected a non-negative integer")
    return int(text)


def _json(text: str) -> Any:
    try:
        return ujson.loads(text)
    except ValueError:
        raise BadRequest("bad_request", "invalid UTF-8 JSON") from None  # CouchDB's words


def _json_list(text: str) -> list[Any]:
    value = _json(text)
    if not isinstance(value, list):
        raise ValueError("expected a JSON array")
    return value


def _text(text: str) -> str:
    return text


def _rev(text: str) -> str:
    """A revision: its generation, a dash, and the rest (CouchDB's own check)."""
    return preconditions.checked_rev(text)


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return text

    return parse


def _seconds(text: str) -> float:
    """CouchDB gives heartbeat and timeout in milliseconds; the client takes seconds."""
    return _count(text) / 1000


def _heartbeat(text: str) -> float:
    """Milliseconds, or ``true`` for CouchDB's default of 60 s."""
    return 60.0 if text == "true" else _seconds(text)


def _json_object(text: str) -> dict[str, Any]:
    value = _json(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _since(text: str) -> Any:
    """A seq is opaque: ``now``, or whatever the server gave (a number or a string), also as
    a JSON string (``"12-g1AA…"``), as CouchDB takes it."""
    if text.startswith('"'):
        value = _json(text)
        if not isinstance(value, str):
            raise ValueError("expected a seq")
        text = value
    return int(text) if text.isdigit() else text


Parser = Callable[[str], Any]

DOCUMENT: dict[str, Parser] = {
    "rev": _rev,
    "revs": _boolean,
    "revs_info": _boolean,
    "conflicts": _boolean,
    "deleted_conflicts": _boolean,
    "attachments": _boolean,
    "att_encoding_info": _boolean,
    "atts_since": _json_list,
    "local_seq": _boolean,
    "latest": _boolean,
    "meta": _boolean,
}

VIEW: dict[str, Parser] = {
    "key": _json,
    "keys": _json_list,
    "startkey": _json,
    "start_key": _json,
    "endkey": _json,
    "end_key": _json,
    "startkey_docid": _text,
    "start_key_doc_id": _text,
    "endkey_docid": _text,
    "end_key_doc_id": _text,
    "inclusive_end": _boolean,
    "descending": _boolean,
    "limit": _count,
    "skip": _count,
    "include_docs": _boolean,
    "conflicts": _boolean,
    "attachments": _boolean,
    "att_encoding_info": _boolean,
    "reduce": _boolean,
    "group": _boolean,
    "group_level": _count,
    "stale": _one_of("ok", "update_after"),
    "update": _one_of("true", "false", "lazy"),
    "update_seq": _boolean,
    "sorted": _boolean,
    "stable": _boolean,
}

BULK_GET: dict[str, Parser] = {
    "revs": _boolean,
    "attachments": _boolean,
    "latest": _boolean,
}

WRITE: dict[str, Parser] = {
    "batch": _one_of("ok"),
    "rev": _rev,
}

CHANGES: dict[str, Parser] = {
    "feed": _one_of("normal", "longpoll", "continuous", "live", "eventsource", "websocket"),
    "since": _since,
    "limit": _count,
    "descending": _boolean,
    "include_docs": _boolean,
    "conflicts": _boolean,
    "attachments": _boolean,
    "style": _one_of("main_only", "all_docs"),
    "filter": _text,
    "doc_ids": _json_list,
    "selector": _json_object,
    "view": _text,
    "heartbeat": _heartbeat,
    "timeout": _seconds,
    "latency": _seconds,
}


def parse(arguments: Mapping[str, list[bytes]], table: Mapping[str, Parser]) -> dict[str, Any]:
    """The options of ``table`` found in ``arguments`` (Tornado's query arguments), parsed.

    The last value of a repeated option wins, as in CouchDB.
    """
    options: dict[str, Any] = {}
    for name, values in arguments.items():
        parser = table.get(name)
        if parser is None:
            continue
        text = values[-1].decode("utf-8", "replace")
        try:
            options[name] = parser(text)
        except BadRequest:
            raise  # a value CouchDB refuses in its own words
        except ValueError as exc:
            raise BadRequest(
                "query_parse_error", f"Invalid value for `{name}`: {text!r} ({exc})"
            ) from None
    return options
