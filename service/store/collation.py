"""CouchDB's view collation as bytes: ``sort_key(a) < sort_key(b)`` exactly when CouchDB sorts
``a`` before ``b``, so that an index ordered by SQLite's byte comparison is in view order.

The order: null < false < true < numbers (by value) < strings < arrays (element by element, a
prefix first) < objects (pair by pair, keys then values, in the object's own order; fewer
pairs first). Strings compare by the Unicode Collation Algorithm (``pyuca``, pure Python, its
default table: Unicode 9.0's DUCET), which CouchDB's ICU root collation follows apart from a
few tailorings of rarely used characters; ``COLLATOR`` names the table, and an index built
with another is rebuilt.

Each value is a tag byte and a body whose encoding no other body of the same tag begins with,
so that composite keys compare element by element. ``END`` closes an array or an object and
sorts below every tag.
"""

from __future__ import annotations

import functools
import math
import struct
from typing import Any

import pyuca

COLLATOR = "pyuca-" + pyuca.Collator.__name__


@functools.cache
def _collator() -> Any:
    """The UCA table, read on first use (0.15 s, ~10 MB), not when settee starts."""
    return pyuca.Collator()


END = b"\x00"
NULL, FALSE, TRUE, NUMBER, STRING, ARRAY, OBJECT = (bytes([tag]) for tag in range(1, 8))


def sort_key(value: Any) -> bytes:
    """The bytes that sort ``value`` (a JSON value) in CouchDB's view order."""
    return b"".join(_parts(value))


def _parts(value: Any) -> Any:
    if value is None:
        yield NULL
    elif value is False:
        yield FALSE
    elif value is True:
        yield TRUE
    elif isinstance(value, int | float):
        yield NUMBER + _number(value)
    elif isinstance(value, str):
        yield STRING + string_key(value)
    elif isinstance(value, list):
        yield ARRAY
        for item in value:
            yield from _parts(item)
        yield END
    elif isinstance(value, dict):
        yield OBJECT
        for name, item in value.items():
            yield STRING + string_key(name)
            yield from _parts(item)
        yield END
    else:
        raise TypeError(f"not a JSON value: {type(value).__name__}")


def _number(value: float) -> bytes:
    """Eight bytes in numeric order: IEEE 754 with the sign bit flipped (all bits, if
    negative). ``-0.0`` is ``0``; integers past 2**53 lose their last digits here, not in
    the row's key."""
    number = float(value) + 0.0
    if math.isnan(number):
        raise ValueError("NaN is not JSON")
    (bits,) = struct.unpack(">Q", struct.pack(">d", number))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | 1 << 63
    return struct.pack(">Q", bits)


@functools.lru_cache(maxsize=65536)
def string_key(text: str) -> bytes:
    """The UCA sort key of ``text``, two bytes a weight. The key's level separators (0) and
    its final one make keys of different strings differ before either ends."""
    weights = _collator().sort_key(text)
    return struct.pack(f">{len(weights)}H", *weights)


def term_key(value: Any) -> bytes:
    """The bytes that sort ``value`` as Erlang orders CouchDB's terms for it: numbers <
    atoms (false < null < true) < objects < arrays < strings (by their UTF-8 bytes).

    CouchDB orders a document's rows that share a key by their values this way (its view
    rows are Erlang terms, compared raw once key and doc id tie)."""
    return b"".join(_term_parts(value))


def _term_parts(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        yield b"\x02" + {False: b"f", None: b"n", True: b"t"}[value]
    elif isinstance(value, int | float):
        yield b"\x01" + _number(value)
    elif isinstance(value, dict):
        yield b"\x03"
        for name, item in value.items():
            yield _binary(name)
            yield from _term_parts(item)
        yield END
    elif isinstance(value, list):
        yield b"\x04"
        for item in value:
            yield from _term_parts(item)
        yield END
    elif isinstance(value, str):
        yield b"\x05" + _binary(value)
    else:
        raise TypeError(f"not a JSON value: {type(value).__name__}")


def _binary(text: str) -> bytes:
    """UTF-8, a 0 byte escaped as 0 255, ended by 0 0: byte order, and no prefix of another."""
    return text.encode().replace(b"\x00", b"\x00\xff") + b"\x00\x00"
