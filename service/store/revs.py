"""Revision ids and CouchDB's rules over a document's revision tree, as pure functions.

A rev is ``"{generation}-{hash}"``. A document's revisions form a tree (a forest once old
ones are stemmed); its leaves are the open branches, and exactly one leaf wins: the
highest generation among the leaves that are not deleted, then the highest hash; only when
every leaf is deleted does a deleted one win (the document is then deleted).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..couch.errors import BadRequest
from ..couch.protocol import encode_json

REV = re.compile(r"^([0-9]+)-(.*)$", re.DOTALL)  # CouchDB takes any text after the dash


@dataclass(frozen=True, slots=True)
class Rev:
    """One revision of a document as the tree holds it."""

    rev: str
    parent: str | None
    deleted: bool
    leaf: bool
    available: bool  # its body is kept (ancestors a replicator only named have none)

    @property
    def generation(self) -> int:
        return generation(self.rev)


def parse(rev: str) -> tuple[int, str]:
    """``"3-abc"`` → ``(3, "abc")``; BadRequest ``Invalid rev format`` for anything else."""
    match = REV.match(rev) if isinstance(rev, str) else None
    if match is None:
        raise BadRequest("bad_request", "Invalid rev format")
    return int(match[1]), match[2]


def generation(rev: str) -> int:
    return int(rev.partition("-")[0])


def sort_key(rev: Rev) -> tuple[bool, int, str]:
    """The order in which leaves win: not deleted first, then generation, then hash."""
    gen, _, digest = rev.rev.partition("-")
    return (not rev.deleted, int(gen), digest)


def winner(leaves: Iterable[Rev]) -> Rev:
    """The winning revision among a document's leaves (there is at least one)."""
    return max(leaves, key=sort_key)


def ranked(leaves: Iterable[Rev]) -> list[Rev]:
    """Leaves from the winner down, as CouchDB lists ``_conflicts``."""
    return sorted(leaves, key=sort_key, reverse=True)


def new_rev(parent: str | None, deleted: bool, body: bytes) -> str:
    """The id of a new revision: its generation, and an md5 of what it is made of (``body``
    is the revision's JSON, as stored).

    Deterministic, as CouchDB's: the same edit of the same revision has the same id wherever
    it is made, so replicas that make it agree. What is hashed is the compact JSON of
    ``[deleted, parent, body]``, put together from its parts.
    """
    gen = generation(parent) + 1 if parent else 1
    made_of = b"[%s,%s,%s]" % (encode_json(deleted), encode_json(parent), body)
    return f"{gen}-{hashlib.md5(made_of, usedforsecurity=False).hexdigest()}"


def path_of(revisions: dict, rev: str) -> list[str]:
    """The revs from ``rev`` to the oldest ancestor the tree still knows, newest first.

    ``revisions`` maps rev → Rev.
    """
    path = []
    current: str | None = rev
    while current is not None and current in revisions:
        path.append(current)
        current = revisions[current].parent
    return path


def history(doc_revisions: object) -> list[str]:
    """The revs a replicated document's ``_revisions`` names, newest first; BadRequest if
    it is malformed."""
    if not isinstance(doc_revisions, dict):
        raise BadRequest("bad_request", "_revisions must be an object")
    start, ids = doc_revisions.get("start"), doc_revisions.get("ids")
    if not isinstance(start, int) or not isinstance(ids, list) or not ids or start < len(ids):
        raise BadRequest("bad_request", "Invalid _revisions")
    revs = []
    for i, digest in enumerate(ids):
        if not isinstance(digest, str) or not digest:
            raise BadRequest("bad_request", "Invalid _revisions")
        revs.append(f"{start - i}-{digest}")
    return revs
