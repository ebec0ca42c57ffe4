"""Each key-value operation as a plan: from what a key holds now, what to answer or write.

A plan is a pure function ``plan(key, entry, now)``: ``entry`` is the key's document (None
if there is none), ``now`` the Unix time. It returns the Result or KVError to answer without
writing, or a ``Write``: the document to write over ``entry`` and how to make the Result from
the new rev. ``engine`` runs plans for one key or many, reading and writing in bulk, and plans
again whatever lost a race.

Expiry and locks are checked here, on every read and write: an expired key is absent for every
operation at once, whether or not the reaper has removed its document yet. A locked key
refuses every write that does not carry the lock's cas (the rev the lock wrote), and reads of
it do not show that cas, so only the lock's holder knows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import (
    ArgumentError,
    DeltaBadvalError,
    KeyExistsError,
    KVError,
    NotFoundError,
    TemporaryFailError,
    ValueFormatError,
)
from .formats import (
    FMT_BYTES,
    FMT_JSON,
    FMT_UTF8,
    META,
    Transcoder,
    decode,
    flags_of,
    meta,
    raw,
    stored,
)
from .results import Result

RELATIVE_TTL_LIMIT = 30 * 24 * 3600
"""A ttl below 30 days is seconds from now; from there on, a Unix time (the SDK's rule)."""
MAX_LOCK = 30.0
DEFAULT_LOCK = 15.0


@dataclass(slots=True)
class Entry:
    """A key's current document."""

    doc: dict[str, Any]

    @property
    def rev(self) -> str:
        return self.doc["_rev"]

    def _time(self, name: str) -> float | None:
        value = meta(self.doc).get(name)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def expires(self) -> float | None:
        return self._time("expires")

    def alive(self, now: float) -> bool:
        expires = self.expires
        return expires is None or expires > now

    def locked(self, now: float) -> bool:
        until = self._time("locked")
        return until is not None and until > now

    def fields(self) -> dict[str, Any]:
        """The document's value fields and metadata, and its attachments (as the stubs it was
        read with), to write it again changed only in its metadata."""
        return {k: v for k, v in self.doc.items() if not k.startswith("_") or k == "_attachments"}


Outcome = Result | KVError
Plan = Callable[[str, "Entry | None", float], "Outcome | Write"]


@dataclass(slots=True)
class Write:
    """A document to write (``_id``, ``_rev`` set) and the Result it makes, given its rev."""

    doc: dict[str, Any]
    result: Callable[[str], Result]


def expiry(ttl: Any, now: float | None = None) -> float | None:
    """The Unix time a ttl ends at: seconds from now below 30 days, a Unix time from there;
    None for 0 (no expiry). ArgumentError for anything else."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl >= 0:
        raise ArgumentError(f"ttl must be a number of seconds >= 0, not {ttl!r}")
    if ttl == 0:
        return None
    if ttl < RELATIVE_TTL_LIMIT:
        return (time.time() if now is None else now) + ttl
    return float(ttl)


def lock_seconds(ttl: Any) -> float:
    if ttl is None or ttl == 0:
        return DEFAULT_LOCK
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= MAX_LOCK:
        raise ArgumentError(f"a lock lasts 0 < ttl <= {MAX_LOCK:g} seconds, not {ttl!r}")
    return float(ttl)


def document(
    key: str, entry: Entry | None, fields: dict[str, Any], **metadata: Any
) -> dict[str, Any]:
    """A document for ``key`` over ``entry`` holding ``fields``, its ``"~kv"`` updated with
    ``metadata`` (None removes an item). ``fields`` are not changed."""
    info = {**fields.get(META, {}), **metadata}
    doc = {**fields, "_id": key, META: {k: v for k, v in info.items() if v is not None}}
    if entry is not None:
        doc["_rev"] = entry.rev
    return doc


def refusal(key: str, entry: Entry, now: float, cas: str | None) -> KVError | None:
    """Why a write to a live ``entry`` is refused: a lock not given its cas, a stale cas."""
    if entry.locked(now):
        if cas != entry.rev:
            return TemporaryFailError("the key is locked", key)
    elif cas is not None and cas != entry.rev:
        return KeyExistsError("the cas is not the key's current one", key)
    return None


def _live(entry: Entry | None, now: float) -> Entry | None:
    return entry if entry is not None and entry.alive(now) else None


def read(transcoder: Transcoder | None) -> Plan:
    """``get``: the value, its flags, and its cas unless a lock hides it."""

    def plan(key: str, entry: Entry | None, now: float) -> Outcome | Write:
        live = _live(entry, now)
        if live is None:
            return NotFoundError("no such key", key)
        try:
            value = decode(live.doc, transcoder)
        except ValueFormatError as exc:
            exc.key = key
            return exc
        cas = None if live.locked(now) else live.rev
        return Result(key, value, cas, flags_of(live.doc))

    return plan


def store(
    mode: str, value: Any, fmt: int, ttl: Any, cas: str | None, transcoder: Transcoder | None
) -> Plan:
    """``set`` (any), ``add`` (only a key that is absent), ``replace`` (only one present)."""
    fields, flags = stored(value, fmt, transcoder)
    if cas is not None and not isinstance(cas, str):
        raise ArgumentError(f"cas must be a str from a Result, not {cas!r}")
    expiry(ttl)  # checked before any request

    def plan(key: str, entry: Entry | None, now: float) -> Outcome | Write:
        live = _live(entry, now)
        if live is not None and mode == "add":
            return KeyExistsError("the key exists", key)
        if live is None and (mode == "replace" or cas is not None):
            return NotFoundError("no such key", key)
        if live is not None and (why := refusal(key, live, now, cas)):
            return why
        doc = document(key, entry, fields, expires=expiry(ttl, now))
        return Write(doc, lambda rev: Result(key, None, rev, flags))

    return plan


def delete(cas: str | None) -> Plan:
    def plan(key: str, entry: Entry | None, now: float) -> Outcome | Write:
        live = _live(entry, now)
        if live is None:
            return NotFoundError("no such key", key)
        if why := refusal(key, live, now, cas):
            return why
        doc = {"_id": key, "_rev": live.rev, "_deleted": True}
        return Write(doc, lambda rev: Result(key, None, rev, flags_of(live.doc)))

    return plan


def touch(ttl: Any) -> Plan:
    """A new expiry (ttl 0: none), the value untouched."""
    expiry(ttl)

    def plan(key: str, entry: Entry | None, now: float) -> Outcome | Write:
        live = _live(entry, now)
        if live is None:
            return NotFoundError("no such key", key)
        if why := refusal(key, live, now, None):
            return why
        doc = document(key, live, live.fields(), expires=expiry(ttl, now), locked=None)
        return Write(doc, lambda rev: Result(key, None, rev, flags_of(live.doc)))

    return plan


def counter(delta: int, initial: Any, ttl: Any) -> Plan:
    """``incr``/``decr``: a JSON integer changed by ``delta``, never below 0 (the SDK's
    counters are unsigned); an absent key starts at ``initial`` if given. ``ttl`` > 0 sets
    the expiry; 0 keeps the one the key has."""
    if initial is not None and (isinstance(initial, bool) or not isinstance(initial, int)):
        raise ArgumentError(f"initial must be an int, not {initial!r}")
    expiry(ttl)

    def plan(key: str, entry: Entry | None, now: float) -> Outcome | Write:
        live = _live(entry, now)
        expires = expiry(ttl, now)
        if live is None:
            if initial is None:
                return NotFoundError("no such key, and no initial value", key)
            new = max(initial, 0)
        else:
            if why := refusal(key, live, now, None):
                return why
            current = _counter_value(live.doc)
            if current is None:
                return DeltaBadvalError("the value is not an integer counter", key)
            new = max(current + delta, 0)
            if expires is None:
                expires = live.expires
        doc = document(key, entry, {META: {"value": new}}, expires=expires)
        return Write(doc, lambda rev: Result(key, new, rev, FMT_JSON))

    return plan


def _counter_value(doc: dict[str, Any]) -> int | None:
    native, data = raw(doc)
    flags = flags_of(doc)
    if data is not None or flags not in (FMT_JSON, FMT_UTF8) or "value" not in meta(doc):
        return None
    if isinstance(native, int) and not isinstance(native, bool):
        return native
    if isinstance(native, str) and native.isascii() and native.isdigit():
        return int(native)
    return None


def concat(value: Any, prepend: bool, cas: str | None) -> Plan:
    """``append``/``prepend``: text to FMT_UTF8 text, bytes to FMT_BYTES bytes."""
    if not isinstance(value, str | bytes):
        raise ArgumentError(f"append and prepend take str or bytes, not {type(value).__name__}")

    def plan(key: str, entry: Entry | None, now: float) -> Outcome | Write:
        live = _live(entry, now)
        if live is None:
            return NotFoundError("no such key", key)
        if why := refusal(key, live, now, cas):
            return why
        flags = flags_of(live.doc)
        native, data = raw(live.doc)
        if flags == FMT_UTF8 and isinstance(value, str) and isinstance(native, str):
            joined: dict[str, Any] = {"value": value + native if prepend else native + value}
        elif flags == FMT_BYTES and isinstance(value, bytes) and data is not None:
            fields, _ = stored(value + data if prepend else data + value, FMT_BYTES, None)
            joined = fields[META]
        else:
            return ValueFormatError(
                "append and prepend join str to FMT_UTF8 values and bytes to FMT_BYTES ones", key
            )
        doc = document(key, live, live.fields(), locked=None, **joined)
        return Write(doc, lambda rev: Result(key, None, rev, flags))

    return plan


def lock(ttl: Any, transcoder: Transcoder | None) -> Plan:
    """The value, with the key locked for ``ttl`` seconds (at most 30); the Result's cas is
    the lock's, which unlocks it (``unlock``, or any write given it)."""
    seconds = lock_seconds(ttl)
    get = read(transcoder)

    def plan(key: str, entry: Entry | None, now: float) -> Outcome | Write:
        live = _live(entry, now)
        if live is None:
            return NotFoundError("no such key", key)
        if live.locked(now):
            return TemporaryFailError("the key is locked", key)
        current = get(key, live, now)
        if not isinstance(current, Result):
            return current
        doc = document(key, live, live.fields(), locked=now + seconds)
        return Write(doc, lambda rev: Result(key, current.value, rev, current.flags))

    return plan


def unlock(cas: Any) -> Plan:
    if not isinstance(cas, str):
        raise ArgumentError(f"unlock needs the cas of the lock's Result, not {cas!r}")

    def plan(key: str, entry: Entry | None, now: float) -> Outcome | Write:
        live = _live(entry, now)
        if live is None:
            return NotFoundError("no such key", key)
        if not live.locked(now):
            return TemporaryFailError("the key is not locked", key)
        if cas != live.rev:
            return TemporaryFailError("the cas is not the lock's", key)
        doc = document(key, live, live.fields(), locked=None)
        return Write(doc, lambda rev: Result(key, None, rev, flags_of(live.doc)))

    return plan


def check_key(key: Any) -> str:
    """``key`` if a document id can be it: a non-empty str, not starting with ``_``."""
    if not isinstance(key, str) or not key or key.startswith("_"):
        raise ArgumentError(f"a key is a non-empty str not starting with '_', not {key!r}")
    try:
        key.encode()
    except UnicodeEncodeError:
        raise ArgumentError(f"a key must be UTF-8 text, not {key!r}") from None
    return key
