"""What the seed APIs (shelf, session, kv) accept as "a database", turned into a Database.

A target is one of:

- a ``Database`` of either face (``service.couch`` or ``service.couch.blocking``);
- a database URL, ``http://user:secret@host:5984/name`` (or ``embedded:/dir/name``);
- a local path, ``/dir/name`` or a ``pathlib.Path``: database ``name`` of the embedded store
  whose data directory is ``/dir``, opened in this process, with no server.

A Database given is used as it is when it has the face asked for; otherwise a handle of the
other face is made on the same server with the same credentials (closed with the handle).
"""

from __future__ import annotations

import os
from typing import TypeAlias

from . import blocking, client
from .transport import EMBEDDED

Target: TypeAlias = "client.Database | str | os.PathLike[str]"


def blocking_database(target: Target) -> blocking.Database:
    """``target`` as a blocking Database."""
    if isinstance(target, blocking.Database):
        return target
    return _database(target, blocking.Couch)  # type: ignore[return-value]


def async_database(target: Target) -> client.Database:
    """``target`` as an async Database (its operations return awaitables)."""
    if isinstance(target, client.Database) and not isinstance(target, blocking.Database):
        return target
    return _database(target, client.Couch)


def _database(target: Target, couch_class: type[client.Couch]) -> client.Database:
    if isinstance(target, client.Database):
        endpoint = target.couch.endpoint
        couch = couch_class(
            ",".join(endpoint.urls),
            endpoint.auth,
            timeout=endpoint.timeout,
            connect_timeout=endpoint.connect_timeout,
            max_connections=endpoint.max_connections,
            idle_timeout=endpoint.idle_timeout,
            local_admin=endpoint.local_admin,
            cluster=endpoint.cluster if couch_class is client.Couch else None,
        )
        return couch.database_class(target.name, couch=couch, owns_couch=True)
    return couch_class.database_class(database_url(target))


def database_url(target: str | os.PathLike[str]) -> str:
    """The URL of a target given as a URL or a local path (see the module's docstring)."""
    if isinstance(target, str) and ("://" in target or target.startswith(EMBEDDED)):
        return target
    directory, name = os.path.split(os.path.abspath(os.fspath(target)))
    return f"{EMBEDDED}{directory}/{name}"
