"""Couch (a server) and Database: corduroy's API, each method written once as an operation.

An operation is a generator that yields requests and returns a result (see ``runner``). The
``@operation`` decorator hands it to the object's runner, which decides the calling style: the
async runner returns an awaitable, the blocking runner (``service.couch.blocking``) the
result itself. Every method also takes ``callback=fn(data, status)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import mimetypes
import os
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, cast, overload
from urllib.parse import unquote, urlencode

from .changes import FeedState
from .cluster import Cluster
from .config import defaults, server_url
from .conflicts import (
    ConflictResolution,
    Flow,
    bulk_body,
    current_rev,
    fetch_current,
    save_bulk,
)
from .documents import Document, Headers, View
from .errors import Conflict, NotFound
from .protocol import (
    JSON_TYPE,
    Request,
    changes_request,
    db_path,
    design_path,
    doc_path,
    doc_segment,
    encode_json,
    encode_options,
    json_body,
    revisions_of,
    validate_db_name,
    validate_doc_id,
    view_path,
)
from .runner import AsyncRunner, CredentialedRunner
from .transport import EMBEDDED, Endpoint

JSON_HEADERS = {"Content-Type": JSON_TYPE}

# Options given in seconds, as corduroy does, that CouchDB takes in milliseconds.
MILLISECOND_OPTIONS = ("heartbeat", "timeout")


R = TypeVar("R")


class Blocking:
    """What the blocking face's classes are, for the type checker: their operations return
    results, where the async face's return futures (see ``Operation``)."""


class Operation(Protocol[R]):
    """The type of an ``@operation`` method: the generator it wraps (``__wrapped__``), and,
    bound, a call returning a future of ``R``, or ``R`` itself on a ``Blocking`` object.

    The arguments are not checked through it: every call also takes ``callback=``, which a
    ParamSpec cannot add.
    """

    __wrapped__: Callable[..., Flow[R]]

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Operation[R]: ...
    @overload
    def __get__(self, obj: Blocking, owner: type | None = None) -> Callable[..., R]: ...
    @overload
    def __get__(
        self, obj: object, owner: type | None = None
    ) -> Callable[..., asyncio.Future[R]]: ...


def operation(flow: Callable[..., Flow[R]]) -> Operation[R]:
    """Make a generator method a client call: run by the object's runner, with ``callback=``."""

    @functools.wraps(flow)
    def call(self: Any, *args: Any, callback: Callable | None = None, **kwargs: Any) -> Any:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        return self._runner.run(flow(self, *args, **kwargs), callback)

    return cast(Operation[R], call)  # a function binds as Operation says


@dataclass(frozen=True, slots=True)
class FunctionResult:
    """What a show or list function answered: its headers (read in any case) and its body
    (JSON decoded if JSON)."""

    headers: Mapping[str, str]
    body: Any


def _function_result(response: Any) -> FunctionResult:
    headers = Headers(response.headers)
    if headers.get("content-type", "").startswith(JSON_TYPE):
        # CouchDB labels a list function's output JSON unless the function says otherwise.
        with contextlib.suppress(ValueError):
            return FunctionResult(headers, response.json())
    return FunctionResult(headers, response.body)


def _json(method: str, path: str, value: Any, query: Mapping[str, str] | None = None) -> Request:
    body, headers = json_body(value)
    return Request(method, path, query or {}, headers, body)


def _seconds_to_ms(options: dict[str, Any]) -> dict[str, Any]:
    for name in MILLISECOND_OPTIONS:
        if isinstance(options.get(name), int | float) and not isinstance(options[name], bool):
            options[name] = int(options[name] * 1000)
    return options


def _split_db_url(url_or_name: str) -> tuple[str, str]:
    """``http://host:5984/db`` (or ``embedded:/dir/db``) → the server's URL and the
    database's name; a bare name is on the server that ``defaults`` names."""
    if not url_or_name.startswith(("http://", "https://", EMBEDDED)):
        return server_url(None), url_or_name
    server, _, name = url_or_name.rstrip("/").rpartition("/")
    return server, unquote(name)


class Couch:
    """A CouchDB server: databases, replication, configuration, statistics.

    ``Couch("http://user:secret@host:5984")`` or ``Couch(url, auth=("user", "secret"))``;
    credentials are sent, never shown. Without a URL, the server ``defaults`` names
    (``http://127.0.0.1:5984`` unless changed); a host name without a scheme is reached over
    http. ``timeout`` and ``max_connections`` default to ``defaults.http``'s. Pooled
    connections idle for ``idle_timeout`` seconds are closed rather than reused, before the
    server closes them (pouchdb-server does 6 s after its last answer). Close it with
    ``await couch.close()`` or use ``async with``.

    ``Couch("embedded:PATH")`` is the embedded store in directory ``PATH``, in this process.
    Without credentials it acts as the store's server admin, as a program that opens the
    files may; ``local_admin=False`` makes such requests anonymous (a gateway's, acting for
    its clients with theirs).

    ``Couch("http://n1:5984,http://n2:5984,http://n3:5984")`` is a cluster's nodes: each
    request goes to one that is up, and to another after a failure that allows it
    (``service.couch.cluster``); ``cluster=other.cluster`` shares another client's view of
    which nodes are up. The blocking face takes one URL.
    """

    runner_class: ClassVar[type] = AsyncRunner
    database_class: ClassVar[type[Database]]

    def __init__(
        self,
        url: str | None = None,
        auth: tuple[str, str] | None = None,
        full_commit: bool = True,
        *,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
        max_connections: int | None = None,
        idle_timeout: float | None = 4.0,
        local_admin: bool = True,
        cluster: Cluster | None = None,
    ) -> None:
        self.endpoint = Endpoint.parse(
            server_url(url),
            auth,
            timeout=defaults.http.timeout if timeout is None else timeout,
            connect_timeout=connect_timeout,
            max_connections=(
                defaults.http.max_clients if max_connections is None else max_connections
            ),
            idle_timeout=idle_timeout,
            local_admin=local_admin,
            **({"cluster": cluster} if cluster is not None else {}),
        )
        self.full_commit = full_commit
        self._runner = self.runner_class(self.endpoint)
        self._node_api: str | None = None

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def cluster(self) -> Cluster | None:
        """The nodes and their health, when the URL named several nodes of a cluster."""
        return self.endpoint.cluster

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url!r}>"

    def close(self) -> Any:
        return self._runner.close()

    async def __aenter__(self) -> Couch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def acting_for(self, credentials: Mapping[str, str]) -> Couch:
        """This server as someone else sees it: every request carries ``credentials`` (their
        ``Authorization``, ``Cookie``, proxy-auth headers), over this object's connections.

        Nothing is copied but a reference: a gateway makes one per client request. Closing
        it does nothing; close this one. Give credentials to a Couch that has none of its
        own, or an anonymous caller would act with this object's.
        """
        if not credentials:
            return self
        handle = copy.copy(self)
        handle._runner = CredentialedRunner(self._runner, credentials)
        return handle

    def relay(self, method: str, target: str, headers: Mapping[str, str], body: Any = None) -> Any:
        """Send a request the client has no operation for, exactly as given: ``target`` is
        the path and query string, already quoted. Resolves to the response whatever its
        status, with ``status``, ``headers`` and the body to be read (``read()``, ``b""`` at
        the end); ``close()`` it when done. ``body`` is bytes or an async iterable of bytes.
        """
        return self._runner.relay(Request(method, target, {}, headers, body))

    def __getitem__(self, name: str) -> Database:
        """A handle on database ``name``, without asking the server whether it exists."""
        return self.database_class(name, couch=self)

    @property
    def users(self) -> Database:
        """The ``_users`` system database."""
        return self["_users"]

    @property
    def replicator(self) -> Database:
        """The ``_replicator`` system database."""
        return self["_replicator"]

    @operation
    def all_dbs(self) -> Flow[list[str]]:
        """The names of the server's databases."""
        return (yield Request("GET", "/_all_dbs")).json()

    @operation
    def info(self) -> Flow[Document]:
        """The server's welcome document: its name, version and vendor."""
        return (yield Request("GET", "/")).json()

    @operation
    def version(self) -> Flow[str | None]:
        """The server's version string."""
        return (yield from Couch.info.__wrapped__(self)).get("version")

    @operation
    def create(self, name: str) -> Flow[Database]:
        """Create database ``name``; PreconditionFailed if it exists."""
        yield Request("PUT", db_path(name))
        return self[name]

    @operation
    def db(self, name: str, create_if_missing: bool = False) -> Flow[Database]:
        """The Database ``name``, after checking it exists (or creating it if asked to)."""
        path = db_path(name)
        try:
            yield Request("GET", path)
        except NotFound:
            if not create_if_missing:
                raise
            yield Request("PUT", path)
        return self[name]

    @operation
    def delete(self, name: str) -> Flow[Document]:
        """Delete database ``name``; NotFound if there is none."""
        return (yield Request("DELETE", db_path(name))).json()

    @operation
    def session(self) -> Flow[Document]:
        """Who the server takes this client for: ``{"ok", "userCtx": {"name", "roles"}}``."""
        return (yield Request("GET", "/_session")).json()

    @operation
    def tasks(self) -> Flow[list[Document]]:
        """The tasks the server is running (``_active_tasks``)."""
        return (yield Request("GET", "/_active_tasks")).json()

    @operation
    def uuids(self, count: int = 1) -> Flow[list[str]]:
        """``count`` fresh UUIDs from the server."""
        return (yield Request("GET", "/_uuids", {"count": str(int(count))})).json()["uuids"]

    def _node(self, section: str, name: str | None) -> Flow[str]:
        """The path of ``section`` (``_config``, ``_stats``) on this node.

        CouchDB 2+ serves them under ``/_node/_local/``; CouchDB 1 and pouchdb-server at the
        root. The first answer decides which, for the life of this object.
        """
        suffix = "".join("/" + part for part in name.split("/")) if name else ""
        if self._node_api is None:
            try:
                yield Request("GET", "/_node/_local/" + section)
                self._node_api = "/_node/_local/"
            except NotFound:
                self._node_api = "/"
        return self._node_api + section + suffix

    @operation
    def config(self, name: str | None = None, value: Any = None, delete: bool = False) -> Flow[Any]:
        """Read the server's configuration (or the part at ``name``, e.g. ``"httpd/port"``).

        With ``value``, set it (returns None); with ``delete=True``, remove it and return the
        value it had.
        """
        path = yield from self._node("_config", name)
        if delete:
            return (yield Request("DELETE", path)).json()
        if value is not None:
            text = value if isinstance(value, str) else encode_json(value).decode()
            yield _json("PUT", path, text)
            return None
        return (yield Request("GET", path)).json()

    @operation
    def stats(self, name: str | None = None) -> Flow[Document]:
        """Server statistics, or the ones at ``name`` (e.g. ``"couchdb/request_time"``)."""
        path = yield from self._node("_stats", name)
        return (yield Request("GET", path)).json()

    def _replication_source(self, db: str | Database) -> Any:
        if isinstance(db, str):
            if "://" in db or db.startswith(EMBEDDED):
                return db
            # A bare name is a database of this server, as CouchDB 1 read it; CouchDB 3 takes
            # only URLs, so it goes as one (with this client's credentials).
            db = self[db]
        if db.couch.endpoint.auth:
            auth = db.couch.endpoint.headers()["Authorization"]
            return {"url": db.url, "headers": {"Authorization": auth}}
        return db.url

    @operation
    def replicate(
        self, source: str | Database, target: str | Database, **options: Any
    ) -> Flow[Document]:
        """Replicate ``source`` to ``target`` (URLs, Databases or names of this server's).

        Options: ``continuous``, ``create_target``, ``doc_ids``, ``proxy``, ``cancel``. With
        ``_id``, the replication is a document in ``_replicator`` (cancel deletes it);
        without, it uses ``_replicate``.
        """
        spec = {
            "source": self._replication_source(source),
            "target": self._replication_source(target),
            **{k: v for k, v in options.items() if k != "_id"},
        }
        doc_id = options.get("_id")
        if doc_id is None:
            return (yield _json("POST", "/_replicate", spec)).json()
        path = doc_path("_replicator", doc_id)
        if spec.pop("cancel", False):
            row = (yield from fetch_current("_replicator", [doc_id], include_docs=False))[doc_id]
            return (yield Request("DELETE", path, {"rev": current_rev(row) or ""})).json()
        return (yield _json("PUT", path, spec)).json()


class Database:
    """One database: documents, attachments, views, changes, security.

    ``Database("http://host:5984/name")``, or ``Database("name")`` on the local server, or from
    a server: ``couch["name"]`` / ``await couch.db("name")``. An illegal name raises BadRequest
    here, before any request. ``close()`` closes the server's connections when the Database
    made its server, or when ``owns_couch=True`` hands it one to close.
    """

    couch_class: ClassVar[type[Couch]] = Couch

    def __init__(
        self,
        name: str,
        auth: tuple[str, str] | None = None,
        *,
        couch: Couch | None = None,
        owns_couch: bool = False,
    ) -> None:
        self._owns_couch = couch is None or owns_couch
        if couch is None:
            server, name = _split_db_url(name)
            couch = self.couch_class(server, auth)
        self.name = validate_db_name(name)
        self.couch = couch
        self._runner = couch._runner

    @property
    def url(self) -> str:
        """The database's URL (without credentials)."""
        return self.couch.url + db_path(self.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def close(self) -> Any:
        """Close the connections of a Database made from a URL (a server's own stay open)."""
        return self.couch.close() if self._owns_couch else None

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._owns_couch:
            await self.couch.close()

    # -- the database itself

    @operation
    def exists(self) -> Flow[bool]:
        """Whether the database exists on the server."""
        try:
            yield Request("HEAD", db_path(self.name))
        except NotFound:
            return False
        return True

    @operation
    def info(self, ddoc: str | None = None) -> Flow[Document]:
        """The database's info, or a design document's (``ddoc`` names it)."""
        path = doc_path(self.name, "_design/" + ddoc, "_info") if ddoc else db_path(self.name)
        return (yield Request("GET", path)).json()

    @operation
    def compact(self, ddoc: str | None = None) -> Flow[Document]:
        """Compact the database, or the index of design document ``ddoc``."""
        parts = ("_compact", ddoc) if ddoc else ("_compact",)
        return (yield _json("POST", db_path(self.name, *parts), {})).json()

    @operation
    def cleanup(self) -> Flow[Document]:
        """Remove index files no design document uses any more."""
        return (yield _json("POST", db_path(self.name, "_view_cleanup"), {})).json()

    @operation
    def commit(self) -> Flow[Document]:
        """Ask the server to commit what it holds in memory to disk."""
        return (yield _json("POST", db_path(self.name, "_ensure_full_commit"), {})).json()

    @operation
    def security(self, value: Mapping[str, Any] | None = None) -> Flow[Document]:
        """The ``_security`` object; with ``value``, replace it first."""
        path = db_path(self.name, "_security")
        if value is not None:
            yield _json("PUT", path, value)
        return (yield Request("GET", path)).json()

    # -- documents

    @operation
    def get(
        self, id_or_ids: str | list[str], **options: Any
    ) -> Flow[Document | list[Document | None]]:
        """A Document by id (NotFound if none), or a list of them by ids (None where missing).

        Options for one id: ``rev``, ``revs``, ``revs_info``, ``conflicts``, ``attachments``
        and CouchDB's others; for a list, the view options of ``_all_docs``.
        """
        if not isinstance(id_or_ids, list | tuple):
            path = doc_path(self.name, id_or_ids)
            return (yield Request("GET", path, encode_options(options))).json()
        ids = [validate_doc_id(doc_id) for doc_id in id_or_ids]
        view = yield from self._view("_all_docs", {**options, "include_docs": True, "keys": ids})
        return [row.doc for row in view]

    @operation
    def rev(self, id: str) -> Flow[str]:
        """The current rev of document ``id`` (NotFound if none), from a HEAD request.

        CouchDB's ETag is the quoted rev; a server whose ETag is something else
        (pouchdb-server's is a weak hash) costs a GET instead.
        """
        path = doc_path(self.name, id)
        etag = (yield Request("HEAD", path)).headers.get("etag", "")
        if len(etag) > 2 and etag[0] == etag[-1] == '"':
            return etag[1:-1]
        return (yield Request("GET", path)).json()["_rev"]

    @operation
    def bulk_get(self, docs: list[Mapping[str, Any]], **options: Any) -> Flow[list[Document]]:
        """Fetch many documents or revisions at once (``_bulk_get``).

        ``docs`` is a list of ``{"id": ..., "rev": ...}`` (rev optional). Returns CouchDB's
        ``results``: per id, a list of ``{"ok": doc}`` or ``{"error": {...}}``.
        """
        for doc in docs:
            validate_doc_id(doc.get("id"))
        path = db_path(self.name, "_bulk_get")
        response = yield _json("POST", path, {"docs": docs}, encode_options(options))
        return response.json()["results"]

    @operation
    def revs_diff(self, revs: Mapping[str, list[str]]) -> Flow[Document]:
        """Which of ``revs`` (id → rev strings) this database lacks (``_revs_diff``): per id
        lacking any, ``{"missing": [...]}`` and, where it has some, ``possible_ancestors``."""
        return (yield _json("POST", db_path(self.name, "_revs_diff"), dict(revs))).json()

    @operation
    def revisions(self, id: str, **options: Any) -> Flow[list[str]]:
        """The rev strings of document ``id``, newest first."""
        query = encode_options({**options, "revs": True})
        return revisions_of((yield Request("GET", doc_path(self.name, id), query)).json())

    @operation
    def save(
        self,
        doc_or_docs: Any = None,
        merge: Callable | None = None,
        force: bool = False,
        **options: Any,
    ) -> Flow[ConflictResolution]:
        """Create or update one document (a dict) or many (a list) and return a
        ConflictResolution.

        Saved dicts get their new ``_id`` and ``_rev``. One document that conflicts raises
        Conflict; in a list, conflicts are reported per document in ``.pending``. With
        ``merge=fn(local, server)`` conflicts are merged and written again; with
        ``force=True`` they are overwritten. ``batch="ok"`` lets the server defer the write
        (one document). ``all_or_nothing=True`` asks for an atomic bulk write: CouchDB 1.x
        did one; CouchDB 3 refuses it (417) and writes nothing, so every document is pending
        with its ``not_implemented`` reason; pouchdb-server ignores it.
        """
        settle = merge is not None or force
        if isinstance(doc_or_docs, list):
            resolved, pending = yield from save_bulk(self.name, doc_or_docs, options)
        else:
            resolved, pending = yield from self._save_one(doc_or_docs, options, settle=settle)
        result = ConflictResolution(self, resolved, pending)
        if pending and settle:
            yield from result._resolve(merge)
        return result

    def _save_one(self, doc: Any, options: Mapping[str, Any], *, settle: bool) -> Flow:
        """Save one document; a conflict raises unless it is to be settled (then pending)."""
        if not isinstance(doc, MutableMapping):  # it gets its _id and _rev
            raise TypeError(f"a document must be a dict, not {type(doc).__name__}")
        query = {"batch": options["batch"]} if options.get("batch") else {}
        body, headers = json_body(doc)
        if "_id" in doc:
            request = Request("PUT", doc_path(self.name, doc["_id"]), query, headers, body)
        else:
            request = Request("POST", db_path(self.name), query, headers, body)
        try:
            result = (yield request).json()
        except Conflict as exc:
            if not settle:
                raise
            return {}, {doc["_id"]: {"doc": doc, "error": exc.error, "reason": exc.reason}}
        doc["_id"] = result["id"]
        if "rev" in result:
            doc["_rev"] = result["rev"]
        return {result["id"]: doc}, {}

    @operation
    def bulk_docs(self, docs: list[Mapping[str, Any]], **options: Any) -> Flow[list[Document]]:
        """Write ``docs`` in one request and return CouchDB's answer as it is.

        That is one ``{"ok", "id", "rev"}`` or ``{"id", "error", "reason"}`` per document
        (only the failures with ``new_edits=False``). For relaying ``_bulk_docs``; ``save``
        is the friendlier call. Options: ``all_or_nothing``, ``new_edits``.
        """
        body = bulk_body(docs, options)
        request = Request("POST", db_path(self.name, "_bulk_docs"), {}, JSON_HEADERS, body)
        return (yield request).json()

    @operation
    def delete(self, doc: Mapping[str, Any]) -> Flow[Document]:
        """Delete the document ``doc`` (a dict with ``_id`` and ``_rev``)."""
        path = doc_path(self.name, doc["_id"])
        query = {"rev": doc["_rev"]} if doc.get("_rev") else {}
        return (yield Request("DELETE", path, query)).json()

    @operation
    def copy(
        self, source: str | Mapping[str, Any], dest: str | Mapping[str, Any]
    ) -> Flow[Document]:
        """Copy a document to ``dest`` (an id, or a dict with ``_id`` and ``_rev`` to overwrite).

        Returns ``{"id": ..., "rev": ...}`` of the copy; Conflict if ``dest`` exists and no
        current ``_rev`` was given. A server that answers only ``{"ok": true}``
        (pouchdb-server) costs one more request, for the copy's rev.
        """
        src_id, src_rev = (
            (source, None) if isinstance(source, str) else (source["_id"], source.get("_rev"))
        )
        dest_id = dest if isinstance(dest, str) else dest["_id"]
        destination = doc_segment(dest_id)
        if not isinstance(dest, str) and dest.get("_rev"):
            destination += "?" + urlencode({"rev": dest["_rev"]})
        query = {"rev": src_rev} if src_rev else {}
        request = Request("COPY", doc_path(self.name, src_id), query, {"Destination": destination})
        answer = (yield request).json()
        rev = answer.get("rev") or (yield from Database.rev.__wrapped__(self, dest_id))
        return Document(id=answer.get("id", dest_id), rev=rev)

    @operation
    def purge(self, docs: list[Mapping[str, Any]]) -> Flow[Document]:
        """Remove ``docs`` (dicts with ``_id`` and ``_rev``) and all trace of them."""
        revs: dict[str, list[str]] = {}
        for doc in docs:
            revs.setdefault(doc["_id"], []).append(doc["_rev"])
        return (yield _json("POST", db_path(self.name, "_purge"), revs)).json()

    # -- attachments

    @operation
    def get_attachment(
        self, id_or_doc: str | Mapping[str, Any], filename: str, rev: str | None = None
    ) -> Flow[bytes]:
        """The bytes of attachment ``filename`` of a document (an id or a dict): of its
        current revision, or of revision ``rev`` (a conflict's, an older one's)."""
        return (yield self._attachment_request(id_or_doc, filename, rev)).body

    def stream_attachment(
        self, id_or_doc: str | Mapping[str, Any], filename: str, rev: str | None = None
    ) -> Any:
        """Open an attachment (of revision ``rev``, if given) for reading as it arrives.

        Resolves to a body with ``headers`` (content type and length) and ``read()``, which
        gives the next chunk (``b""`` at the end); ``close()`` it when done.
        """
        return self._runner.open(self._attachment_request(id_or_doc, filename, rev))

    def _attachment_request(
        self, id_or_doc: str | Mapping[str, Any], filename: str, rev: str | None
    ) -> Request:
        doc_id = id_or_doc if isinstance(id_or_doc, str) else id_or_doc["_id"]
        query = {"rev": rev} if rev else {}
        return Request("GET", doc_path(self.name, doc_id, filename), query, {"Accept": "*/*"})

    @operation
    def put_attachment(
        self,
        doc: Any,
        content: bytes | str | Any,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> Flow[Document]:
        """Add or replace an attachment of ``doc`` (a dict with ``_id``; ``_rev`` if it exists).

        ``content`` is bytes, text, a file (which gives its own name) or, in the async face,
        an async iterable of bytes, sent as it is produced. The content type is guessed from
        the name when not given. ``doc["_rev"]`` is updated.
        """
        if hasattr(content, "read"):
            filename = filename or os.path.basename(getattr(content, "name", ""))
            content = content.read()
        if isinstance(content, str):
            content = content.encode()
        if not filename:
            raise ValueError("an attachment needs a filename")
        content_type = (
            content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
        query = {"rev": doc["_rev"]} if doc.get("_rev") else {}
        request = Request(
            "PUT",
            doc_path(self.name, doc["_id"], filename),
            query,
            {"Content-Type": content_type},
            content,
        )
        result = (yield request).json()
        doc["_rev"] = result["rev"]
        return result

    @operation
    def delete_attachment(self, doc: Any, filename: str) -> Flow[Document]:
        """Delete attachment ``filename`` of ``doc``; ``doc["_rev"]`` is updated."""
        path = doc_path(self.name, doc["_id"], filename)
        query = {"rev": doc["_rev"]} if doc.get("_rev") else {}
        result = (yield Request("DELETE", path, query)).json()
        doc["_rev"] = result["rev"]
        return result

    # -- views and design functions

    def _view_request(self, name: str, options: Mapping[str, Any]) -> Request:
        options = dict(options)
        keys = options.pop("keys", None)
        path = view_path(self.name, name)
        query = encode_options(options)
        if keys is None:
            return Request("GET", path, query)
        return _json("POST", path, {"keys": keys}, query)

    def _view(self, name: str, options: Mapping[str, Any]) -> Flow[View]:
        response = yield self._view_request(name, options)
        return View(response.json(), options)

    @operation
    def view(self, name: str, **options: Any) -> Flow[View]:
        """Query view ``name`` (``"ddoc/view"`` or ``"_all_docs"``) and return a View.

        Every CouchDB view option is a keyword: key, keys, startkey, endkey, startkey_docid,
        endkey_docid, inclusive_end, descending, limit, skip, include_docs, reduce, group,
        group_level, stale, update, update_seq. Keys are JSON values.
        """
        return (yield from self._view(name, options))

    def iterview(self, name: str, **options: Any) -> Any:
        """Iterate a view's rows as they arrive, holding at most one row at a time.

        For views too large to hold whole (the Couchbase SDK's ``streaming=True``): async
        iterator here, plain iterator in the blocking face. Takes view()'s options.
        """
        return self._runner.rows(self._view_request(name, options))

    def stream_view(self, name: str, **options: Any) -> Any:
        """Open a view's response for reading as it arrives, in CouchDB's own format.

        For relaying a view without holding it (the service does): resolves to a body with
        ``headers`` and ``read()`` (next chunk, ``b""`` at the end); ``close()`` it when done.
        Takes view()'s options.
        """
        return self._runner.open(self._view_request(name, options))

    @operation
    def query(self, map_src: str, reduce_src: str | None = None, **options: Any) -> Flow[View]:
        """Run a temporary view (``_temp_view``).

        CouchDB 2+ removed temporary views (3.4 answers 410 ``gone``); pouchdb-server
        still has them.
        """
        spec = {"language": "javascript", "map": map_src}
        if reduce_src:
            spec["reduce"] = reduce_src
        response = yield _json(
            "POST", db_path(self.name, "_temp_view"), spec, encode_options(options)
        )
        return View(response.json(), options)

    @operation
    def show(self, name: str, id: str | None = None, **options: Any) -> Flow[FunctionResult]:
        """Run show function ``name`` (``"ddoc/fn"``), on document ``id`` if given."""
        path = design_path(self.name, name, "_show")
        if id is not None:
            path += "/" + doc_segment(id)
        return _function_result(
            (yield Request("GET", path, encode_options(options), {"Accept": "*/*"}))
        )

    @operation
    def list(self, name: str, view: str, **options: Any) -> Flow[FunctionResult]:
        """Run list function ``name`` (``"ddoc/fn"``) over ``view`` (``"v"`` or ``"ddoc2/v"``)."""
        path = design_path(self.name, name, "_list") + "/" + view
        return _function_result(
            (yield Request("GET", path, encode_options(options), {"Accept": "*/*"}))
        )

    @operation
    def update(
        self,
        name: str,
        id: str | None = None,
        body: Mapping[str, Any] | str | None = None,
        **options: Any,
    ) -> Flow[FunctionResult]:
        """Call update handler ``name`` (``"ddoc/fn"``), on document ``id`` if given.

        A dict body is form-encoded, a string sent as is; other keywords go in the query string
        (strings as they are, booleans as true/false, lists and dicts as JSON).
        """
        path = design_path(self.name, name, "_update")
        method = "POST"
        if id is not None:
            method = "PUT"
            path += "/" + doc_segment(id)
        headers: dict[str, str] = {"Accept": "*/*"}
        data: bytes | None = None
        if isinstance(body, Mapping):
            data = urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = body.encode()
            headers["Content-Type"] = "text/plain"
        query = encode_options(options, json_options=frozenset())
        response = yield Request(method, path, query, headers, data)
        return _function_result(response)

    # -- changes and replication

    def changes(self, callback: Callable | None = None, **options: Any) -> Any:
        """The ``_changes`` feed.

        Without ``feed="continuous"``: one request, returning ``{"results": [...],
        "last_seq": ...}`` (``callback=fn(data, status)`` as everywhere). With it: a running
        ChangesFeed calling ``callback(seq, changes)`` as changes arrive, batched over
        ``latency`` seconds (default 1; 0 delivers each change on its own), reconnecting and
        resuming by itself until ``stop()``. ``heartbeat`` and ``timeout`` are in seconds.
        Other options (since, filter, include_docs, doc_ids, style, ...) are CouchDB's;
        ``selector`` (a Mango selector) is sent in a POST body with ``filter=_selector``.
        """
        if options.get("feed") != "continuous":
            return self._changes(callback=callback, **options)
        if callback is None:
            raise TypeError("a continuous feed needs callback=fn(seq, changes)")
        options.pop("feed")
        state = FeedState(
            db_path(self.name, "_changes"),
            options,
            since=options.pop("since", None),
            latency=options.pop("latency", 1),
            heartbeat=options.pop("heartbeat", 10),
            replays=self.couch.cluster is not None,
        )
        return self._runner.follow(state, callback)

    @operation
    def _changes(self, **options: Any) -> Flow[Document]:
        request = changes_request(db_path(self.name, "_changes"), _seconds_to_ms(options))
        return (yield request).json()

    def stream_changes(self, **options: Any) -> Any:
        """Open a normal ``_changes`` response for reading as it arrives, in CouchDB's own
        format: for relaying a feed of any length without holding it (the service does).
        Resolves to a body with ``headers`` and ``read()`` (next chunk, ``b""`` at the end);
        ``close()`` it when done. Takes changes()'s options but ``feed``."""
        path = db_path(self.name, "_changes")
        return self._runner.open(changes_request(path, _seconds_to_ms(options)))

    def pull(self, source: str | Database, callback: Callable | None = None, **options: Any) -> Any:
        """Replicate ``source`` into this database (options as Couch.replicate)."""
        return self.couch.replicate(source, self, callback=callback, **options)

    def push(self, target: str | Database, callback: Callable | None = None, **options: Any) -> Any:
        """Replicate this database to ``target`` (options as Couch.replicate)."""
        return self.couch.replicate(self, target, callback=callback, **options)


Couch.database_class = Database
