"""``open_revs`` answered as ``multipart/mixed``, as CouchDB 3.4.3 answers its replicator.

One part per revision asked for, in the order of the JSON answer: a revision without
attachments to send is an ``application/json`` part; one with attachments is itself a
``multipart/related`` part (the document, its ``_attachments`` marked ``"follows": true``,
then one part per attachment, as ``related`` writes it); a revision the database lacks is
``application/json; error="true"`` with ``{"missing": rev}``. Attachments go whether or not
``attachments=true`` is asked, as CouchDB's do, but for those ``atts_since`` says the reader
has (their ``revpos`` at most the newest generation it names on the revision's path): stubs.

The answer is read in steps (``Reply.stream``): the documents first, in one snapshot, then
each attachment's content in a read of its own, so that one attachment at a time is in
memory, however many revisions and attachments the answer carries. Contents are stored by
digest and never change, so a later read gives the very bytes the document names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..couch.protocol import encode_json
from . import attachments, revs
from .wakeup import Signal

Read = Callable[[Callable[..., Any]], Any]


class Content:
    """A placeholder in the plan of parts: the content stored under ``digest``."""

    __slots__ = ("digest",)

    def __init__(self, digest: str) -> None:
        self.digest = digest


class OpenRevsParts:
    """The steps of one ``multipart/mixed`` answer (``found``: ``reads.open_revs``' rows,
    attachments as stubs, each revision with its ``_revisions``)."""

    def __init__(
        self,
        found: list[dict[str, Any]],
        read: Read,
        signal: Signal,
        *,
        atts_since: list[str],
        with_revs: bool,
    ) -> None:
        self.boundary = uuid.uuid4().hex
        self.signal = signal
        self._read = read
        self._plan = _parts(self.boundary, found, set(atts_since), with_revs)

    @property
    def content_type(self) -> str:
        return f'multipart/mixed; boundary="{self.boundary}"'

    def step(self, now: float) -> tuple[bytes | None, float | None]:
        """The next piece: a part's head and document, or one attachment's content."""
        piece = next(self._plan, None)
        if piece is None:
            return None, None
        if isinstance(piece, Content):
            digest = piece.digest
            return self._read(lambda conn: attachments.content(conn, digest)) or b"", 0
        return piece, 0


def _parts(
    boundary: str, found: list[dict[str, Any]], since: set[str], with_revs: bool
) -> Iterator[bytes | Content]:
    for index, row in enumerate(found):
        lead = b"" if index == 0 else b"\r\n"
        if "missing" in row:
            yield lead + _head(boundary, 'application/json; error="true"') + encode_json(row)
            continue
        doc = dict(row["ok"])
        path = doc["_revisions"] if with_revs else doc.pop("_revisions")
        sent_since = _since(path, since)
        stubs = doc.get("_attachments") or {}
        following = [name for name, att in stubs.items() if att["revpos"] > sent_since]
        if not following:
            yield lead + _head(boundary, "application/json") + encode_json(doc)
            continue
        inner = uuid.uuid4().hex
        doc["_attachments"] = {
            name: _follows(att) if name in following else att for name, att in stubs.items()
        }
        related = f'multipart/related; boundary="{inner}"'
        yield lead + _head(boundary, related) + _head(inner, "application/json") + encode_json(doc)
        for name in following:
            att = stubs[name]
            filename = encode_json(name).decode()  # a quoted string, as CouchDB writes it
            yield (
                f"\r\n--{inner}\r\nContent-Disposition: attachment; filename={filename}\r\n"
                f"Content-Type: {att['content_type']}\r\nContent-Length: {att['length']}\r\n\r\n"
            ).encode()
            yield Content(att["digest"])
        yield f"\r\n--{inner}--".encode()
    yield f"\r\n--{boundary}--".encode()


def _head(boundary: str, content_type: str) -> bytes:
    return f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()


def _follows(stub: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in stub.items() if k != "stub"}, "follows": True}


def _since(path: dict[str, Any], since: set[str]) -> int:
    """The newest generation of ``atts_since`` on the revision's path (0: none)."""
    start, ids = path["start"], path["ids"]
    on_path = {f"{start - i}-{rev_id}" for i, rev_id in enumerate(ids)}
    return max((revs.generation(rev) for rev in since & on_path), default=0)
