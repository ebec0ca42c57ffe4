"""An editing session: documents fetched once and cached, edits tracked, written in one request.

    with Session("var/notes") as S:
        S["todo"]["items"].append("milk")       # tracked: no call needed
        new_id = S.create({"kind": "note"})     # written at the flush, id known now
        del S["old-note"]
    # a clean exit flushes: one _bulk_docs request for all three changes

``Session(target)`` takes what the seed APIs take (``service.couch.targets``). On a blocking
database (the face a URL or a path gets) ``S[id]`` fetches; on an async Database the session
is async: ``await S.fetch(id)`` fetches, ``S[id]`` reads what is already in the session, and
``await S.flush()`` (or ``async with``) writes.

Edits are found by comparison, not by proxies: each document's JSON is kept as the server
has it and compared with the document at the flush. A proxy only sees changes made through
it; a comparison also sees ``doc["tags"].sort()``, a nested list changed through another
name, ``doc.update(...)``, and the caller keeps plain dicts that ``json``, ``copy`` and
``isinstance`` treat as dicts. Its cost is one more JSON encoding of each document in the
session per flush.

A flush is one ``_bulk_docs`` request, then one request per attachment added (with each
document's new rev). CouchDB writes each document or refuses it on its own; the refused
ones stay pending in the session, and ``flush()`` raises ``FlushError`` listing them by id
after the others are written, so that a refusal is never silent, not even at the end of a
``with`` block. Exceptions (beside the client's own, ``service.couch.errors``)::

    CouchError
     +-- SessionError        a session used wrongly (a flush under way, hooks looping)
     |    +-- NotFetched     async face: the document has not been fetched (also a LookupError)
     +-- FlushError          some documents were refused; ``.result`` says which and why
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import mimetypes
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, cast

import ujson

from .couch import blocking, client
from .couch.client import Database, operation
from .couch.conflicts import Flow, save_bulk
from .couch.errors import BadRequest, Conflict, CouchError, HTTPError, NotFound
from .couch.protocol import encode_json, validate_doc_id
from .couch.targets import Target, async_database, blocking_database

__all__ = ["FlushError", "FlushResult", "Hook", "NotFetched", "Session", "SessionError"]

Doc = MutableMapping[str, Any]
Hook = Callable[["Session", Doc], Any]
"""``hook(session, doc)``: may edit, create or delete documents of ``session``."""

HOOK_ROUNDS = 100
"""How many rounds of hooks a flush runs before it takes them for a loop."""


class SessionError(CouchError):
    """A session was used in a way it cannot serve."""


class NotFetched(SessionError, LookupError):
    """Async face: the document is not in the session; ``await S.fetch(id)`` it first."""


@dataclass
class FlushResult:
    """What a flush did: ``written`` maps id → its new rev; ``refused`` maps id →
    ``{"error", "reason"}`` (with ``"attachment": name`` when an upload was refused)."""

    written: dict[str, str] = field(default_factory=dict)
    refused: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def conflicts(self) -> dict[str, dict[str, str]]:
        """The refusals that are conflicts: someone else wrote the document first."""
        return {i: why for i, why in self.refused.items() if why["error"] == "conflict"}


class FlushError(CouchError):
    """Some documents were refused (the others were written): ``result`` is the FlushResult.

    The refused documents keep their changes in the session: ``discard(id)`` one and fetch
    it again to redo an edit over the server's copy, then flush again.
    """

    def __init__(self, result: FlushResult) -> None:
        self.result = result
        super().__init__(result)

    def __str__(self) -> str:
        refused = ", ".join(f"{i} ({why['error']})" for i, why in self.result.refused.items())
        return f"{len(self.result.written)} written, refused: {refused}"


def _content(doc: Mapping[str, Any]) -> bytes:
    """A document's JSON without its ``_rev``: what a flush compares to find an edit."""
    return encode_json({k: v for k, v in doc.items() if k != "_rev"})


@dataclass(slots=True)
class _Entry:
    """A document in the session: the caller's dict, and what the server has of it."""

    doc: Doc
    stored: bytes | None  # _content() as the server has it; None: not written yet
    deleted: bool = False
    attachments: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def change(self, doc_id: str) -> tuple[str | None, bytes]:
        """``("create" | "change" | "delete" | None, content)``; BadRequest, naming the
        document, for content that is not JSON or an ``_id`` changed."""
        if self.deleted:
            return "delete", b""
        if self.doc.get("_id") != doc_id:
            raise BadRequest("bad_request", f"document {doc_id!r} had its _id changed")
        try:
            content = _content(self.doc)
        except BadRequest as exc:
            raise BadRequest("bad_request", f"document {doc_id!r}: {exc.reason}") from exc
        if self.stored is None:
            return "create", content
        return ("change" if content != self.stored else None), content


def _stub(content: bytes, content_type: str, rev: str) -> dict[str, Any]:
    """The ``_attachments`` entry the server now holds for an uploaded attachment, so that
    the document's next write keeps it (a write without it would remove it)."""
    digest = base64.b64encode(hashlib.md5(content).digest()).decode()
    return {
        "content_type": content_type,
        "digest": "md5-" + digest,
        "length": len(content),
        "revpos": int(rev.split("-", 1)[0]),
        "stub": True,
    }


def _bytes(content: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(content, str):
        return content.encode()
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    raise TypeError(f"attachment content must be bytes or text, not {type(content).__name__}")


class Session:
    """Documents of one database, fetched once, edited in place, written by ``flush()``.

    ``on_create``, ``on_change`` and ``on_delete`` are hooks ``fn(session, doc)`` that a flush
    calls for each document it is about to create, change or delete; what they do to the
    session goes into the same request. A hook runs again on a document that changes after
    it ran; past ``HOOK_ROUNDS`` rounds the flush raises SessionError and writes nothing. On
    the async face a hook may be ``async def``.

    ``asynchronous`` picks the face: by default an async Database's, blocking otherwise.
    A database the session opens itself (from a URL or a path) is closed by ``close()``.
    """

    def __init__(
        self,
        target: Target,
        *,
        on_create: Hook | None = None,
        on_change: Hook | None = None,
        on_delete: Hook | None = None,
        asynchronous: bool | None = None,
    ) -> None:
        hooks = {"create": on_create, "change": on_change, "delete": on_delete}
        for kind, hook in hooks.items():
            if hook is not None and not callable(hook):
                raise TypeError(f"on_{kind} must be callable, not {hook!r}")
        if asynchronous is None:
            asynchronous = isinstance(target, client.Database) and not isinstance(
                target, blocking.Database
            )
        self.asynchronous = asynchronous
        self.db: Database = async_database(target) if asynchronous else blocking_database(target)
        self._owns_db = self.db is not target
        self._hooks = {kind: hook for kind, hook in hooks.items() if hook is not None}
        self._entries: dict[str, _Entry] = {}
        self._flushing = False

    @property
    def _runner(self) -> Any:  # what @operation runs this session's flows with
        return self.db._runner

    def __repr__(self) -> str:
        face = "async " if self.asynchronous else ""
        return f"<{face}Session on {self.db.name!r}: {len(self._entries)} documents>"

    # -- reading

    @operation
    def fetch(self, id_or_ids: str | list[str]) -> Flow[Any]:
        """The document ``id`` (NotFound if none), or documents by a list of ids (None where
        missing), fetched only if not in the session already (a list in one request).

        A document deleted in the session is missing here too.
        """
        if not isinstance(id_or_ids, list | tuple):
            doc_id = validate_doc_id(id_or_ids)
            if doc_id not in self._entries:
                found = yield from Database.get.__wrapped__(self.db, doc_id)
                self._keep(cast(Doc, found))  # one id: one document
            return self._found(doc_id)
        ids = [validate_doc_id(doc_id) for doc_id in id_or_ids]
        wanted = [doc_id for doc_id in dict.fromkeys(ids) if doc_id not in self._entries]
        if wanted:
            for doc in (yield from Database.get.__wrapped__(self.db, wanted)):
                if doc is not None:
                    self._keep(doc)
        return [self._live(doc_id) if doc_id in self._entries else None for doc_id in ids]

    def _keep(self, doc: Doc) -> None:
        # setdefault: a fetch that overlapped another of the same id keeps the first's dict.
        self._entries.setdefault(doc["_id"], _Entry(doc, _content(doc)))

    def _live(self, doc_id: str) -> Doc | None:
        """The document in the session, None if it was deleted in it."""
        entry = self._entries[doc_id]
        return None if entry.deleted else entry.doc

    def _found(self, doc_id: str) -> Doc:
        """The document in the session; NotFound if it was deleted in it."""
        doc = self._live(doc_id)
        if doc is None:
            raise NotFound("not_found", "deleted")
        return doc

    def __getitem__(self, doc_id: str) -> Doc:
        """The document ``doc_id``: fetched once (blocking face) or already fetched (async
        face, else NotFetched). NotFound, a KeyError, if it is missing or deleted."""
        if not self.asynchronous:
            doc: Doc = self.fetch(doc_id)  # type: ignore[assignment]  # the blocking face's
            return doc
        if validate_doc_id(doc_id) not in self._entries:
            raise NotFetched(f"{doc_id!r} has not been fetched: await session.fetch() it")
        return self._found(doc_id)

    def get(self, doc_id: str, default: Any = None) -> Any:
        """``self[doc_id]``, or ``default`` if it is missing or deleted."""
        try:
            return self[doc_id]
        except NotFound:
            return default

    def __contains__(self, doc_id: object) -> bool:
        return self.get(doc_id) is not None  # type: ignore[arg-type]

    # -- changing

    def create(self, doc: Doc) -> str:
        """Add a new document (a dict, kept as given) and return its id: its ``_id``, or a
        generated one set in it. An id deleted in the session is written over."""
        if not isinstance(doc, MutableMapping):
            raise TypeError(f"a document must be a dict, not {type(doc).__name__}")
        if "_id" not in doc:
            doc["_id"] = uuid.uuid4().hex
        doc_id = validate_doc_id(doc["_id"])
        self._put(doc_id, doc, create=True)
        return doc_id

    def __setitem__(self, doc_id: str, doc: Doc) -> None:
        """Make ``doc`` the whole content of ``doc_id``: over the rev the session has of it,
        or as a new document (a conflict at the flush if the server has one)."""
        if not isinstance(doc, MutableMapping):
            raise TypeError(f"a document must be a dict, not {type(doc).__name__}")
        if doc.setdefault("_id", validate_doc_id(doc_id)) != doc_id:
            raise BadRequest("bad_request", f"_id {doc['_id']!r} set as {doc_id!r}")
        self._put(doc_id, doc, create=False)

    def _put(self, doc_id: str, doc: Doc, *, create: bool) -> None:
        entry = self._entries.get(doc_id)
        if entry is None:
            self._entries[doc_id] = _Entry(doc, None)
            return
        if create and not entry.deleted:
            raise Conflict("conflict", f"{doc_id!r} is in the session already")
        if "_rev" in entry.doc:
            doc["_rev"] = entry.doc["_rev"]
        entry.doc, entry.deleted = doc, False

    def __delitem__(self, doc_id: str) -> None:
        """Delete ``doc_id`` at the flush (fetched first on the blocking face)."""
        self[doc_id]  # NotFound / NotFetched as for reading
        entry = self._entries[doc_id]
        if entry.stored is None:
            del self._entries[doc_id]  # never written: nothing to delete
        else:
            entry.deleted = True
            entry.attachments.clear()

    def put_attachment(
        self,
        doc_id: str,
        name: str,
        content: bytes | str,
        content_type: str | None = None,
    ) -> None:
        """Add (or replace) attachment ``name`` of ``doc_id``, uploaded after the flush's
        bulk request with the document's new rev. The content type is guessed from the name
        when not given. To remove one, delete it from the document's ``_attachments``."""
        self[doc_id]
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise BadRequest("bad_request", f"illegal attachment name {name!r}")
        data = _bytes(content)
        content_type = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        self._entries[doc_id].attachments[name] = (data, content_type)

    def pending(self) -> dict[str, str]:
        """What the next flush would write, before hooks: id → ``"create"``, ``"change"``,
        ``"delete"`` or ``"attachments"``."""
        pending = {}
        for doc_id, entry in self._entries.items():
            kind, _ = entry.change(doc_id)
            if kind or entry.attachments:
                pending[doc_id] = kind or "attachments"
        return pending

    def discard(self, *doc_ids: str) -> None:
        """Forget the documents named (all of them, without a name) and their changes: the
        next read fetches them again."""
        if not doc_ids:
            self._entries.clear()
        for doc_id in doc_ids:
            self._entries.pop(doc_id, None)

    # -- flushing

    def flush(self) -> Any:
        """Write every change: hooks first, then one ``_bulk_docs`` request, then the
        attachments. Returns a FlushResult (awaitable on the async face); raises FlushError
        after writing the rest if any document was refused."""
        if self._flushing:
            raise SessionError("a flush of this session is under way")
        self._flushing = True
        if self.asynchronous:
            return asyncio.ensure_future(self._flush_async())
        try:
            for hook, doc in self._hook_calls():
                returned = hook(self, doc)
                if inspect.isawaitable(returned):
                    if inspect.iscoroutine(returned):
                        returned.close()
                    raise TypeError(f"{hook!r} is async: it needs an async session")
            return self._write()
        finally:
            self._flushing = False

    async def _flush_async(self) -> FlushResult:
        try:
            for hook, doc in self._hook_calls():
                returned = hook(self, doc)
                if inspect.isawaitable(returned):
                    await returned
            return await self._write()
        finally:
            self._flushing = False

    def _hook_calls(self) -> Iterator[tuple[Hook, Doc]]:
        """The hook calls a flush makes, in rounds: each changed document's hook, then the
        hooks of documents that changed since (their own hook's edits do not count)."""
        if not self._hooks:
            return
        seen: dict[str, tuple[str | None, bytes]] = {}
        for _ in range(HOOK_ROUNDS):
            due = [
                doc_id
                for doc_id, entry in list(self._entries.items())
                if (state := entry.change(doc_id))[0] and seen.get(doc_id) != state
            ]
            if not due:
                return
            for doc_id in due:
                entry = self._entries.get(doc_id)
                if entry is None:
                    continue  # discarded by a hook
                kind, content = entry.change(doc_id)
                hook = self._hooks.get(kind or "")
                if hook is not None and seen.get(doc_id) != (kind, content):
                    yield hook, entry.doc
                    entry = self._entries.get(doc_id)
                if entry is not None:
                    seen[doc_id] = entry.change(doc_id)
        raise SessionError(f"hooks still changing documents after {HOOK_ROUNDS} rounds")

    @operation
    def _write(self) -> Flow[FlushResult]:
        """The flush's requests: the bulk write, then the attachments."""
        changes: list[tuple[str, _Entry, Doc, bytes]] = []
        for doc_id, entry in self._entries.items():
            kind, content = entry.change(doc_id)
            if kind == "delete":
                stub = {"_id": doc_id, "_rev": entry.doc.get("_rev"), "_deleted": True}
                changes.append((doc_id, entry, stub, content))
            elif kind:
                changes.append((doc_id, entry, entry.doc, content))
        result = FlushResult()
        if changes:
            docs = [doc for _, _, doc, _ in changes]
            _, refused = yield from save_bulk(self.db.name, docs, {})
            for doc_id, entry, doc, content in changes:
                if doc_id in refused:
                    why = refused[doc_id]
                    result.refused[doc_id] = {"error": why["error"], "reason": why["reason"]}
                    continue
                result.written[doc_id] = doc["_rev"]
                if entry.deleted:
                    self._entries.pop(doc_id, None)
                else:
                    entry.stored = content
        for doc_id, entry in list(self._entries.items()):
            if entry.attachments and entry.stored is not None and doc_id not in result.refused:
                yield from self._upload(doc_id, entry, result)
        if result.refused:
            raise FlushError(result)
        return result

    def _upload(self, doc_id: str, entry: _Entry, result: FlushResult) -> Flow[None]:
        """Upload ``entry``'s attachments one by one, each over the rev the last one made."""
        for name, (content, content_type) in list(entry.attachments.items()):
            try:
                yield from Database.put_attachment.__wrapped__(
                    self.db, entry.doc, content, name, content_type
                )
            except HTTPError as exc:
                why = {"error": exc.error, "reason": exc.reason, "attachment": name}
                result.refused[doc_id] = why
                return
            del entry.attachments[name]
            rev = entry.doc["_rev"]
            stub = _stub(content, content_type, rev)
            entry.doc.setdefault("_attachments", {})[name] = stub
            stored = ujson.loads(entry.stored or b"{}")
            stored.setdefault("_attachments", {})[name] = stub
            entry.stored = encode_json(stored)
            result.written[doc_id] = rev

    def close(self) -> Any:
        """Close the database handle the session opened (if it opened one); pending changes
        are not written. Awaitable on the async face."""
        if self._owns_db:
            return self.db.close()
        return self._closed() if self.asynchronous else None

    async def _closed(self) -> None:
        return None

    # -- with / async with: flush on a clean exit, discard on an exception

    def __enter__(self) -> Session:
        if self.asynchronous:
            raise TypeError("an async session is used with 'async with'")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        try:
            if exc_type is None:
                self.flush()
            else:
                self.discard()
        finally:
            self.close()

    async def __aenter__(self) -> Session:
        if not self.asynchronous:
            raise TypeError("a blocking session is used with 'with'")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        try:
            if exc_type is None:
                await self.flush()
            else:
                self.discard()
        finally:
            await self.close()
