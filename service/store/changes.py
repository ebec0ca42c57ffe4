"""``/{db}/_changes``: every feed as a ``Feed`` read in steps, but a descending one, answered
whole."""

from __future__ import annotations

from typing import Any

from ..couch.errors import BadRequest
from . import filters, queries
from .call import Call, MethodNotAllowed
from .feeds import Feed
from .params import body_json, doc_options, flag, integer, json_value
from .reply import SERVER, Reply, json_reply

FEEDS = ("normal", "continuous", "live", "longpoll", "eventsource")
DEFAULT_TIMEOUT = 60.0  # seconds, as CouchDB's default for a feed without a heartbeat


def changes(call: Call) -> Reply:
    if call.method not in ("GET", "POST"):
        raise MethodNotAllowed("GET,POST,HEAD")
    query = call.query
    kind = query.get("feed", "normal")
    if kind not in FEEDS:
        raise BadRequest(
            "bad_request",
            "Supported `feed` types: normal, continuous, live, longpoll, eventsource",
        )
    kind = "continuous" if kind == "live" else kind
    request = _read(call, query)
    if kind == "normal" and request.descending:
        return _descending(call, request)
    heartbeat_ms = _heartbeat(query)
    timeout_ms = integer(query, "timeout")
    timeout = timeout_ms / 1000 if timeout_ms is not None else None
    if timeout is None and heartbeat_ms is None and kind != "normal":
        timeout = DEFAULT_TIMEOUT
    feed = Feed(
        kind,
        request,
        lambda query: call.store.read(call.db, query),
        call.store.database(call.db).signal,
        heartbeat=heartbeat_ms / 1000 if heartbeat_ms else None,
        timeout=timeout,
        now=call.now,
    )
    content_type = "text/event-stream" if kind == "eventsource" else "application/json"
    headers = {"content-type": content_type, "cache-control": "must-revalidate", "server": SERVER}
    return Reply(200, headers, stream=feed)


def _heartbeat(query: Any) -> int | None:
    if query.get("heartbeat") == "true":
        return 60_000
    return integer(query, "heartbeat")


def _read(call: Call, query: Any) -> queries.Changes:
    """The options of the read, ``since=now`` made the current seq."""
    filter_name = query.get("filter")
    doc_ids = None
    keep = None
    if filter_name == "_doc_ids":
        ids = json_value(query, "doc_ids") if "doc_ids" in query else None
        if call.method == "POST" and call.body:
            ids = body_json(call.body).get("doc_ids", ids)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadRequest("bad_request", "`doc_ids` filter parameter is not a list of doc ids.")
        doc_ids = frozenset(ids)
    elif filter_name == "_selector":
        selector = json_value(query, "selector") if "selector" in query else None
        if call.method == "POST" and call.body:
            selector = body_json(call.body).get("selector", selector)
        keep = filters.keep_selector(selector)
    elif filter_name not in (None, "_design"):
        keep = filters.keep_for(call, filter_name, query)
    since_text = query.get("since", "0")
    if since_text == "now":
        since = call.store.read(call.db, queries.update_seq)
    else:
        since = json_value(query, "since") if since_text.startswith('"') else since_text
        try:
            since = int(since)
        except (TypeError, ValueError):
            raise BadRequest(
                "bad_request", "Malformed sequence supplied in 'since' parameter."
            ) from None
    style = query.get("style", "main_only")
    if style not in ("main_only", "all_docs"):
        raise BadRequest("bad_request", "Supported `style` values: main_only, all_docs")
    return queries.Changes(
        since=since,
        limit=integer(query, "limit"),
        descending=flag(query, "descending"),
        doc_ids=doc_ids,
        design_only=filter_name == "_design",
        all_leaves=style == "all_docs",
        include_docs=flag(query, "include_docs"),
        doc=doc_options(query),
        keep=keep,
    )


def _descending(call: Call, request: queries.Changes) -> Reply:
    def answer(conn: Any) -> dict[str, Any]:
        rows = queries.changes(conn, request)
        if request.keep is not None:
            rows = [row for row, ok in zip(rows, request.keep(conn, rows), strict=True) if ok]
        return {"results": rows, "last_seq": rows[-1]["seq"] if rows else 0, "pending": 0}

    return json_reply(200, call.store.read(call.db, answer))
