"""The embedded store's ``multipart/related`` writes: good bodies store their attachments'
bytes exactly; malformed ones are 400 and write nothing."""

from __future__ import annotations

import base64
import json

import pytest

from service.store import related
from service.store.router import Server
from service.store.store import Store

BOUNDARY = "b0undary"
RELATED = f'multipart/related; boundary="{BOUNDARY}"'
BYTES = bytes(range(256)) + b"\r\n--b0und\r\n\r\n" + bytes(range(255, -1, -1))  # CRLFs inside


def related_body(doc: dict, *parts: bytes, boundary: str = BOUNDARY) -> bytes:
    body = f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{json.dumps(doc)}".encode()
    for part in parts:
        body += f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        body += part
    return body + f"\r\n--{boundary}--".encode()


def stub(length: int) -> dict:
    return {"follows": True, "content_type": "application/octet-stream", "length": length}


@pytest.fixture
def server(tmp_path):
    store = Store.acquire(tmp_path)
    server = Server(store)
    assert server.handle("PUT", "/db", {}, b"").status == 201
    yield server
    store.release()


def put(server: Server, body: bytes, content_type: str = RELATED):
    return server.handle("PUT", "/db/doc", {"Content-Type": content_type}, body)


def test_attachments_that_follow_are_stored_byte_for_byte(server):
    doc = {"n": 1, "_attachments": {"a.bin": stub(len(BYTES)), "b.txt": stub(2)}}
    reply = put(server, related_body(doc, BYTES, b"hi"))
    assert reply.status == 201, reply.body
    assert server.handle("GET", "/db/doc/a.bin", {}, b"").body == BYTES
    assert server.handle("GET", "/db/doc/b.txt", {}, b"").body == b"hi"
    stored = json.loads(server.handle("GET", "/db/doc", {}, b"").body)
    assert stored["n"] == 1 and stored["_attachments"]["a.bin"]["length"] == len(BYTES)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/related", related_body({"_attachments": {"a": stub(2)}}, b"hi")),  # no boundary
        (RELATED, related_body({"_attachments": {"a": stub(2)}})),  # a part missing
        (RELATED, related_body({"_attachments": {"a": stub(2)}}, b"hi", b"extra")),  # one too many
        (RELATED, related_body({"_attachments": {"a": stub(5)}}, b"hi")),  # not its length
        (
            RELATED,
            related_body({"_attachments": {"a": stub(2)}}, b"hi")[:-4],
        ),  # no closing boundary
        (RELATED, related_body({"_attachments": []})),  # not an object
        (RELATED, b"--" + BOUNDARY.encode() + b"\r\n\r\n[1]\r\n--" + BOUNDARY.encode() + b"--"),
        (RELATED, b"--" + BOUNDARY.encode() + b"\r\n\r\n{nope\r\n--" + BOUNDARY.encode() + b"--"),
        (RELATED, b""),
    ],
    ids=[
        "no-boundary",
        "part-missing",
        "part-extra",
        "wrong-length",
        "unterminated",
        "attachments-not-object",
        "not-an-object",
        "bad-json",
        "empty",
    ],
)
def test_a_malformed_body_is_400_and_writes_nothing(server, content_type, body):
    reply = put(server, body, content_type)
    assert reply.status == 400, reply.body
    assert json.loads(reply.body)["error"] == "bad_request"
    assert server.handle("GET", "/db/doc", {}, b"").status == 404


def test_a_read_that_accepts_multipart_gets_the_bytes_as_parts(server):
    doc = {"n": 1, "_attachments": {"a.bin": stub(len(BYTES)), "ü.txt": stub(2)}}
    assert put(server, related_body(doc, BYTES, b"hi")).status == 201
    accept = {"Accept": "multipart/related,application/json"}
    reply = server.handle("GET", "/db/doc?attachments=true", accept, b"")
    content_type = reply.headers["content-type"]
    assert content_type.startswith("multipart/related; boundary=")
    assert BYTES in reply.body and b"base64" not in reply.body  # the bytes, not base64
    read = related.document_of(content_type, reply.body)
    assert read["n"] == 1
    assert base64.b64decode(read["_attachments"]["a.bin"]["data"]) == BYTES
    assert base64.b64decode(read["_attachments"]["ü.txt"]["data"]) == b"hi"
    # JSON as before: without attachments=true, or without multipart in Accept
    for target, headers in [("/db/doc", accept), ("/db/doc?attachments=true", {})]:
        reply = server.handle("GET", target, headers, b"")
        assert reply.headers["content-type"] == "application/json", target
