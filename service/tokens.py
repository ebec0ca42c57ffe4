"""One-time tokens that let a browser page open a WebSocket feed as its user.

A browser cannot set ``Authorization`` on a WebSocket, and sends a site's cookies with any
page's socket, so a page of another origin has no safe way to say who it is. It asks
``POST /_settee/token`` with its credentials (an XHR, which may carry them), and opens the
socket with ``?token=…``: the token stands for those credentials once, within ``TTL``
seconds, in this process only.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

TTL = 30.0


class SubscriberTokens:
    """Tokens issued and not yet used, with the credentials each stands for."""

    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._issued: dict[str, tuple[float, dict[str, str]]] = {}

    def issue(self, credentials: Mapping[str, str]) -> str:
        now = time.monotonic()
        self._issued = {t: held for t, held in self._issued.items() if held[0] > now}
        token = secrets.token_urlsafe(32)
        self._issued[token] = (now + self.ttl, dict(credentials))
        return token

    def redeem(self, token: str) -> dict[str, str] | None:
        """The credentials ``token`` stands for, once; None if it is unknown, used or old."""
        held = self._issued.pop(token, None)
        if held is None or held[0] <= time.monotonic():
            return None
        return held[1]
