"""``POST /_settee/token``: a one-time token for a WebSocket feed (``service.tokens``)."""

from __future__ import annotations

from typing import Any

from ..couch import relax
from ..couch.errors import Unauthorized
from ..tokens import SubscriberTokens
from .base import ApiHandler


class TokenHandler(ApiHandler):
    """Issues a token for the credentials the request carries, once CouchDB knows them."""

    route = "token"
    couchdb_methods = "POST"

    def initialize(self, *, tokens: SubscriberTokens, **collaborators: Any) -> None:
        super().initialize(**collaborators)
        self.tokens = tokens

    @relax
    def post(self) -> Any:
        if not self.credentials:
            raise Unauthorized("unauthorized", "a token stands for credentials: send some")
        session = yield self.couch.session()
        context = session.get("userCtx") or {}
        if not (context.get("name") or context.get("roles")):
            raise Unauthorized("unauthorized", "Name or password is incorrect.")
        token = self.tokens.issue(self.credentials)
        self.write_json({"ok": True, "token": token, "expires_in": self.tokens.ttl})
