"""Runs plans (see ``ops``) for one key or many, as a client flow: read, plan, write, and plan
again what lost a race.

One round is one read (a document ``GET`` for one key; ``_all_docs`` with ``include_docs``
and the keys for several) and, if anything is to be written, one ``_bulk_docs``, whatever the
number of keys. A write that conflicts (someone wrote the key between our read and our write)
is read and planned again, so that ``incr`` and ``set`` lose no update and a cas or a lock is
judged on the key's current state; after ``MAX_ROUNDS`` such losses the key fails with
TemporaryFailError.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from service.couch.client import Database
from service.couch.conflicts import Flow, fetch_current
from service.couch.errors import NotFound, exception_for
from service.couch.protocol import Request, doc_path

from .errors import KVError, TemporaryFailError
from .ops import Entry, Plan, Write
from .results import Result

MAX_ROUNDS = 1000
Outcome = Result | Exception

# CouchDB's per-document errors in a _bulk_docs answer, as the status a single write has.
_STATUS = {"forbidden": 403, "unauthorized": 401, "bad_request": 400, "conflict": 409}


def read(db: Database, keys: list[str]) -> Flow[dict[str, Entry | None]]:
    """The current documents of ``keys`` (None where missing or deleted), in one request."""
    if len(keys) == 1:
        try:
            doc = (yield Request("GET", doc_path(db.name, keys[0]))).json()
        except NotFound:
            return {keys[0]: None}
        return {keys[0]: Entry(doc)}
    rows = yield from fetch_current(db.name, keys, include_docs=True)
    return {key: Entry(row["doc"]) if row.get("doc") else None for key, row in rows.items()}


def run(db: Database, plans: Mapping[str, Plan]) -> Flow[dict[str, Outcome]]:
    """Each key's outcome: its Result, or the exception it failed with."""
    outcomes: dict[str, Outcome] = {}
    pending = dict(plans)
    for _ in range(MAX_ROUNDS):
        entries = yield from read(db, list(pending))
        now = time.time()
        writes: dict[str, Write] = {}
        for key, plan in pending.items():
            step = plan(key, entries.get(key), now)
            if isinstance(step, Write):
                writes[key] = step
            else:
                outcomes[key] = step
        if not writes:
            return outcomes
        docs = [write.doc for write in writes.values()]
        answers = yield from Database.bulk_docs.__wrapped__(db, docs)
        pending = {}
        for (key, write), answer in _by_key(writes, answers):
            if "error" not in answer:
                outcomes[key] = write.result(answer["rev"])
            elif answer["error"] == "conflict":
                pending[key] = plans[key]
            else:
                outcomes[key] = _error(answer)
        if not pending:
            return outcomes
    for key in pending:
        outcomes[key] = TemporaryFailError(f"lost {MAX_ROUNDS} races to other writers", key)
    return outcomes


def _by_key(writes: dict[str, Write], answers: list[Any]) -> Any:
    """Each write with its answer. CouchDB answers in the documents' order; pouchdb-server
    puts those validate_doc_update refused first: answers go by id, each key written once."""
    by_id = {answer.get("id"): answer for answer in answers}
    if set(by_id) != set(writes):
        return zip(writes.items(), answers, strict=True)
    return [((key, write), by_id[key]) for key, write in writes.items()]


def _error(answer: Mapping[str, Any]) -> Exception:
    error = str(answer.get("error"))
    cls = exception_for(_STATUS.get(error, 500))
    return cls(error, str(answer.get("reason", "")), status=_STATUS.get(error))


def failed(key: str, error: Exception) -> Result:
    """The failed Result standing for ``error`` in a quiet or multi answer."""
    if isinstance(error, KVError):
        return error.result
    return Result(key, success=False, rc=KVError.rc)
