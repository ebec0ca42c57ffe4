"""Attachments: their metadata lives in a revision's body, their content once per digest.

A revision stores ``_attachments`` as ``{name: {content_type, revpos, digest, length}}``; the
bytes are in ``blobs`` under their ``md5-`` digest (base64 of the MD5, as CouchDB writes it),
so a content shared by many revisions or documents is stored once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from ..couch.errors import BadRequest, PreconditionFailed
from . import tree


def digest_of(data: bytes) -> str:
    return "md5-" + base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def store(conn: sqlite3.Connection, data: bytes) -> str:
    """Keep ``data`` (once) and return its digest."""
    digest = digest_of(data)
    conn.execute("INSERT OR IGNORE INTO blobs (digest, data) VALUES (?, ?)", (digest, data))
    return digest


def meta(content_type: str, generation: int, digest: str, length: int) -> dict[str, Any]:
    return {"content_type": content_type, "revpos": generation, "digest": digest, "length": length}


def prepare(
    conn: sqlite3.Connection,
    doc_id: str,
    given: Any,
    ancestors: Sequence[str],
    generation: int,
) -> dict[str, Any]:
    """The ``_attachments`` to store for a new revision of generation ``generation``.

    Inline ones (``data``, base64) are stored; stubs are taken from the nearest of
    ``ancestors`` (revs, newest first) that has them: 412 ``missing_stub`` if none has.
    """
    if not given:
        return {}
    if not isinstance(given, Mapping):
        raise BadRequest("bad_request", "_attachments must be an object")
    result = {}
    for name, att in given.items():
        if not isinstance(att, Mapping):
            raise BadRequest("bad_request", f"Attachment {name} must be an object")
        if att.get("stub"):
            result[name] = _from_ancestors(conn, doc_id, name, ancestors)
        elif "data" in att:
            try:
                data = base64.b64decode(att["data"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise BadRequest("bad_request", "Invalid attachment data for " + name) from None
            content_type = att.get("content_type") or "application/octet-stream"
            result[name] = meta(content_type, generation, store(conn, data), len(data))
        else:
            raise BadRequest("bad_request", f"Attachment {name} has neither data nor stub")
    return result


def _from_ancestors(
    conn: sqlite3.Connection, doc_id: str, name: str, ancestors: Sequence[str]
) -> dict[str, Any]:
    for rev in ancestors:
        body = tree.body(conn, doc_id, rev)
        if body is not None and name in body.get("_attachments", {}):
            return body["_attachments"][name]
    raise PreconditionFailed("missing_stub", f"Invalid attachment stub in {doc_id} for {name}")


def for_reply(
    conn: sqlite3.Connection, stored: Mapping[str, Any], *, inline: bool
) -> dict[str, Any]:
    """``_attachments`` as a document read shows them: stubs, or with their data inline."""
    shown = {}
    for name, att in stored.items():
        if inline:
            data = content(conn, att["digest"]) or b""
            shown[name] = {**att, "data": base64.b64encode(data).decode()}
        else:
            shown[name] = {**att, "stub": True}
    return shown


def content(conn: sqlite3.Connection, digest: str) -> bytes | None:
    row = conn.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
    return bytes(row[0]) if row else None
