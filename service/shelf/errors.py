"""The shelf's errors, where they sit in the client's one hierarchy::

    service.couch.Conflict (an HTTPError, 409)
     +-- ConflictError          a write lost to another writer's (raiseconflicts=True), or
                                kept losing past the retries (the default)
    PermissionError
     +-- ReadOnlyError          a write to a shelf opened with flag "r"
    ValueError
     +-- FormatError            a document holds no value in the shelf's format

A missing key is a KeyError, a key that is not a str a TypeError, a closed shelf a
ValueError, as for the standard library's shelves.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..couch.errors import Conflict
from .formats import FormatError


class ConflictError(Conflict):
    """Another writer changed these keys first; ``keys`` names them."""

    def __init__(self, keys: Iterable[str], reason: str) -> None:
        self.keys = sorted(keys)
        super().__init__("conflict", f"{reason}: {', '.join(map(repr, self.keys))}")


class ReadOnlyError(PermissionError):
    """The shelf was opened read-only (flag ``"r"``)."""


__all__ = ["ConflictError", "FormatError", "ReadOnlyError"]
