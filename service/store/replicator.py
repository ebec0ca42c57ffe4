"""The ``_replicator`` database's rules: what a replication document must be, whose it is,
and what of it another user may read, as CouchDB 3.4.3 checks them.

A write (of anything but a design or ``_local`` document) gets the writer's name as its
``owner`` when it names none; naming another user is refused to all but the server admins
(``Can't update replication documents from other users.``). Then the document must describe
a replication (unless deleted or marked ``failed``): both ends http(s) URLs, options of the
right types; CouchDB's refusal is a 403 whose reason is its parser's own words. A user who
is neither a server admin nor the owner reads the document with the credentials taken out of
its ends (a URL's ``user:password@``, an end object's ``headers`` and ``auth``) and a rev
made for what is shown, as CouchDB's ``after_doc_read``, whatever the read (the document,
``open_revs``, ``_bulk_get``, ``_find``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from typing import Any

from ..couch.errors import Forbidden
from ..couch.protocol import encode_json
from . import revs, tree
from .users import UserCtx

REPLICATOR_DB = "_replicator"
OWNER = "owner"
MISSING = "Missing replicator database"
# The options CouchDB's parser wants as booleans.
BOOLEANS = ("continuous", "create_target")
CREDENTIALS_IN_URL = re.compile(r"^(https?://)[^:/@]+:[^@]+@(.*)$", re.DOTALL)


def _bad_request(text: str) -> Forbidden:
    """CouchDB's words for a refused option: an Erlang throw, printed."""
    return Forbidden("forbidden", f'{{throw,{{bad_request,<<"{text}">>}}}}')


def admitted(doc: dict[str, Any], user: UserCtx) -> dict[str, Any]:
    """``doc`` as it is written to ``_replicator`` by ``user`` (its owner filled in), or
    Forbidden with CouchDB's reason."""
    if OWNER not in doc:
        doc = {**doc, OWNER: user.name}
    elif doc[OWNER] != user.name and not user.is_admin:
        raise Forbidden("forbidden", "Can't update replication documents from other users.")
    if not doc.get("_deleted") and doc.get("_replication_state") != "failed":
        check(doc)
    return doc


def check(doc: Mapping[str, Any]) -> None:
    """Whether ``doc`` describes a replication CouchDB would run: Forbidden if not."""
    source, target = doc.get("source"), doc.get("target")
    if source is None or target is None:
        raise Forbidden("forbidden", MISSING)
    for end in (source, target):
        _check_end(end)
    for name in BOOLEANS:
        if name in doc and not isinstance(doc[name], bool):
            raise _bad_request(f"parameter `{name}` must be a boolean")
    if "doc_ids" in doc and not isinstance(doc["doc_ids"], list):
        raise _bad_request("parameter `doc_ids` must be an array")
    if "filter" in doc and not isinstance(doc["filter"], str):
        raise Forbidden("forbidden", "{error,badarg}")
    if "selector" in doc and not isinstance(doc["selector"], dict):
        raise _bad_request("parameter `selector` must be a JSON object")
    if "query_params" in doc and not isinstance(doc["query_params"], dict):
        raise _bad_request("parameter `query_params` must be an object")
    if sum(name in doc for name in ("doc_ids", "filter", "selector")) > 1:
        reason = '{throw,{bad_request,"`doc_ids`,`filter`,`selector` are mutually exclusive"}}'
        raise Forbidden("forbidden", reason)


def _check_end(end: Any) -> None:
    if isinstance(end, Mapping):
        url = end.get("url")
        if not isinstance(url, str) or not _is_http(url):
            raise Forbidden("forbidden", "endpoint has an invalid url")
        return
    if not isinstance(end, str):
        raise Forbidden("forbidden", "{error,function_clause}")
    if not _is_http(end):
        raise Forbidden("forbidden", "local_endpoints_not_supported")


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def readable(
    user: UserCtx, db: str, conn: sqlite3.Connection, doc: dict[str, Any]
) -> dict[str, Any]:
    """``doc``, read from database ``db``, as ``user`` may see it: a ``_replicator``
    document of someone else's without its credentials, under a rev of its own."""
    if db != REPLICATOR_DB or not _hidden_from(user, doc):
        return doc
    found = tree.one(conn, doc["_id"], doc["_rev"])
    return _shown(doc, found.parent if found else None)


def readable_rows(
    user: UserCtx, db: str, conn: sqlite3.Connection, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``open_revs``' and ``_bulk_get``'s rows (``{"ok": doc}`` or else), each as ``user``
    may see it."""
    if db != REPLICATOR_DB:
        return rows
    return [{"ok": readable(user, db, conn, row["ok"])} if "ok" in row else row for row in rows]


def _hidden_from(user: UserCtx, doc: Mapping[str, Any]) -> bool:
    return not (
        str(doc.get("_id", "")).startswith("_design/")
        or user.is_admin
        or doc.get(OWNER) == user.name
    )


def _shown(doc: dict[str, Any], parent: str | None) -> dict[str, Any]:
    shown = dict(doc)
    for role in ("source", "target"):
        if role in shown:
            shown[role] = stripped(shown[role])
    body = {k: v for k, v in shown.items() if not k.startswith("_") or k == "_attachments"}
    shown["_rev"] = revs.new_rev(parent, bool(doc.get("_deleted")), encode_json(body))
    if isinstance(shown.get("_revisions"), dict):
        ids = [shown["_rev"].partition("-")[2], *shown["_revisions"]["ids"][1:]]
        shown["_revisions"] = {**shown["_revisions"], "ids": ids}
    return shown


def stripped(end: Any) -> Any:
    """An end without its credentials."""
    if isinstance(end, str):
        return CREDENTIALS_IN_URL.sub(r"\1\2", end)
    if isinstance(end, Mapping):
        return {k: v for k, v in end.items() if k not in ("headers", "auth")}
    return end
