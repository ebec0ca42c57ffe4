"""JSON values as Erlang prints them in CouchDB's error reasons (``"ab"`` → ``<<97,98>>``,
``{"a": 1}`` → ``{[{<<97>>,1}]}``), so the store's reasons read as CouchDB's."""

from __future__ import annotations

import json
from typing import Any


def term(value: Any) -> str:
    """``value`` as Erlang's ``~w`` prints its EJSON."""
    if isinstance(value, str):
        return "<<" + ",".join(str(b) for b in value.encode()) + ">>"
    if isinstance(value, list):
        return "[" + ",".join(term(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{[" + ",".join("{" + term(k) + "," + term(v) + "}" for k, v in value.items()) + "]}"
    return json.dumps(value)
