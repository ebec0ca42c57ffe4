"""How a shelf's values are stored in its documents: pickled (the default) or as JSON.

``pickle``: ``{"_id": …, "pickle": "<base64 of the pickle>"}``, any picklable object.
Unpickling runs whatever code the pickle names, so a pickle shelf must only be opened on a
database whose writers are trusted. ``json``: ``{"_id": …, "value": <the value>}``, for data
other programs read and write; a JSON value comes back as JSON gives it (tuples as lists,
dict keys as strings), and a value JSON cannot hold is refused before any request. A pickle
shelf reads a JSON document's value too (that runs no code); a JSON shelf never unpickles.
"""

from __future__ import annotations

import base64
import binascii
import pickle
from collections.abc import Mapping
from typing import Any

from ..couch.protocol import encode_json


class FormatError(ValueError):
    """A document holds no value in the shelf's format (a document some other program
    wrote, or a pickle a JSON shelf will not run)."""


class JsonFormat:
    """JSON: the value is the document's ``value`` field."""

    name = "json"
    field = "value"

    def encode(self, value: Any) -> Any:
        """The field's content for ``value``; ValueError if the format cannot hold it."""
        try:
            encode_json(value)
        except ValueError as exc:
            raise ValueError(f"not a JSON value: {exc}") from None
        return value

    def decode(self, doc: Mapping[str, Any], key: str) -> Any:
        if "value" not in doc:
            raise FormatError(f"key {key!r}: its document holds no JSON 'value'")
        return plain(doc["value"])


class PickleFormat(JsonFormat):
    """Pickle: the document's ``pickle`` field is the base64 of the pickled value."""

    name = "pickle"
    field = "pickle"

    def encode(self, value: Any) -> Any:
        try:
            data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise pickle.PicklingError(f"cannot pickle {type(value).__name__}: {exc}") from exc
        return base64.b64encode(data).decode("ascii")

    def decode(self, doc: Mapping[str, Any], key: str) -> Any:
        text = doc.get("pickle")
        if text is None:
            return super().decode(doc, key)
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise FormatError(f"key {key!r}: its 'pickle' is not base64") from exc
        return pickle.loads(data)


FORMATS: dict[str, JsonFormat] = {"pickle": PickleFormat(), "json": JsonFormat()}


def get_format(name: object) -> JsonFormat:
    try:
        return FORMATS[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(f"format must be one of {sorted(FORMATS)}, not {name!r}") from None


def plain(value: Any) -> Any:
    """A decoded JSON value with plain dicts (the client decodes objects as Documents)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
