"""Attachments over HTTP: streamed both ways, content type kept, revs and preconditions."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from tests.conftest import answer


@pytest.mark.gen_test
async def test_attachment_round_trip_keeps_content_and_type(settee, db_name, bdb):
    created = await settee.fetch(
        "PUT", f"/{db_name}/doc/notes.txt", b"hello, attachment", {"Content-Type": "text/plain"}
    )
    assert created.code == 201
    result = answer(created)
    assert (result["ok"], result["id"]) == (True, "doc")
    assert created.headers["ETag"] == f'"{result["rev"]}"'
    assert bdb.get_attachment("doc", "notes.txt") == b"hello, attachment"

    read = await settee.fetch("GET", f"/{db_name}/doc/notes.txt")
    assert read.code == 200
    assert read.body == b"hello, attachment"
    assert read.headers["Content-Type"].startswith("text/plain")
    head = await settee.fetch("HEAD", f"/{db_name}/doc/notes.txt")
    assert head.code == 200
    assert head.headers["Content-Type"].startswith("text/plain")

    second = await settee.fetch(
        "PUT",
        f"/{db_name}/doc/pic.png?rev={result['rev']}",
        b"\x89PNG\r\n",
        {"Content-Type": "image/png"},
    )
    assert second.code == 201
    doc = bdb.get("doc")
    assert set(doc["_attachments"]) == {"notes.txt", "pic.png"}
    assert doc["_attachments"]["pic.png"]["content_type"] == "image/png"

    bdb.save(doc)  # a third revision: the second, which holds pic.png, is now stale
    stale = await settee.fetch("DELETE", f"/{db_name}/doc/pic.png?rev={answer(second)['rev']}")
    assert stale.code == 409
    deleted = await settee.fetch(
        "DELETE", f"/{db_name}/doc/pic.png", headers={"If-Match": f'"{doc["_rev"]}"'}
    )
    assert deleted.code == 200
    assert set(bdb.get("doc")["_attachments"]) == {"notes.txt"}
    missing = await settee.fetch("GET", f"/{db_name}/doc/pic.png")
    assert missing.code == 404
    assert answer(missing)["error"] == "not_found"


@pytest.mark.gen_test
async def test_attachment_on_a_stale_rev_is_a_conflict_and_writes_nothing(settee, db_name, bdb):
    doc = {"_id": "d"}
    bdb.save(doc)
    response = await settee.fetch(
        "PUT", f"/{db_name}/d/a.bin?rev=1-0000", b"x" * 100_000, {"Content-Type": "app/x"}
    )
    assert response.code == 409
    assert "_attachments" not in bdb.get("d")


@pytest.mark.gen_test(timeout=120)
async def test_a_10_mb_attachment_round_trip(settee, db_name, bdb):
    content = os.urandom(10 * 1024 * 1024)
    created = await settee.fetch(
        "PUT", f"/{db_name}/big/blob.bin", content, {"Content-Type": "application/octet-stream"}
    )
    assert created.code == 201
    read = await settee.fetch("GET", f"/{db_name}/big/blob.bin")
    assert read.code == 200
    assert len(read.body) == len(content)
    assert hashlib.sha256(read.body).digest() == hashlib.sha256(content).digest()
    assert read.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.gen_test(timeout=60)
async def test_a_chunked_upload_streams_through(settee, db_name, bdb):
    """A body sent in pieces, as it is produced, arrives whole."""
    pieces = [os.urandom(256 * 1024) for _ in range(8)]

    async def produce(write):
        for piece in pieces:
            await write(piece)
            await asyncio.sleep(0.01)

    created = await settee.fetch(
        "PUT",
        f"/{db_name}/streamed/data.bin",
        body_producer=produce,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert created.code == 201
    assert bdb.get_attachment("streamed", "data.bin") == b"".join(pieces)


@pytest.mark.gen_test
async def test_attachment_names_with_slashes(settee, db_name, bdb):
    created = await settee.fetch(
        "PUT", f"/{db_name}/doc/dir/file.txt", b"nested", {"Content-Type": "text/plain"}
    )
    assert created.code == 201
    assert bdb.get_attachment("doc", "dir/file.txt") == b"nested"
    assert (await settee.fetch("GET", f"/{db_name}/doc/dir/file.txt")).body == b"nested"


@pytest.mark.gen_test
async def test_an_attachment_of_a_named_revision_is_that_revisions(settee, db_name, bdb):
    """``?rev=`` picks the revision, as replicators ask for a conflict's attachments."""
    bdb.bulk_docs(
        [
            {"_id": "d", "_rev": f"1-{c * 32}", "_attachments": {name: data}}
            for c, name, data in [
                ("a", "left.bin", {"content_type": "application/x-left", "data": "AAEC"}),
                ("b", "right.bin", {"content_type": "application/x-right", "data": "AwQF"}),
            ]
        ],
        new_edits=False,
    )
    left = await settee.fetch("GET", f"/{db_name}/d/left.bin?rev=1-{'a' * 32}")
    assert (left.code, left.body) == (200, b"\x00\x01\x02")
    assert left.headers["Content-Type"] == "application/x-left"
    head = await settee.fetch("HEAD", f"/{db_name}/d/left.bin?rev=1-{'a' * 32}")
    assert (head.code, head.headers["Content-Type"]) == (200, "application/x-left")
    current = await settee.fetch("GET", f"/{db_name}/d/right.bin")  # 1-bbb… wins
    assert (current.code, current.body) == (200, b"\x03\x04\x05")
    assert (await settee.fetch("GET", f"/{db_name}/d/left.bin")).code == 404
    assert bdb.get_attachment("d", "left.bin", rev=f"1-{'a' * 32}") == b"\x00\x01\x02"
