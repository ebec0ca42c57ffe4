"""What a write of one document must pass besides its rev, as CouchDB checks it.

A design document is a database admin's to write. Every other document goes through each
``validate_doc_update`` function of the database's design documents, called as CouchDB calls
it (``newDoc, oldDoc, userCtx, secObj``); what one throws refuses the write: ``{forbidden:
…}`` with 403, ``{unauthorized: …}`` with 401, anything else with 500. ``_users`` has its
own rules (CouchDB's ``_design/_auth``), and its ``password`` fields are hashed on the way in;
``_replicator`` has its own too (``replicator``).
``_local`` documents pass unchecked, as in CouchDB. Replicated writes are checked too.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping
from typing import Any

from ..couch.errors import Forbidden, HTTPError, NotFound, Unauthorized
from ..couch.protocol import decode_json
from . import access, inline, passwords, reads, replicator
from .call import Call
from .js import Functions
from .replicator import REPLICATOR_DB
from .users import USER_PREFIX, USERS_DB

DESIGN_RANGE = ("_design/", "_design0")


class Refused(HTTPError):
    """A validation function's refusal that is neither ``forbidden`` nor ``unauthorized``."""

    status = 500


class Guard:
    """The checks of one request's document writes, for the request's user."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self._security: dict[str, Any] | None = None
        self._validators: list[Functions] | None = None

    def security(self) -> dict[str, Any]:
        if self._security is None:
            self._security = self.call.store.read(self.call.db, access.security_of)
        return self._security

    def admit(self, doc_id: str, doc: dict[str, Any], base: str | None) -> dict[str, Any]:
        """``doc`` as it may be written over revision ``base`` (None: the winner); raises the
        refusal otherwise. ``_users`` documents come back with their password hashed."""
        user = self.call.user
        if doc_id.startswith("_local/"):
            return doc
        if doc_id.startswith("_design/"):
            if not user.is_admin:
                access.db_admin(user, self.security())
            return doc
        if self.call.db == USERS_DB:
            doc = _hash_password(doc)
        if self.call.db == REPLICATOR_DB:
            doc = replicator.admitted(doc, user)
        validators = self._functions()
        if not validators and self.call.db != USERS_DB:
            return doc
        new = {**doc, "_id": doc_id}
        old = self._old(doc_id, base)
        security = self.security()
        if self.call.db == USERS_DB:
            _users_rules(new, old, user, security)
        context = user.as_json(self.call.db)
        if validators:
            inline.slow_work_ahead()  # JavaScript, up to its timeout
        for functions in validators:
            refusal = functions.validate(0, new, old, context, security)
            if refusal is not None:
                _refuse(*refusal)
        return doc

    def admit_attachment(
        self, doc_id: str, base: str | None, name: str, added: dict[str, Any] | None
    ) -> None:
        """Whether the document may gain attachment ``name`` (``added``: its content type and
        length) or, ``added`` None, lose it: the validation functions see the document as
        it would be, its attachments as stubs."""
        old = self._old(doc_id, base) if base is not None else None
        current = dict(old or {})
        stubs = {n: {**a, "stub": True} for n, a in (current.get("_attachments") or {}).items()}
        if added is None:
            stubs.pop(name, None)
        else:
            stubs[name] = {**added, "stub": True}
        self.admit(doc_id, {**current, "_attachments": stubs}, base)

    def _old(self, doc_id: str, base: str | None) -> dict[str, Any] | None:
        try:
            return self.call.store.read(
                self.call.db, lambda conn: reads.document(conn, doc_id, base, reads.DocOptions())
            )
        except NotFound:
            return None

    def _functions(self) -> list[Functions]:
        if self._validators is None:
            found = self.call.store.read(self.call.db, _validators)
            database = self.call.store.database(self.call.db)
            self._validators = [
                database.function(
                    f"validate:{ddoc_id}@{rev}",
                    functools.partial(Functions, [], [], [], [source], ddoc),
                )
                for ddoc_id, rev, ddoc, source in found
            ]
        return self._validators


def _validators(conn: sqlite3.Connection) -> list[tuple[str, str, dict[str, Any], str]]:
    """The live design documents that have a ``validate_doc_update`` function: each one's id,
    rev and body, and the function. The function is compiled per revision of its design
    document, not per source: it may ``require()`` the document's modules, as in CouchDB."""
    rows = conn.execute(
        "SELECT d.id, d.rev, r.body FROM docs d JOIN revs r ON r.doc = d.id AND r.rev = d.rev"
        " WHERE d.id >= ? AND d.id < ? AND d.deleted = 0",
        DESIGN_RANGE,
    )
    found = []
    for ddoc_id, rev, body in rows:
        ddoc = decode_json(body) if body else {}
        source = ddoc.get("validate_doc_update")
        if isinstance(source, str) and source.strip():
            found.append((ddoc_id, rev, ddoc, source))
    return found


def _refuse(error: str, reason: Any) -> None:
    if error == "forbidden":
        raise Forbidden("forbidden", reason)
    if error == "unauthorized":
        raise Unauthorized("unauthorized", reason)
    raise Refused(error, reason)


def _hash_password(doc: dict[str, Any]) -> dict[str, Any]:
    """A user document with ``password`` replaced by its PBKDF2 fields."""
    password = doc.get("password")
    if not isinstance(password, str) or doc.get("_deleted"):
        return doc
    kept = {k: v for k, v in doc.items() if k not in ("password", "password_sha", "salt")}
    return {**kept, **passwords.hashed(password)}


def _users_rules(
    new: Mapping[str, Any], old: Mapping[str, Any] | None, user: Any, sec: Any
) -> None:
    """CouchDB's ``_design/_auth`` validation of ``_users`` documents, in Python."""
    if new.get("_deleted") is True:
        if user.is_admin or (old is not None and user.name == old.get("name")):
            return
        raise Forbidden("forbidden", "Only admins may delete other user docs.")
    name, roles = new.get("name"), new.get("roles")
    if new.get("type") != "user":
        raise Forbidden("forbidden", "doc.type must be user")
    if not name:
        raise Forbidden("forbidden", "doc.name is required")
    if roles is None:
        raise Forbidden("forbidden", "doc.roles must exist")
    if not isinstance(roles, list):
        raise Forbidden("forbidden", "doc.roles must be an array")
    if not all(isinstance(role, str) for role in roles):
        raise Forbidden("forbidden", "doc.roles can only contain strings")
    if not isinstance(name, str) or new.get("_id") != USER_PREFIX + name:
        raise Forbidden("forbidden", "Doc ID must be of the form org.couchdb.user:name")
    if old is not None and old.get("name") != name:
        raise Forbidden("forbidden", "Usernames can not be changed.")
    scheme = new.get("password_scheme")
    if scheme and scheme not in ("simple", "pbkdf2"):
        raise Forbidden("forbidden", f"Password scheme `{scheme}` not supported.")
    if scheme == "pbkdf2" and not isinstance(new.get("iterations"), int | float):
        raise Forbidden("forbidden", "iterations must be a number.")
    if scheme == "pbkdf2" and not isinstance(new.get("derived_key"), str):
        raise Forbidden("forbidden", "derived_key must be a string.")
    if not access.is_db_admin(user, sec):
        if old is not None:
            if user.name != name:
                raise Forbidden("forbidden", "You may only update your own user document.")
            if sorted(old.get("roles") or []) != sorted(roles):
                raise Forbidden("forbidden", "Only _admin may edit roles")
        elif roles:
            raise Forbidden("forbidden", "Only _admin may set roles")
    if any(role != "_metrics" and role.startswith("_") for role in roles):
        raise Forbidden("forbidden", "No system roles (starting with underscore) in users db.")
    if name.startswith("_"):
        raise Forbidden("forbidden", "Username may not start with underscore.")
    if ":" in name:
        raise Forbidden("forbidden", "Character `:` is not allowed in usernames.")
