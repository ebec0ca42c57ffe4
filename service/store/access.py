"""Who may do what to the embedded store: CouchDB 3's rules, answered in CouchDB's words.

A database's ``_security`` names its admins and members (names and roles). Members read and
write its documents; with no members named at all, everyone is one. Database admins also
write design documents, ``_security`` and the database's settings, and compact it. Server
admins do everything, alone create and delete databases, list them, and read ``_users``
whole. New databases are the server admins' alone (CouchDB 3's ``admin_only`` default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..couch.errors import Forbidden, Unauthorized
from ..couch.protocol import decode_json
from . import edits
from .replicator import REPLICATOR_DB
from .users import USER_PREFIX, USERS_DB, UserCtx

ADMIN_ONLY = {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}
# Maintenance a database admin may ask for; CouchDB refuses it with a 401 whoever asks.
MAINTENANCE = {"_compact", "_view_cleanup", "_purge"}
# What a database's settings are; their reads are a member's, their writes an admin's.
SETTINGS = {"_security", "_revs_limit", "_purged_infos_limit"}
# What of ``_users`` is for server admins only: the list of every user.
WHOLE_USERS_DB = {"_all_docs", "_changes", "_find", "_explain", "_bulk_get", "_design_docs"}
# And of ``_replicator``: the list of every replication (its documents are read one by one).
WHOLE_REPLICATOR_DB = {"_all_docs", "_changes"}


def security_of(conn: Any) -> dict[str, Any]:
    """A database's ``_security`` object."""
    value = decode_json(edits.meta(conn, "security", "{}"))
    return value if isinstance(value, dict) else {}


def server_admin(user: UserCtx) -> None:
    if not user.is_admin:
        raise Unauthorized("unauthorized", "You are not a server admin.")


def authenticated(user: UserCtx) -> None:
    if user.name is None and not user.is_admin:
        raise Unauthorized("unauthorized", "You are not an authenticated user")


def _names_and_roles(security: Mapping[str, Any], part: str) -> tuple[list[Any], list[Any]]:
    section = security.get(part)
    if not isinstance(section, dict):
        return [], []
    names, roles = section.get("names"), section.get("roles")
    return (
        names if isinstance(names, list) else [],
        roles if isinstance(roles, list) else [],
    )


def _named(user: UserCtx, names: list[Any], roles: list[Any]) -> bool:
    return (user.name is not None and user.name in names) or any(r in roles for r in user.roles)


def is_db_admin(user: UserCtx, security: Mapping[str, Any]) -> bool:
    return user.is_admin or _named(user, *_names_and_roles(security, "admins"))


def is_member(user: UserCtx, security: Mapping[str, Any]) -> bool:
    names, roles = _names_and_roles(security, "members")
    return is_db_admin(user, security) or not (names or roles) or _named(user, names, roles)


def reader(user: UserCtx, security: Mapping[str, Any]) -> None:
    """A member's right: 401 to the anonymous, 403 to anyone else who is not one."""
    if is_member(user, security):
        return
    if user.name is None:
        raise Unauthorized("unauthorized", "You are not authorized to access this db.")
    raise Forbidden("forbidden", "You are not allowed to access this db.")


def db_admin(user: UserCtx, security: Mapping[str, Any]) -> None:
    """A database admin's right, after a member's (CouchDB asks in that order)."""
    reader(user, security)
    if not is_db_admin(user, security):
        error = Unauthorized if user.name is None else Forbidden
        raise error(error.__name__.lower(), "You are not a db or server admin.")


def check(
    user: UserCtx, security: Mapping[str, Any], db: str, method: str, rest: list[str]
) -> None:
    """Whether ``user`` may make this request of database ``db`` (``rest``: the path below
    it). Each write of a document is checked again with the document (``validation``)."""
    first = rest[0] if rest else ""
    if first in MAINTENANCE:
        if not is_db_admin(user, security):
            raise Unauthorized("unauthorized", "You are not a server or db admin.")
        return
    reading = method in ("GET", "HEAD")
    if first in SETTINGS or (first == "_index" and not reading):
        (reader if reading else db_admin)(user, security)
        return
    if db == USERS_DB and first in WHOLE_USERS_DB:
        server_admin(user)
    if db == REPLICATOR_DB and first in WHOLE_REPLICATOR_DB:
        server_admin(user)
    reader(user, security)
    if db != USERS_DB:
        return
    others = first.startswith(USER_PREFIX) and (
        user.name is None or first != USER_PREFIX + user.name
    )
    if reading and others and not is_db_admin(user, security):
        raise Forbidden("forbidden", "You may only read your own user document.")
