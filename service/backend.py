"""What kind of server settee fronts: CouchDB, pouchdb-server, which differs in places, or
its own embedded store (CouchDB's answers, without what is not built yet: views, Mango).

The handlers ask where the two differ (filters, seqs); the answer is cached per client,
since a server does not change kind while settee runs.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from .couch import Couch

COUCHDB = "couchdb"
POUCHDB = "pouchdb-server"
EMBEDDED = "embedded"

_kinds: WeakKeyDictionary[Couch, str] = WeakKeyDictionary()


def backend_of(welcome: dict[str, Any]) -> dict[str, Any]:
    """The kind and version of the backend, from its welcome document."""
    if (welcome.get("vendor") or {}).get("embedded"):
        kind = EMBEDDED
    else:
        kind = COUCHDB if "couchdb" in welcome else POUCHDB
    return {"kind": kind, "version": welcome.get("version")}


async def kind_of(couch: Couch) -> str:
    """``couchdb``, ``pouchdb-server`` or ``embedded``, asked once per ``couch``."""
    if (kind := _kinds.get(couch)) is None:
        kind = _kinds[couch] = backend_of(await couch.info())["kind"]
    return kind
