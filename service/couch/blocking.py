"""The blocking face: the same Couch and Database, returning results instead of awaitables.

For scripts, threads and the shelve-style APIs: no event loop is needed in the caller, and
the calls work beside a running loop too. ``changes(feed="continuous")`` follows the feed in
a thread of its own; ``iterview`` returns a plain iterator.
"""

from __future__ import annotations

from . import client
from .runner import BlockingRunner


class Couch(client.Blocking, client.Couch):
    __doc__ = client.Couch.__doc__
    runner_class = BlockingRunner

    def __enter__(self) -> Couch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Database(client.Blocking, client.Database):
    __doc__ = client.Database.__doc__
    couch_class = Couch

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


Couch.database_class = Database

__all__ = ["Couch", "Database"]
