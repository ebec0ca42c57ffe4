"""HTTP preconditions on documents: the ETag is the quoted rev (as CouchDB sends it)."""

from __future__ import annotations

import re

from .couch.errors import BadRequest

REV = re.compile(r"\d+-")


def checked_rev(rev: str) -> str:
    """``rev`` if CouchDB would take it as a revision, else 400 as CouchDB answers."""
    if not REV.match(rev):
        raise BadRequest("bad_request", "Invalid rev format")
    return rev


def etag(rev: str) -> str:
    return f'"{rev}"'


def unquote_etag(value: str) -> str:
    """The rev inside an entity tag: ``"1-abc"`` or ``W/"1-abc"`` → ``1-abc``."""
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


def matches(if_none_match: str | None, rev: str) -> bool:
    """Whether an ``If-None-Match`` header names this rev (or ``*``)."""
    if not if_none_match:
        return False
    tags = [unquote_etag(tag) for tag in if_none_match.split(",")]
    return "*" in tags or rev in tags


def requested_rev(*, body: str | None, query: str | None, if_match: str | None) -> str | None:
    """The rev a write names, from the body's ``_rev``, ``?rev=`` or ``If-Match``.

    They may be given together only if they agree (400 otherwise, as in CouchDB).
    """
    named = [rev for rev in (body, query, if_match and unquote_etag(if_match)) if rev]
    for rev in named:
        if not isinstance(rev, str):  # a body's _rev may be any JSON, a list or an object too
            raise BadRequest("bad_request", "Invalid rev format")
        checked_rev(rev)
    given = set(named)
    if len(given) > 1:
        raise BadRequest(
            "bad_request", "Document rev from request body and query string have different values"
        )
    return given.pop() if given else None
