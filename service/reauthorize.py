"""Changes subscribers checked again while they stay connected, each with its own rights.

A subscriber is authorized with its own credentials before it joins a shared feed; its
rights may be taken away later (removed from ``_security``, its user deleted, its session
ended). Every ``interval`` seconds, and at once when a database's ``_security`` is written
through settee, each database is read again with each distinct set of credentials that
subscribes to it, however many subscribers share them; the subscriptions of a set that may
no longer read are closed (``REVOKED``: WebSocket code 4003) and get no further row.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping

from .couch import Couch
from .couch.errors import Forbidden, NotFound, Unauthorized
from .hub import Closed, Subscription

log = logging.getLogger("settee.reauthorize")

REVOKED = Closed("forbidden: no longer allowed to read this database", 4003)

Key = tuple[str, frozenset[tuple[str, str]]]


class Reauthorizer:
    """Holds the subscriptions to check again, grouped by database and credentials."""

    def __init__(self, couch: Couch, interval: float) -> None:
        self.couch = couch  # the clients' Couch: no credentials of its own
        self.interval = interval
        self._groups: dict[Key, set[Subscription]] = defaultdict(set)
        self._timer: asyncio.TimerHandle | None = None
        self._checking: set[asyncio.Future] = set()

    def add(self, db: str, credentials: Mapping[str, str], subscription: Subscription) -> Key:
        key = (db, frozenset(credentials.items()))
        self._groups[key].add(subscription)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
        return key

    def discard(self, key: Key, subscription: Subscription) -> None:
        group = self._groups.get(key)
        if group is not None:
            group.discard(subscription)
            if not group:
                del self._groups[key]

    def security_changed(self, db: str) -> None:
        """``db``'s ``_security`` was written: check its subscribers now."""
        self._check([key for key in self._groups if key[0] == db])

    def _tick(self) -> None:
        self._timer = None
        self._check(list(self._groups))
        if self._groups:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _check(self, keys: list[Key]) -> None:
        for key in keys:
            checking = asyncio.ensure_future(self._recheck(key))
            self._checking.add(checking)
            checking.add_done_callback(self._checking.discard)

    async def _recheck(self, key: Key) -> None:
        db, credentials = key
        try:
            await self.couch.acting_for(dict(credentials))[db].info()
        except (Unauthorized, Forbidden, NotFound):
            for subscription in list(self._groups.pop(key, ())):
                subscription.close(REVOKED)
        except Exception as exc:  # the backend is down, say: the rights are not known to be gone
            log.warning("could not check the rights of %s's subscribers: %s", db, exc)
