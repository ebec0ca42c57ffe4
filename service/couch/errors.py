"""The client's one exception hierarchy, and the one table from HTTP status to exception.

::

    CouchError
     +-- HTTPError                 the server answered with a status >= 400
     |    +-- BadRequest           400, also raised before any request for bad input
     |    +-- Unauthorized         401
     |    +-- Forbidden            403
     |    +-- NotFound             404 (also a KeyError)
     |    +-- Conflict             409
     |    +-- PreconditionFailed   412
     |    +-- RequestTooLarge      413
     |    +-- ServerError          5xx
     +-- ServerUnavailable         the server could not be reached or did not answer in time
     +-- service.session.SessionError   a session used wrongly (NotFetched, hooks looping)
     +-- service.session.FlushError     a flush wrote some documents and not others
     +-- service.kv.KVError             a Bucket operation failed (its tree: service.kv.errors)

service.shelf.ConflictError is a Conflict (409) that names the keys a shelf could not write.

Messages name the request's method and URL, never its credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CouchError(Exception):
    """Anything that went wrong talking to CouchDB."""


class HTTPError(CouchError):
    """The server answered with an error status; ``error`` and ``reason`` are CouchDB's.

    ``response`` is the answer's JSON, decoded, or None if it was not JSON: where CouchDB
    answers per document (a 417 to ``_bulk_docs`` with ``all_or_nothing``), the list.
    """

    status = 0

    def __init__(
        self,
        error: str,
        reason: str = "",
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        request: str = "",
        response: Any = None,
    ) -> None:
        self.error = error
        self.reason = reason
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self.request = request
        self.response = response
        super().__init__(error, reason)

    def __str__(self) -> str:
        text = f"{self.status} {self.error}"
        if self.reason:
            text += f": {self.reason}"
        if self.request:
            text += f" ({self.request})"
        return text


class BadRequest(HTTPError, ValueError):
    """400: the request (or the input it was built from) is malformed."""

    status = 400


class Unauthorized(HTTPError):
    status = 401


class Forbidden(HTTPError):
    status = 403


class NotFound(HTTPError, KeyError):
    """404: no such database, document, attachment or design function."""

    status = 404
    __str__ = HTTPError.__str__


class Conflict(HTTPError):
    """409: the document's ``_rev`` is not the current one."""

    status = 409


class PreconditionFailed(HTTPError):
    """412: the database (or a create-only document) already exists."""

    status = 412


class RequestTooLarge(HTTPError):
    status = 413


class ServerError(HTTPError):
    """5xx: the server failed."""

    status = 500


class ServerUnavailable(CouchError, ConnectionError):
    """The server could not be reached, or did not answer within the timeout."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(url, detail)

    def __str__(self) -> str:
        return f"cannot reach {self.url}: {self.detail}"


_BY_STATUS: dict[int, type[HTTPError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: RequestTooLarge,
}


def exception_for(status: int) -> type[HTTPError]:
    """The exception class for an HTTP error status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, HTTPError)
