"""Shelves over CouchDB: the standard library's ``shelve`` API, and PickleShare's.

    from service import shelf

    with shelf.open("http://user:secret@127.0.0.1:5984/things") as d:
        d["answer"] = {"value": 42}
        print(d["answer"], len(d), list(d.items()))

``open(target, flag="c", writeback=False, raiseconflicts=False, format="pickle")`` returns
a ``Shelf`` (couchshelve's API); ``PickleShareDB(target)`` adds globs, hashed categories,
``waitget`` and links. A target is a ``service.couch`` Database, a database URL or a local
path (a database of the embedded store, no server). Blocking: they are mappings.

Pickled values run code when read: open a pickle shelf only on a database whose writers you
trust; ``format="json"`` stores JSON that any program may read and write.
"""

from .errors import ConflictError, FormatError, ReadOnlyError
from .pickleshare import Link, PickleShareDB
from .shelf import Shelf, open

__all__ = [
    "ConflictError",
    "FormatError",
    "Link",
    "PickleShareDB",
    "ReadOnlyError",
    "Shelf",
    "open",
]
