"""A document with its attachments as one ``multipart/related`` body, written or read.

CouchDB's replicator and clients such as nano's ``multipart.insert`` / ``multipart.get`` use
it: the JSON document first, whose ``_attachments`` mark the ones that follow (``"follows":
true``), then one part per such attachment, in the order the document lists them. The store
turns a written one into the document with those attachments inline, as if sent as JSON, and
answers a read that accepts it (with ``attachments=true``) with one.
"""

from __future__ import annotations

import base64
import uuid
from email.message import Message
from typing import Any

from ..couch.errors import BadRequest
from ..couch.protocol import encode_json
from .params import body_json


def is_related(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/related"


def document_of(content_type: str, body: bytes) -> dict[str, Any]:
    """The document a ``multipart/related`` body carries, its attachments' data inline."""
    parts = _parts(_boundary(content_type), body)
    if not parts:
        raise BadRequest("bad_request", "a multipart/related body needs a document part")
    doc = body_json(parts[0], want_object=False)
    if not isinstance(doc, dict):
        raise BadRequest("bad_request", "Document must be a JSON object")
    stubs = doc.get("_attachments", {})
    if not isinstance(stubs, dict):
        raise BadRequest("bad_request", "_attachments must be an object")
    following = [
        name for name, stub in stubs.items() if isinstance(stub, dict) and stub.get("follows")
    ]
    if len(following) != len(parts) - 1:
        raise BadRequest(
            "bad_request",
            f"{len(following)} attachments follow the document, but {len(parts) - 1} parts do",
        )
    for name, data in zip(following, parts[1:], strict=True):
        stub = stubs[name]
        if "length" in stub and stub["length"] != len(data):
            raise BadRequest("bad_request", f"attachment {name!r} is not {stub['length']} bytes")
        stubs[name] = {
            **{k: v for k, v in stub.items() if k not in ("follows", "length", "digest")},
            "data": base64.b64encode(data).decode(),
        }
    return doc


def encode(doc: dict[str, Any]) -> tuple[str, bytes]:
    """A document whose attachments are inline (``attachments=true``) as CouchDB sends it
    in ``multipart/related``: its Content-Type and body."""
    boundary = uuid.uuid4().hex
    stubs, contents = {}, []
    for name, attachment in doc["_attachments"].items():
        data = base64.b64decode(attachment["data"])
        stubs[name] = {
            **{k: v for k, v in attachment.items() if k not in ("data", "stub")},
            "length": len(data),
            "follows": True,
        }
        contents.append((name, attachment.get("content_type", ""), data))
    head = encode_json({**doc, "_attachments": stubs})
    body = [f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(), head]
    for name, content_type, data in contents:
        filename = encode_json(name).decode()  # a quoted string, as CouchDB writes it
        body.append(
            f"\r\n--{boundary}\r\nContent-Disposition: attachment; filename={filename}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        )
        body.append(data)
    body.append(f"\r\n--{boundary}--".encode())
    return f'multipart/related; boundary="{boundary}"', b"".join(body)


def _boundary(content_type: str) -> bytes:
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise BadRequest("bad_request", "a multipart/related body needs a boundary")
    return boundary.encode()


def _parts(boundary: bytes, body: bytes) -> list[bytes]:
    """Each part's content, headers left out (RFC 2046: CRLF before every delimiter)."""
    delimiter = b"\r\n--" + boundary
    pieces = (b"\r\n" + body).split(delimiter)
    if len(pieces) < 2 or not pieces[-1].startswith(b"--"):
        raise BadRequest("bad_request", "a multipart/related body must end with its boundary")
    contents = []
    for piece in pieces[1:-1]:
        _head, separator, content = piece.partition(b"\r\n\r\n")
        if not separator:
            if not piece.endswith(b"\r\n"):
                raise BadRequest("bad_request", "a multipart part needs a blank line")
            content = b""  # a part with neither headers nor content
        contents.append(content)
    return contents
