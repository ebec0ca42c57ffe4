"""Value formats, transcoders, and how a value and its metadata live in a CouchDB document.

A key is a document whose ``_id`` is the key; its ``_rev`` is the key's cas. The metadata is
one field, ``"~kv"`` (CouchDB reserves names that start with ``_``):

- ``flags``: the value's format (``FMT_JSON`` when the field is absent);
- ``expires``: Unix time after which the key is gone (absent: never);
- ``locked``: Unix time until which the key is locked (absent: not locked).

The value itself is stored where it is most useful:

- a JSON object (``FMT_JSON``, a dict) *is* the document: its fields are the document's, so
  views see them as CouchDB clients expect (``emit(doc.name)``). A document written by any
  other client reads as such a value. Its keys must not start with ``_`` nor be ``"~kv"``.
- any other JSON value, and ``FMT_UTF8`` text, is ``"~kv".value``;
- bytes (``FMT_BYTES``, ``FMT_PICKLE``, and whatever a custom transcoder makes) are
  ``"~kv".base64``: inline base64, not an attachment, so that a value and its metadata are one
  revision, written by one request and read by one (``_all_docs`` with ``include_docs`` carries
  it; attachments would need a second request or ``attachments=true`` per read, and would be
  stubs in view rows). The price is a third more bytes, small for key-value sized values.

With a custom transcoder every value is its bytes (``encode_value``), and every value read,
whichever way it was stored, is handed to ``decode_value`` as bytes with its flags.
"""

from __future__ import annotations

import base64
import binascii
import json
import pickle
from collections.abc import Mapping
from typing import Any

from service.couch.errors import BadRequest
from service.couch.protocol import encode_json

from .errors import ValueFormatError

FMT_JSON = 0x0
FMT_PICKLE = 0x1
FMT_BYTES = 0x2
FMT_UTF8 = 0x4
FMT_MASK = 0x7
FMT_AUTO = -1
"""Never stored: a value given with it is stored as FMT_UTF8 (str), FMT_BYTES (bytes),
FMT_JSON (dict, list, tuple, number, bool, None) or FMT_PICKLE (anything else)."""

META = "~kv"
BYTES_TYPES = (bytes, bytearray, memoryview)


def resolve(value: Any, fmt: int) -> int:
    """The format ``fmt`` stands for, FMT_AUTO decided by the value's type."""
    if fmt != FMT_AUTO:
        return fmt
    if isinstance(value, str):
        return FMT_UTF8
    if isinstance(value, BYTES_TYPES):
        return FMT_BYTES
    if value is None or isinstance(value, dict | list | tuple | int | float):
        return FMT_JSON
    return FMT_PICKLE


class Transcoder:
    """Turns values into bytes and back, by flags: subclass it for a format of your own.

    ``encode_value(value, format)`` returns ``(bytes, flags)``; ``decode_value(bytes,
    flags)`` the value. This base class does the four built-in formats, so a subclass can
    add a layer (compression, say, under a flag bit above ``FMT_MASK``) and call it.
    """

    def encode_value(self, value: Any, format: int) -> tuple[bytes, int]:
        fmt = resolve(value, format)
        try:
            if fmt == FMT_JSON:
                return encode_json(value), fmt
            if fmt == FMT_UTF8:
                return value.encode(), fmt
            if fmt == FMT_BYTES:
                return bytes(value), fmt
            if fmt == FMT_PICKLE:
                return pickle.dumps(value), fmt
        except (AttributeError, TypeError, BadRequest, pickle.PicklingError) as exc:
            raise ValueFormatError(f"cannot encode {type(value).__name__} as {fmt:#x}") from exc
        raise ValueFormatError(f"unknown format {format!r}")

    def decode_value(self, data: bytes, flags: int) -> Any:
        fmt = flags & FMT_MASK
        try:
            if fmt == FMT_JSON:
                return json.loads(data)
            if fmt == FMT_UTF8:
                return data.decode()
            if fmt == FMT_BYTES:
                return bytes(data)
            if fmt == FMT_PICKLE:
                return pickle.loads(data)
        except (ValueError, pickle.UnpicklingError, EOFError) as exc:
            raise ValueFormatError(f"cannot decode a value of flags {flags:#x}") from exc
        raise ValueFormatError(f"unknown flags {flags:#x}")


def stored(value: Any, fmt: int, transcoder: Transcoder | None) -> tuple[dict[str, Any], int]:
    """The fields a document holds for ``value`` (``"~kv"`` among them), and its flags.

    Raises ValueFormatError, before any request, for a value its format cannot hold.
    """
    if transcoder is not None:
        data, flags = transcoder.encode_value(value, fmt)
        if not isinstance(data, BYTES_TYPES) or not isinstance(flags, int):
            raise ValueFormatError("a transcoder must return (bytes, int flags)")
        return {META: {"flags": flags, "base64": _b64(data)}}, flags
    fmt = resolve(value, fmt)
    if fmt == FMT_JSON and isinstance(value, dict):
        _check_fields(value)
        return {**value, META: {}}, fmt
    if fmt == FMT_JSON:
        _check_json(value)
        return {META: {"value": value}}, fmt
    if fmt == FMT_UTF8:
        if not isinstance(value, str):
            raise ValueFormatError(f"FMT_UTF8 takes str, not {type(value).__name__}")
        _check_json(value)  # a lone surrogate has no UTF-8
        return {META: {"flags": fmt, "value": value}}, fmt
    data, flags = Transcoder().encode_value(value, fmt)
    return {META: {"flags": flags, "base64": _b64(data)}}, flags


def _b64(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_json(value: Any) -> None:
    try:
        encode_json(value)
    except BadRequest as exc:
        raise ValueFormatError(f"not JSON: {exc.reason}") from exc


def _check_fields(value: Mapping[Any, Any]) -> None:
    for name in value:
        if not isinstance(name, str) or name.startswith("_") or name == META:
            raise ValueFormatError(
                f"a JSON object stored as a document cannot have a field named {name!r}"
            )
    _check_json(value)


def meta(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``"~kv"`` metadata of a document ({} for one written by another client)."""
    found = doc.get(META)
    return found if isinstance(found, Mapping) else {}


def flags_of(doc: Mapping[str, Any]) -> int:
    flags = meta(doc).get("flags", FMT_JSON)
    return flags if isinstance(flags, int) else FMT_JSON


def value_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document's own fields: the value of a JSON object stored as the document."""
    return {k: v for k, v in doc.items() if not k.startswith("_") and k != META}


def raw(doc: Mapping[str, Any]) -> tuple[Any, bytes | None]:
    """What a document holds as its value: ``(native value, None)`` or ``(None, bytes)``."""
    info = meta(doc)
    if "base64" in info:
        try:
            return None, base64.b64decode(info["base64"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise ValueFormatError("the stored base64 is malformed") from exc
    if "value" in info:
        return info["value"], None
    return value_fields(doc), None


def decode(doc: Mapping[str, Any], transcoder: Transcoder | None) -> Any:
    """The value a document holds, decoded by its flags."""
    flags = flags_of(doc)
    native, data = raw(doc)
    if data is None:
        if transcoder is None:
            return native
        data = native.encode() if flags == FMT_UTF8 else encode_json(native)
    return (transcoder or Transcoder()).decode_value(data, flags)
