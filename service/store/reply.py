"""What the store answers to a request: a status, headers, and a body or its steps.

``Reply.stream`` is set for the answers read in steps (``_changes``, whose feeds may wait for
commits between them, and a range ``_all_docs``); every other answer is whole in ``body``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..couch.errors import HTTPError
from ..couch.protocol import JSON_TYPE, encode_json

if TYPE_CHECKING:
    from .wakeup import Signal


class Steps(Protocol):
    """An answer read in steps: ``step(now)`` gives the next piece (``b""``: none yet;
    None: the end) and the most seconds to wait on ``signal`` before the next step."""

    signal: Signal

    def step(self, now: float) -> tuple[bytes | None, float | None]: ...


SERVER = "settee-embedded"


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Steps | None = None


def json_reply(status: int, value: Any, headers: dict[str, str] | None = None) -> Reply:
    body = encode_json(value) + b"\n"
    return Reply(
        status,
        {
            "content-type": JSON_TYPE,
            "content-length": str(len(body)),
            "cache-control": "must-revalidate",
            "server": SERVER,
            **(headers or {}),
        },
        body,
    )


def error_reply(exc: HTTPError) -> Reply:
    """CouchDB's ``{"error", "reason"}`` for an exception the store raised."""
    return json_reply(exc.status, {"error": exc.error, "reason": exc.reason})
