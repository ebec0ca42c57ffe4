"""What Bucket operations answer: a Result per key, a MultiResult per multi call, ViewRows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Result:
    """One key's outcome. ``cas`` is the document's rev after the operation (None where a
    lock hides it); ``flags`` the value's format; ``rc`` 0 on success, else the code of the
    error that was (or would have been) raised."""

    key: str
    value: Any = None
    cas: str | None = None
    flags: int = 0
    success: bool = True
    rc: int = 0

    def __repr__(self) -> str:
        if not self.success:
            return f"Result<key={self.key!r}, rc=0x{self.rc:X}>"
        return (
            f"Result<key={self.key!r}, value={self.value!r}, cas={self.cas!r},"
            f" flags=0x{self.flags:X}>"
        )


class MultiResult(dict[str, Result]):
    """Key → Result of a ``*_multi`` call, in the order the keys were given."""

    @property
    def all_ok(self) -> bool:
        return all(result.success for result in self.values())


@dataclass(frozen=True, slots=True)
class ViewRow:
    """A row of ``Bucket.query``: the emitted ``key`` and ``value``, the document's ``id``,
    and with ``include_docs=True`` its value as a Result in ``doc``."""

    key: Any
    value: Any
    id: str | None
    doc: Result | None = None

    @property
    def docid(self) -> str | None:
        return self.id
