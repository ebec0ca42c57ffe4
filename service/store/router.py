"""``Server``: the store answering CouchDB's HTTP requests, as a function from request to reply.

This is the seam between settee and its embedded backend: the client's in-process transport
(``service.store.transport``) hands it the very requests it would send a CouchDB, so the
client, the handlers, their relays and the hub work on the store unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, unquote

from ..couch.errors import HTTPError, NotFound
from . import (
    access,
    alldocs,
    bulk,
    changes,
    compaction,
    databases,
    design,
    documents,
    inline,
    mango,
    purge,
    replication,
    scheduling,
    session,
)
from .call import Call, Gone
from .reply import Reply, error_reply, json_reply
from .store import Store
from .users import UserCtx, user_doc_of

log = logging.getLogger("settee.store")

Endpoint = Callable[[Call], Reply]

SERVER_ROUTES: dict[str, Endpoint] = {
    "_all_dbs": databases.all_dbs,
    "_uuids": databases.uuids,
    "_session": session.session,
    "_active_tasks": databases.active_tasks,
    "_replicate": replication.replicate,
}
DB_ROUTES: dict[str, Endpoint] = {
    "_all_docs": alldocs.all_docs,
    "_design_docs": alldocs.design_docs,
    "_bulk_docs": bulk.bulk_docs,
    "_bulk_get": bulk.bulk_get,
    "_revs_diff": bulk.revs_diff,
    "_changes": changes.changes,
    "_ensure_full_commit": databases.ensure_full_commit,
    "_revs_limit": databases.revs_limit,
    "_security": databases.security,
    "_view_cleanup": design.cleanup,
    "_find": mango.find,
    "_explain": mango.explain,
    "_purge": purge.purge,
    "_purged_infos": purge.purged_infos,
    "_purged_infos_limit": purge.infos_limit,
}
# Who may ask for a server-wide route (anyone, for those not named).
SERVER_RIGHTS: dict[str, Callable[[UserCtx], None]] = {
    "_all_dbs": access.server_admin,
    "_active_tasks": access.server_admin,
    "_replicate": access.authenticated,
}
SYSTEM_DBS = ("_users", "_replicator", "_global_changes")
# The routes that also answer ``/queries`` below them: many queries in one request.
QUERIES = {"_all_docs", "_design_docs"}
# A document's GET is a few indexed reads unless it asks for these: many revisions, or
# attachments' content.
COSTLY_READ = ("open_revs=", "attachments=", "atts_since=")
QUICK_WRITE = 65536  # bytes of JSON at most in a write the event loop makes itself
JSON = "application/json"


def _queries(rest: list[str]) -> bool:
    return rest[0] in QUERIES and rest[1:] == ["queries"]


class Server:
    """Answers requests from the databases of one Store, for the users the requests' own
    credentials name (``local_admin``: a request without any acts as the server admin)."""

    def __init__(self, store: Store, *, local_admin: bool = True) -> None:
        self.store = store
        self.local_admin = local_admin

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """The reply to one request; never raises for anything the request did. (On the event
        loop, ``inline.Handoff``: the transport goes on with the request.)"""
        head = method == "HEAD"
        lowered = {k.lower(): v for k, v in headers.items()}
        what = f"{method} {target}"
        try:
            return self._answered(
                what, lambda: self._route("GET" if head else method, target, lowered, body)
            )
        except inline.Pending as pending:
            raise pending.then(lambda finish: self._answered(what, finish)) from None

    @staticmethod
    def _answered(what: str, answer: Callable[[], Reply]) -> Reply:
        """``answer()`` to the request ``what`` (its method and target), or the error reply
        of what it raised."""
        try:
            reply = answer()
        except HTTPError as exc:
            reply = error_reply(exc)
        except inline.Handoff:
            raise
        except Exception:
            log.exception("embedded store: %s failed", what)
            reply = json_reply(500, {"error": "unknown_error", "reason": "internal store error"})
        if what.startswith("HEAD "):
            reply.body, reply.stream = b"", None
        return reply

    @staticmethod
    def quick(method: str, target: str, headers: Mapping[str, str], size: int) -> bool:
        """Whether the request is answered in a few indexed reads and at most one write of a
        small JSON document (a document's GET, PUT or DELETE, a POST to a database): cheap
        enough for the event loop to run itself (see ``inline``). A design document's write
        is not: its views are compiled."""
        path, _, query = target.partition("?")
        segments = path.strip("/").split("/")
        if segments[0].startswith("_"):
            return False
        if len(segments) == 3:
            single = segments[1] in ("_design", "_local") and not segments[2].startswith("_")
        else:
            single = len(segments) == 2 and not segments[1].startswith("_")
        if method in ("GET", "HEAD"):
            return single and not any(name in query for name in COSTLY_READ)
        small_json = size <= QUICK_WRITE and headers.get("content-type", JSON).startswith(JSON)
        if method == "POST":
            return len(segments) == 1 and small_json
        return method in ("PUT", "DELETE") and single and segments[1] != "_design" and small_json

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        path, _, query_string = target.partition("?")  # "//db" is a path, not a host
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        segments = [unquote(s) for s in path.lstrip("/").split("/")] if path.strip("/") else []
        if segments and segments[-1] == "" and len(segments) <= 2:
            segments.pop()
        call = Call(self.store, method, "", [], query, headers, body, time.monotonic())
        call.user, fresh_cookie = self.store.users.authenticate(
            headers, lambda name: user_doc_of(self.store, name), local_admin=self.local_admin
        )
        if not fresh_cookie:
            return self._dispatch(call, segments)

        def with_cookie(answer: Callable[[], Reply]) -> Reply:
            reply = answer()
            reply.headers["set-cookie"] = fresh_cookie
            return reply

        try:
            return with_cookie(lambda: self._dispatch(call, segments))
        except inline.Pending as pending:
            raise pending.then(with_cookie) from None

    def _dispatch(self, call: Call, segments: list[str]) -> Reply:
        if not segments:
            return databases.welcome(call)
        name, rest = segments[0], segments[1:]
        method = call.method
        if name in SERVER_ROUTES and not rest:
            SERVER_RIGHTS.get(name, _anyone)(call.user)
            return SERVER_ROUTES[name](call)
        if name == "_scheduler":
            return scheduling.route(call, rest)
        if name.startswith("_") and name not in SYSTEM_DBS:
            access.server_admin(call.user)  # CouchDB's other server routes are its admins'
            raise NotFound("not_found", "Database does not exist.")
        call.db, call.rest = name, rest
        if not rest and method in ("PUT", "DELETE"):
            access.server_admin(call.user)
            return databases.database(call)
        self.store.database(name)
        if not call.user.is_admin:
            security = self.store.read(name, access.security_of)
            access.check(call.user, security, name, method, rest)
        if not rest:
            if method == "POST":
                return documents.new_document(call)
            return databases.database(call)
        first = rest[0]
        if first in DB_ROUTES and (len(rest) == 1 or _queries(rest)):
            return DB_ROUTES[first](call)
        if first == "_index":
            return mango.index(call)
        if first == "_compact" and len(rest) <= 2:
            return compaction.compact(call)
        if first == "_temp_view":
            raise Gone("gone", "Temporary views are not supported in CouchDB")
        if first in ("_design", "_local"):
            if len(rest) < 2:
                raise NotFound("not_found", "missing")
            doc_id, attachment = f"{first}/{rest[1]}", rest[2:]
            if first == "_design" and attachment and attachment[0].startswith("_"):
                return design.route(call, doc_id, attachment)
        else:
            doc_id, attachment = first, rest[1:]
        if attachment:
            return documents.attachment(call, doc_id, "/".join(attachment))
        return documents.document(call, doc_id)


def _anyone(user: UserCtx) -> None:
    """The right to ask for ``/_uuids`` or ``/_session``: everyone has it."""
