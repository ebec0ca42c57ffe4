"""``Call``: one request to the store, as the endpoints see it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..couch.errors import HTTPError
from .users import ANONYMOUS, UserCtx

if TYPE_CHECKING:
    from .store import Store


@dataclass(slots=True)
class Call:
    """A request: method, path below the database (decoded segments), query, headers
    (lower-case names) and the whole body."""

    store: Store
    method: str
    db: str
    rest: list[str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    now: float
    user: UserCtx = ANONYMOUS


class MethodNotAllowed(HTTPError):
    """405, with CouchDB's reason naming the methods the route takes."""

    status = 405

    def __init__(self, allowed: str) -> None:
        super().__init__("method_not_allowed", f"Only {allowed} allowed")


class UnsupportedMediaType(HTTPError):
    """415, CouchDB's ``bad_content_type``."""

    status = 415

    def __init__(self, reason: str) -> None:
        super().__init__("bad_content_type", reason)


class NotImplementedYet(HTTPError):
    """501: a CouchDB feature the embedded store does not have."""

    status = 501


class Gone(HTTPError):
    """410: what CouchDB 3 no longer serves."""

    status = 410
