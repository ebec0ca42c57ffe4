"""``/_scheduler/jobs`` and ``/_scheduler/docs``: the store's replications, as CouchDB 3.4.3
lists them (its server admins only).

``jobs`` are the replications running now: the ``_replicator`` documents' (from the
``scheduler``) and the continuous ``_replicate`` ones of this process, by id. ``docs`` are
the ``_replicator`` documents with their state (``running``, ``crashing``, ``completed``,
``failed``…), by id; ``/_scheduler/docs/_replicator/{docid}`` is one of them. Lists take
``limit``, ``skip`` and, for ``docs``, ``states`` (applied before ``skip``); ``total_rows``
counts them all, whatever the ``states``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..couch.errors import BadRequest, NotFound
from . import access
from .call import Call, MethodNotAllowed
from .replicator import REPLICATOR_DB
from .reply import Reply, json_reply
from .scheduler import job_row

STATES = ("initializing", "error", "running", "pending", "crashing", "completed", "failed")


def route(call: Call, rest: list[str]) -> Reply:
    access.server_admin(call.user)
    if call.method != "GET":
        raise MethodNotAllowed("GET,HEAD")
    kind, below = (rest[0], rest[1:]) if rest else ("", [])
    if kind == "jobs" and len(below) <= 1:
        jobs = sorted(_jobs(call), key=lambda row: row["id"])
        if below:
            return json_reply(200, _one(jobs, "id", below[0]))
        return _listing(call.query, "jobs", jobs)
    if kind == "docs" and len(below) <= 2:
        if below and below[0] != REPLICATOR_DB:
            raise BadRequest("bad_request", "Invalid path")
        docs = call.store.scheduler.docs()
        if len(below) == 2:
            return json_reply(200, _one(docs, "doc_id", below[1]))
        wanted = _states(call.query)
        return _listing(call.query, "docs", docs, lambda row: row["state"] in wanted)
    return json_reply(404, {"error": "not found"})  # CouchDB's very words


def _jobs(call: Call) -> list[dict[str, Any]]:
    own = [job_row(job) for job in call.store.replications.running()]
    return call.store.scheduler.jobs() + own


def _one(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    for row in rows:
        if row[key] == value:
            return row
    raise NotFound("not_found", "missing")


def _listing(
    query: Mapping[str, str], name: str, rows: list[dict[str, Any]], keep: Any = None
) -> Reply:
    limit, skip = _count(query, "limit"), _count(query, "skip") or 0
    chosen = [row for row in rows if keep is None or keep(row)]
    page = chosen[skip:] if limit is None else chosen[skip : skip + limit]
    offset = min(skip, len(rows))  # as CouchDB's: never past the end
    return json_reply(200, {"total_rows": len(rows), "offset": offset, name: page})


def _count(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        reason = f"Invalid value for integer: {json.dumps(value)}"
        raise BadRequest("query_parse_error", reason) from None
    if number < 0:
        reason = f"Invalid value for positive integer: {json.dumps(value)}"
        raise BadRequest("query_parse_error", reason)
    return number


def _states(query: Mapping[str, str]) -> set[str]:
    value = query.get("states")
    if value is None:
        return set(STATES)
    wanted = {state.strip() for state in value.split(",")}
    if not wanted <= set(STATES):
        reason = f"States must be one or more of [{','.join(STATES)}]"
        raise BadRequest("query_parse_error", reason)
    return wanted
