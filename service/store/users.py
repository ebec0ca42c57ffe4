"""Who a request to the embedded store comes from, as CouchDB's default handlers decide it.

The server admins (kept hashed in ``admins.json`` in the data directory: the one settee's
settings name, or the one made on the first start without one) and the users of ``_users``
log in with Basic auth or an ``AuthSession`` cookie made by ``/_session``. A request with no
credentials is anonymous, except to a store opened in-process without a gateway in front
(``local_admin``): whoever can open its files can read them, so there it acts as the server
admin.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from ..couch.errors import BadRequest, NotFound, Unauthorized
from ..credentials import session_cookie
from . import passwords, reads

USERS_DB = "_users"
USER_PREFIX = "org.couchdb.user:"
SESSION_TIMEOUT = 600  # seconds an AuthSession cookie is good for, as CouchDB's default
WRONG_PASSWORD = "Name or password is incorrect."


@dataclass(frozen=True, slots=True)
class UserCtx:
    """A request's user: ``name`` None for anonymous; ``how`` it logged in."""

    name: str | None = None
    roles: tuple[str, ...] = ()
    how: str | None = None

    @property
    def is_admin(self) -> bool:
        """A server admin."""
        return "_admin" in self.roles

    def as_json(self, db: str | None = None) -> dict[str, Any]:
        """The ``userCtx`` object of ``/_session`` and of validation functions."""
        shown: dict[str, Any] = {"db": db} if db is not None else {}
        return {**shown, "name": self.name, "roles": list(self.roles)}


ANONYMOUS = UserCtx()
LOCAL_ADMIN = UserCtx(None, ("_admin",), "local")


class Users:
    """The server admins, the cookie secret and the password checks of one data directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._admins_file = directory / "admins.json"
        self._admins: dict[str, Any] = {}
        self._admins_version: tuple[int, int, int] | None = None
        self._secret = _kept_secret(directory / "auth-secret")
        self.verifier = passwords.Verifier()

    def ensure_admin(self, wanted: tuple[str, str] | None) -> tuple[str, str] | None:
        """Make ``wanted`` a server admin (its password changed if it is one); with none
        wanted and none kept, make one: returned, to be shown once, as it is nowhere else."""
        admins = self._kept_admins()
        if wanted is not None:
            name, password = wanted
            record = admins.get(name)
            if not (isinstance(record, dict) and self.verifier.verify(password, record)):
                self.keep_admin(name, password)
            return None
        if admins:
            return None
        made = ("admin", secrets.token_urlsafe(12))
        self.keep_admin(*made)
        return made

    def keep_admin(self, name: str, password: str) -> None:
        """Add a server admin to ``admins.json`` (hashed), for every process and restart."""
        admins = {**self._kept_admins(), name: passwords.hashed(password)}
        partial = self._admins_file.with_name(f".admins.{os.getpid()}")
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            json.dump(admins, out)
        partial.replace(self._admins_file)

    def _kept_admins(self) -> dict[str, Any]:
        """``admins.json``, read again only when another process (or this) has replaced it."""
        try:
            stat = self._admins_file.stat()
        except FileNotFoundError:
            return {}
        version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if version != self._admins_version:
            admins = json.loads(self._admins_file.read_text())
            self._admins = admins if isinstance(admins, dict) else {}
            self._admins_version = version
        return self._admins

    def authenticate(
        self, headers: Mapping[str, str], find_user: Any, *, local_admin: bool
    ) -> tuple[UserCtx, str | None]:
        """The request's user, and a fresh ``Set-Cookie`` when its session cookie is aging.

        ``find_user(name)`` is the user document of ``name`` in ``_users``, or None. As in
        CouchDB, a session cookie is looked at first: one that is not one of ours is 400, an
        expired or forged one no login (Basic auth may still log in). Wrong Basic
        credentials are 401 whatever the request."""
        if cookie := session_cookie(headers.get("cookie", "")):
            user, fresh = self._from_cookie(cookie, find_user)
            if user.name is not None:
                return user, fresh
        authorization = headers.get("authorization", "")
        if authorization[:6].lower() == "basic " and (pair := _basic(authorization[6:])):
            logged_in = self.login(*pair, find_user)
            if logged_in is None:
                raise Unauthorized("unauthorized", WRONG_PASSWORD)
            return logged_in, None
        return (LOCAL_ADMIN if local_admin else ANONYMOUS), None

    def login(self, name: str, password: str, find_user: Any) -> UserCtx | None:
        """The user ``name`` if ``password`` is theirs, else None."""
        record = self._kept_admins().get(name)
        if isinstance(record, dict):
            ok = self.verifier.verify(password, record)
            return UserCtx(name, ("_admin",), "default") if ok else None
        doc = find_user(name)
        if doc is None or not self.verifier.verify(password, doc):
            return None
        return UserCtx(name, _roles(doc), "default")

    def cookie(self, user: UserCtx, find_user: Any, now: float | None = None) -> str:
        """The ``Set-Cookie`` value of a new session for ``user``."""
        assert user.name is not None
        stamp = f"{int(time.time() if now is None else now):X}"
        mac = self._mac(user.name, stamp, self._salt_of(user.name, find_user) or "")
        value = base64.urlsafe_b64encode(f"{user.name}:{stamp}:".encode() + mac).rstrip(b"=")
        return _set_cookie(value.decode(), SESSION_TIMEOUT)

    def _from_cookie(self, cookie: str, find_user: Any) -> tuple[UserCtx, str | None]:
        try:
            decoded = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
            name_bytes, stamp_bytes, mac = decoded.split(b":", 2)
            name, stamp = name_bytes.decode(), stamp_bytes.decode()
            issued = int(stamp, 16)
        except ValueError:  # binascii.Error among them
            raise BadRequest(
                "bad_request", "Malformed AuthSession cookie. Please clear your cookies."
            ) from None
        now = time.time()
        salt = self._salt_of(name, find_user)
        if salt is None or now > issued + SESSION_TIMEOUT:
            return ANONYMOUS, None
        if not hmac.compare_digest(mac, self._mac(name, stamp, salt)):
            return ANONYMOUS, None
        if name in self._kept_admins():
            user = UserCtx(name, ("_admin",), "cookie")
        else:
            user = UserCtx(name, _roles(find_user(name) or {}), "cookie")
        fresh = self.cookie(user, find_user, now) if now > issued + SESSION_TIMEOUT / 10 else None
        return user, fresh

    def _salt_of(self, name: str, find_user: Any) -> str | None:
        """What a session cookie's MAC is keyed with besides the secret: the user's salt, so
        that a new password ends the sessions of the old one."""
        record = self._kept_admins().get(name)
        if isinstance(record, dict):
            return str(record.get("salt"))
        doc = find_user(name)
        return str(doc.get("salt")) if doc is not None else None

    def _mac(self, name: str, stamp: str, salt: str) -> bytes:
        key = self._secret + salt.encode()
        return hmac.new(key, f"{name}:{stamp}".encode(), hashlib.sha256).digest()


def ended_session_cookie() -> str:
    """The ``Set-Cookie`` value that ends a session (CouchDB's, word for word)."""
    return _set_cookie("", SESSION_TIMEOUT)


def _set_cookie(value: str, max_age: int) -> str:
    expires = formatdate(time.time() + max_age, usegmt=True)
    return f"AuthSession={value}; Version=1; Expires={expires}; Max-Age={max_age}; Path=/; HttpOnly"


def _basic(token: str) -> tuple[str, str] | None:
    """Name and password of a Basic ``Authorization``; None without a colon (no login, as
    CouchDB reads it)."""
    try:
        text = base64.b64decode(token.strip(), validate=True).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text
        raise BadRequest("bad_request", "Authorization header has invalid base64 value") from None
    name, colon, password = text.partition(":")
    return (name, password) if colon else None


def _roles(doc: Mapping[str, Any]) -> tuple[str, ...]:
    roles = doc.get("roles")
    return tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ()


def _kept_secret(path: Path) -> bytes:
    """The key of session cookies: made once, shared by every process on the directory."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        value = secrets.token_hex(32)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(value + "\n")
        with contextlib.suppress(FileExistsError):  # the first process's wins; others read it
            os.link(partial, path)
        partial.unlink()
        return bytes.fromhex(path.read_text().strip())


def user_doc_of(store: Any, name: str) -> dict[str, Any] | None:
    """The live user document of ``name`` in ``_users``, if there is one."""
    if not store.has(USERS_DB):
        return None
    try:
        doc = store.read(
            USERS_DB,
            lambda conn: reads.document(conn, USER_PREFIX + name, None, reads.DocOptions()),
        )
    except NotFound:
        return None
    return doc if isinstance(doc, dict) else None
