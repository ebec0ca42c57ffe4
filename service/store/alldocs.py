"""``_all_docs`` and ``_design_docs`` (GET, or POST with ``keys``), and their ``/queries``.

``_design_docs`` is ``_all_docs`` over the design documents' share of the ids, as CouchDB
answers it: the range is bounded to ``_design/…``, ``total_rows`` counts the design documents,
``offset`` still counts every document before the first row (at most ``total_rows``), and
``keys`` that are no design document's id are left out. A range is answered in pages
(``AllDocsPages``); ``/queries`` answers each of its queries whole, the request's own query
string giving their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..couch.errors import BadRequest
from ..couch.protocol import JSON_TYPE, encode_json
from . import queries
from .call import Call, MethodNotAllowed
from .pages import AllDocsPages
from .params import body_json, doc_options, flag, integer, json_value
from .reply import SERVER, Reply, json_reply

# The options whose values are JSON in a query string (the others are words or numbers).
JSON_OPTIONS = frozenset({"key", "keys", "startkey", "start_key", "endkey", "end_key"})


def all_docs(call: Call) -> Reply:
    """``/{db}/_all_docs`` and ``/{db}/_all_docs/queries``."""
    return _listing(call, design_only=False)


def design_docs(call: Call) -> Reply:
    """``/{db}/_design_docs`` and ``/{db}/_design_docs/queries``."""
    return _listing(call, design_only=True)


def _listing(call: Call, *, design_only: bool) -> Reply:
    if call.rest[1:] == ["queries"]:
        return _queries(call, design_only)
    if call.method not in ("GET", "POST"):
        raise MethodNotAllowed("GET,HEAD,POST")
    keys = None
    if "keys" in call.query:
        keys = json_value(call.query, "keys")
        if not isinstance(keys, list):
            raise BadRequest("bad_request", "`keys` parameter must be an array.")
    if call.method == "POST" and call.body:
        keys = body_json(call.body).get("keys", keys)
        if not isinstance(keys, list | None):
            raise BadRequest("bad_request", "`keys` body member must be an array.")
    options = _options(call.query, keys, design_only)
    update_seq = flag(call.query, "update_seq")
    if keys is None:
        pages = AllDocsPages(
            options,
            lambda read: call.store.read(call.db, read),
            call.store.database(call.db).signal,
            update_seq=update_seq,
        )
        headers = {"content-type": JSON_TYPE, "cache-control": "must-revalidate"}
        return Reply(200, {**headers, "server": SERVER}, stream=pages)
    return json_reply(200, call.store.read(call.db, lambda conn: _whole(conn, options, update_seq)))


def _queries(call: Call, design_only: bool) -> Reply:
    """``POST …/queries`` with ``{"queries": [{options}, …]}``: ``{"results": [answer, …]}``,
    read from one snapshot."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    asked = body_json(call.body).get("queries")
    if asked is None:
        raise BadRequest("bad_request", "POST body must include `queries` parameter.")
    if not isinstance(asked, list):
        raise BadRequest("bad_request", "`queries` member must be an array.")
    parsed = []
    for each in asked:
        if not isinstance(each, dict):
            raise BadRequest("bad_request", "Each query must be a JSON object")
        query = {**call.query, **_as_query_string(each)}
        keys = json_value(query, "keys") if "keys" in query else None
        if keys is not None and not isinstance(keys, list):
            raise BadRequest("query_parse_error", "`keys` must be an array of strings.")
        parsed.append((_options(query, keys, design_only), flag(query, "update_seq")))

    def read(conn: Any) -> list[dict[str, Any]]:
        return [_whole(conn, options, update_seq) for options, update_seq in parsed]

    return json_reply(200, {"results": call.store.read(call.db, read)})


def _as_query_string(options: Mapping[str, Any]) -> dict[str, str]:
    """A query object's options as a query string would give them, to be read alike."""
    given = {}
    for name, value in options.items():
        if name in JSON_OPTIONS:
            given[name] = encode_json(value).decode()
        elif isinstance(value, bool):
            given[name] = "true" if value else "false"
        else:
            given[name] = value if isinstance(value, str) else encode_json(value).decode()
    return given


def _options(query: Mapping[str, str], keys: list[Any] | None, design_only: bool) -> Any:
    """The ``queries.AllDocs`` a request's options ask for; CouchDB's 400s when malformed."""

    def bound(*names: str) -> Any:
        for name in names:
            if name in query:
                return json_value(query, name)
        return queries.UNBOUNDED

    start, end = bound("startkey", "start_key"), bound("endkey", "end_key")
    if "key" in query:
        start = end = json_value(query, "key")
    return queries.AllDocs(
        keys=keys,
        start=start,
        end=end,
        inclusive_end=flag(query, "inclusive_end", True),
        descending=flag(query, "descending"),
        skip=integer(query, "skip", 0) or 0,
        limit=integer(query, "limit"),
        include_docs=flag(query, "include_docs"),
        doc=doc_options(query),
        design_only=design_only,
    )


def _whole(conn: Any, options: queries.AllDocs, update_seq: bool) -> dict[str, Any]:
    """One answer read whole: of ``keys``, or of a range (``/queries``)."""
    if options.keys is not None:
        answer = queries.all_docs(conn, options)
    else:
        total, offset = queries.all_docs_head(conn, options)
        count = -1 if options.limit is None else options.limit  # SQLite: -1, no limit
        rows = queries.all_docs_rows(conn, options, queries.UNBOUNDED, count)
        answer = {"total_rows": total, "offset": offset, "rows": rows}
    if update_seq:
        answer["update_seq"] = queries.update_seq(conn)
    return answer
