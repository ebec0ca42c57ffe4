"""CouchDB's HTTP protocol as pure functions: build requests, check and decode responses.

Nothing here does I/O. Operations (see ``client``) are generators that yield ``Request``
objects and receive ``Response`` objects; a transport from ``transport`` sends them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import ijson
import ujson

from .documents import Document
from .errors import BadRequest, exception_for

JSON_TYPE = "application/json"

DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")
URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]+\Z")  # what quote() leaves as it is
MAX_DB_NAME = 238  # CouchDB's limit: a shard's file name must fit in 255 bytes
SYSTEM_DBS = frozenset({"_users", "_replicator", "_global_changes"})
RESERVED_ID_PREFIXES = ("_design/", "_local/")
LIVE_FEEDS = frozenset({"continuous", "longpoll", "eventsource", "live"})

# Options whose values CouchDB reads as JSON in the query string, even when they are strings
# (``key="a"`` goes out as ``key=%22a%22``). Any other option given a list, tuple or dict
# (``atts_since``, ``open_revs``, ...) goes out as JSON too; ``open_revs="all"`` stays a word.
JSON_OPTIONS = frozenset({"key", "keys", "startkey", "endkey", "start_key", "end_key", "doc_ids"})


@dataclass(slots=True)
class Request:
    """One HTTP request, relative to the server's root URL."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # bytes, or an async iterable of bytes for a streamed upload

    @property
    def target(self) -> str:
        """Path and query string, as sent on the request line."""
        return f"{self.path}?{urlencode(self.query, quote_via=quote)}" if self.query else self.path

    @property
    def is_feed(self) -> bool:
        """Whether the answer is a feed that stays open while the server has news to send
        (``feed=continuous``, ``longpoll``, ``eventsource``; ``_changes`` or ``_db_updates``):
        such a request holds its connection for as long as it runs, not for one answer."""
        query = self.query or dict(parse_qsl(urlsplit(self.path).query))
        return query.get("feed") in LIVE_FEEDS


@dataclass(slots=True)
class Response:
    """A complete HTTP response; header names are lower case."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return decode_json(self.body)


def encode_json(value: Any) -> bytes:
    """Encode a value as compact UTF-8 JSON, or raise BadRequest saying why it cannot be."""
    try:
        return ujson.dumps(
            value, ensure_ascii=False, escape_forward_slashes=False, allow_nan=False
        ).encode()
    except (TypeError, OverflowError, ValueError) as exc:
        raise BadRequest("bad_request", f"not JSON-serialisable: {exc}") from exc


# Every JSON object in an answer becomes a Document, as corduroy's decoder made them: its keys
# read as attributes at any depth (``changes.results[0].doc.title``). The standard library's C
# decoder calls the hook per object; ujson, which encodes, has no hook.
_DECODER = json.JSONDecoder(object_hook=Document)


def decode_json(data: bytes | str) -> Any:
    """Decode UTF-8 JSON; every object in it becomes a Document."""
    return _DECODER.decode(data if isinstance(data, str) else data.decode())


def json_body(value: Any) -> tuple[bytes, dict[str, str]]:
    """A JSON request body and the headers that go with it."""
    return encode_json(value), {"Content-Type": JSON_TYPE}


def validate_db_name(name: str) -> str:
    """Return ``name`` if CouchDB accepts it as a database name, else raise BadRequest."""
    if isinstance(name, str) and (name in SYSTEM_DBS or DB_NAME.match(name)):
        if len(name) > MAX_DB_NAME:
            raise BadRequest(
                "database_name_too_long", f"At least one path segment of `{name}` is too long."
            )
        return name
    raise BadRequest(
        "illegal_database_name",
        f"Name: '{name}'. Only lowercase characters (a-z), digits (0-9), and any of the "
        "characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.",
    )


def validate_doc_id(doc_id: object) -> str:
    """Return ``doc_id`` if CouchDB accepts it as a document id, else raise BadRequest."""
    if not isinstance(doc_id, str):
        raise BadRequest("illegal_docid", f"Document id must be a string, not {doc_id!r}")
    if not doc_id:
        raise BadRequest("illegal_docid", "Document id must not be empty")
    if doc_id.startswith("_"):
        prefix = next((p for p in RESERVED_ID_PREFIXES if doc_id.startswith(p)), None)
        if prefix is None:
            raise BadRequest(
                "illegal_docid", "Only reserved document ids may start with underscore."
            )
        if len(doc_id) == len(prefix):
            raise BadRequest("illegal_docid", f"Illegal document id `{doc_id}`")
    return doc_id


def segment(text: str) -> str:
    """``text`` quoted for one segment of a URL path; BadRequest for text UTF-8 cannot hold
    (a lone surrogate), which no URL can carry."""
    if URL_SAFE.match(text):
        return text
    try:
        return quote(text, safe="")
    except UnicodeEncodeError as exc:
        raise BadRequest("bad_request", f"not text a URL can carry: {text!r}") from exc


def db_path(db: str, *parts: str) -> str:
    """The URL path of a database, or of ``parts`` below it (each part quoted)."""
    path = "/" + segment(validate_db_name(db))
    return path + "".join("/" + segment(part) for part in parts)


def doc_segment(doc_id: str) -> str:
    """A document id quoted for a URL path (``_design/`` and ``_local/`` prefixes kept)."""
    validate_doc_id(doc_id)
    if doc_id[0] != "_":
        return segment(doc_id)
    prefix = next((p for p in RESERVED_ID_PREFIXES if doc_id.startswith(p)), "")
    return prefix + segment(doc_id[len(prefix) :])


def doc_path(db: str, doc_id: str, *parts: str) -> str:
    """The URL path of a document, or of ``parts`` (an attachment, ...) below it."""
    path = db_path(db) + "/" + doc_segment(doc_id)
    return path + "".join("/" + segment(part) for part in parts)


def design_path(db: str, name: str, kind: str) -> str:
    """The path of design function ``ddoc/fn`` of ``kind`` (``_view``, ``_show``, ...)."""
    ddoc, sep, function = name.partition("/")
    if not sep or not ddoc or not function:
        raise BadRequest("bad_request", f"expected 'designdoc/{kind.lstrip('_')}', got {name!r}")
    return doc_path(db, "_design/" + ddoc, kind, *function.split("/"))


def view_path(db: str, name: str) -> str:
    """``_all_docs``, ``ddoc/view`` or ``_design/ddoc/_view/view`` → the view's URL path."""
    if name == "_all_docs":
        return db_path(db, "_all_docs")
    parts = name.split("/")
    if len(parts) == 4 and parts[0] == "_design" and parts[2] == "_view":
        name = f"{parts[1]}/{parts[3]}"
    return design_path(db, name, "_view")


def encode_options(
    options: Mapping[str, Any], json_options: frozenset[str] = JSON_OPTIONS
) -> dict[str, str]:
    """Query-string values for document, view and changes options, as CouchDB expects them.

    ``json_options`` (key, startkey, ...) and every list, tuple or dict are JSON-encoded;
    booleans are ``true``/``false``; everything else is sent as its string form. Options set
    to None are left out.
    """
    query: dict[str, str] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name in json_options or isinstance(value, list | tuple | dict):
            query[name] = encode_json(value).decode()
        elif isinstance(value, bool):
            query[name] = "true" if value else "false"
        else:
            query[name] = str(value)
    return query


def error_from(response: Response, request: str) -> Exception:
    """The exception for an error response; ``request`` names it (method and URL)."""
    error, reason, payload = "unknown_error", "", None
    try:
        payload = response.json()
    except ValueError:
        reason = response.body[:200].decode("utf-8", "replace")
    # A per-document answer (a 417 to _bulk_docs) is summed up by its first document.
    first = payload[0] if isinstance(payload, list) and payload else payload
    if isinstance(first, Mapping):
        error = str(first.get("error", error))
        reason = str(first.get("reason", "") or "")
    cls = exception_for(response.status)
    return cls(
        error,
        reason,
        status=response.status,
        headers=response.headers,
        request=request,
        response=payload,
    )


def revisions_of(doc: Mapping[str, Any]) -> list[str]:
    """The rev strings in a document's ``_revisions`` field, newest first."""
    history = doc.get("_revisions") or {}
    start = history.get("start", 0)
    return [f"{start - i}-{rev_hash}" for i, rev_hash in enumerate(history.get("ids", []))]


def changes_request(path: str, options: Mapping[str, Any]) -> Request:
    """A ``_changes`` request. A ``selector`` goes in a POST body, as CouchDB requires."""
    options = dict(options)
    selector = options.pop("selector", None)
    query = encode_options(options)
    if selector is None:
        return Request("GET", path, query)
    body, headers = json_body({"selector": selector})
    return Request("POST", path, {**query, "filter": "_selector"}, headers, body)


def split_lines(buffer: bytearray, chunk: bytes) -> list[bytes]:
    """Append ``chunk`` to ``buffer``; take out and return the complete, non-blank lines."""
    buffer += chunk
    lines, start = [], 0
    while (end := buffer.find(b"\n", start)) >= 0:
        line = bytes(buffer[start:end]).strip()
        start = end + 1
        if line:
            lines.append(line)
    del buffer[:start]
    return lines


class RowParser:
    """Incremental parser for a view response: feed it bytes, get back the rows they complete.

    Memory stays bounded by the largest row, however many rows the response holds.
    """

    def __init__(self) -> None:
        self._rows = ijson.sendable_list()
        self._parser = ijson.items_coro(self._rows, "rows.item", use_float=True, map_type=Document)

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self._parser.send(chunk)
        rows = list(self._rows)
        del self._rows[:]
        return rows

    def close(self) -> None:
        self._parser.close()
