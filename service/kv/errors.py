"""service.kv's errors: one subtree of the client's hierarchy (``service.couch.errors``).

::

    CouchError                      (service.couch)
     +-- KVError                    a key-value operation failed; ``key``, ``result``, ``rc``
          +-- NotFoundError         the key holds nothing (or only an expired value); a KeyError
          +-- KeyExistsError        ``add`` of a present key, or a ``cas`` that is not current
          +-- TemporaryFailError    the key is locked, or a write lost too many races
          +-- DeltaBadvalError      ``incr``/``decr`` of a value that is not a counter
          +-- ValueFormatError      a value that cannot be encoded or decoded in its format
          +-- ArgumentError         a malformed argument (key, ttl, amount, ...), before any request

Each carries the libcouchbase return code its kind had (``rc``), as the Couchbase SDK's did,
so that a failed ``Result`` of a quiet or ``*_multi`` call says what would have been raised
(``KVError.rc_to_exctype(result.rc)``). An error raised by a ``*_multi`` call also carries
every key's ``Result`` in ``all_results``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from service.couch.errors import CouchError

if TYPE_CHECKING:
    from .results import MultiResult, Result


class KVError(CouchError):
    """A key-value operation failed; ``key`` names the key, ``result`` is its failed Result."""

    rc: ClassVar[int] = 0x0A  # LCB_ERROR
    all_results: MultiResult | None = None

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key

    def __str__(self) -> str:
        return f"{self.message} (key {self.key!r})" if self.key is not None else self.message

    @property
    def result(self) -> Result:
        """The failed Result that stands for this error in a quiet or multi answer."""
        from .results import Result

        return Result(self.key or "", success=False, rc=self.rc)

    @staticmethod
    def rc_to_exctype(rc: int) -> type[KVError]:
        """The exception class of return code ``rc`` (KVError for one not listed)."""
        return _BY_RC.get(rc, KVError)


class NotFoundError(KVError, KeyError):
    rc = 0x0D  # LCB_KEY_ENOENT
    __str__ = KVError.__str__


class KeyExistsError(KVError):
    rc = 0x0C  # LCB_KEY_EEXISTS


class TemporaryFailError(KVError):
    rc = 0x0B  # LCB_ETMPFAIL


class DeltaBadvalError(KVError, ValueError):
    rc = 0x03  # LCB_DELTA_BADVAL


class ValueFormatError(KVError, ValueError):
    rc = 0x100  # the SDK's converters raised it; libcouchbase had no code for it


class ArgumentError(KVError, ValueError):
    rc = 0x07  # LCB_EINVAL


_BY_RC: dict[int, type[KVError]] = {
    cls.rc: cls
    for cls in (
        NotFoundError,
        KeyExistsError,
        TemporaryFailError,
        DeltaBadvalError,
        ValueFormatError,
        ArgumentError,
    )
}


def with_results(error: Exception, results: MultiResult) -> Exception:
    """``error`` carrying every key's Result of the multi call it ends."""
    setattr(error, "all_results", results)  # noqa: B010 - a couch error too, not only KVError
    return error


__all__ = [
    "ArgumentError",
    "DeltaBadvalError",
    "KVError",
    "KeyExistsError",
    "NotFoundError",
    "TemporaryFailError",
    "ValueFormatError",
]
