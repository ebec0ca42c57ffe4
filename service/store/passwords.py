"""Passwords as CouchDB 3.4 keeps them: PBKDF2-SHA256, 600,000 iterations, a random salt.

A record is the password fields of a user document (``password_scheme``, ``pbkdf2_prf``,
``salt``, ``iterations``, ``derived_key``; or the ``simple`` scheme's ``password_sha`` of
users replicated from an old CouchDB), so a user database replicated from CouchDB logs in
here with the same passwords, and the other way round.

One check costs ~0.2 s of CPU by design. ``Verifier`` remembers, for each record, a keyed
digest of the last password that matched it (as CouchDB's ``couch_passwords_cache`` does), so
Basic auth on every request does not pay it again; a changed password or salt is a new record.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from . import inline

ITERATIONS = 600_000
PRF = "sha256"
PRFS = {
    "sha": "sha1",
    "sha224": "sha224",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
}
REMEMBERED = 10_000  # records whose last good password is remembered


def hashed(password: str, iterations: int = ITERATIONS) -> dict[str, Any]:
    """The fields a user document keeps instead of ``password``."""
    inline.slow_work_ahead()
    salt = secrets.token_hex(16)
    key = hashlib.pbkdf2_hmac(PRF, password.encode(), salt.encode(), iterations)
    return {
        "password_scheme": "pbkdf2",
        "pbkdf2_prf": PRF,
        "salt": salt,
        "iterations": iterations,
        "derived_key": key.hex(),
    }


def matches(password: str, record: Mapping[str, Any]) -> bool:
    """Whether ``password`` is the one ``record`` was made from (False for a bad record)."""
    salt = record.get("salt")
    if not isinstance(salt, str):
        return False
    if record.get("password_scheme", "simple") == "simple":
        expected = record.get("password_sha")
        actual = hashlib.sha1((password + salt).encode()).hexdigest()
    else:
        expected, iterations = record.get("derived_key"), record.get("iterations")
        digest = PRFS.get(record.get("pbkdf2_prf", "sha"))
        if not isinstance(iterations, int) or not 0 < iterations <= 10_000_000 or not digest:
            return False
        actual = hashlib.pbkdf2_hmac(digest, password.encode(), salt.encode(), iterations).hex()
    return isinstance(expected, str) and hmac.compare_digest(actual, expected.lower())


class Verifier:
    """``matches`` that pays the hash once per record and password, not once per request."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)  # the remembered digests mean nothing elsewhere
        self._known: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, password: str, record: Mapping[str, Any]) -> bool:
        fields = ("password_scheme", "pbkdf2_prf", "salt", "iterations", "derived_key")
        which = tuple(str(record.get(name)) for name in (*fields, "password_sha"))
        tag = hmac.new(self._key, password.encode(), hashlib.sha256).digest()
        with self._lock:
            known = self._known.get(which)
        if known is not None and hmac.compare_digest(known, tag):
            return True
        inline.slow_work_ahead()
        if not matches(password, record):
            return False
        with self._lock:
            self._known[which] = tag
            self._known.move_to_end(which)
            while len(self._known) > REMEMBERED:
                self._known.popitem(last=False)
        return True
