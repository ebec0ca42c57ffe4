"""How shelf keys become document ids, and how a glob over keys becomes an ``_all_docs`` range.

A key is any ``str`` UTF-8 can hold. It is its document's id as it is, unless CouchDB would
not take it as one or it could be read back as another key: a key that is empty or starts
with ``_`` (reserved for ``_design/`` and ``_local/`` documents) or with ``~`` (the escape
itself) is stored under ``~`` + key. So ``"_config"`` is ``"~_config"``, ``"~x"`` is
``"~~x"`` and ``""`` is ``"~"``; reading an id back drops one leading ``~``. Ids that start
with ``_`` (design documents) are never keys.
"""

from __future__ import annotations

import fnmatch

ESCAPE = "~"
GLOB_SPECIALS = "*?["


def doc_id(key: object) -> str:
    """The document id of ``key``; TypeError for a key that is not a str, ValueError for
    one that UTF-8 cannot hold (a lone surrogate)."""
    if not isinstance(key, str):
        raise TypeError(f"shelf keys are str, not {type(key).__name__}: {key!r}")
    try:
        key.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"a shelf key must be valid text: {key!r}") from exc
    if not key or key[0] in ("_", ESCAPE):
        return ESCAPE + key
    return key


def key_of(doc_id: str) -> str | None:
    """The key stored under ``doc_id``, or None for a design document (not a key)."""
    if doc_id.startswith("_"):
        return None
    return doc_id[1:] if doc_id.startswith(ESCAPE) else doc_id


def glob_match(key: str, pattern: str) -> bool:
    """Whether ``key`` matches ``pattern`` as a path matches a file glob: ``*``, ``?`` and
    ``[...]`` match within one ``/``-separated part, never across a ``/``."""
    parts, wanted = key.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatchcase(part, glob) for part, glob in zip(parts, wanted, strict=True)
    )


def glob_range(pattern: str) -> dict[str, object]:
    """``_all_docs`` options that bound the ids of every key ``pattern`` may match.

    The range is the ids starting with the pattern's literal prefix (what comes before its
    first ``*``, ``?`` or ``[``): from that prefix to, exclusive, the prefix with its last
    character incremented. That bound holds in code point order (CouchDB's, the embedded
    store's) and in UTF-16 order (PouchDB's) alike; where incrementing would leave the
    plane or land on a surrogate, a shorter prefix (a wider range) is used. An empty prefix
    is no range at all. The range only narrows: the keys in it are matched one by one.
    """
    cut = min((i for i, c in enumerate(pattern) if c in GLOB_SPECIALS), default=len(pattern))
    prefix = pattern[:cut]
    if not prefix:
        return {}
    start = doc_id(prefix)
    stop = start
    while stop:
        successor = ord(stop[-1]) + 1
        if _orders_alike(successor):
            end = stop[:-1] + chr(successor)
            return {"startkey": start, "endkey": end, "inclusive_end": False}
        stop = stop[:-1]
    return {"startkey": start}


def _orders_alike(code: int) -> bool:
    """Whether a character ``code`` follows its predecessor in both code point and UTF-16
    order (not so across U+FFFF → U+10000, and no surrogate is a character)."""
    return (code <= 0xFFFF and not 0xD800 <= code <= 0xDFFF) or 0x10000 < code <= 0x10FFFF
