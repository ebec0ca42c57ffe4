"""``/{db}/_security``: passed through, and a write tells the changes subscribers' checker."""

from __future__ import annotations

from typing import Any

from ..couch import relax
from ..reauthorize import Reauthorizer
from .base import PassThroughHandler, pass_through


class SecurityHandler(PassThroughHandler):
    """A database's security object, as the backend has it; once a ``PUT`` has changed it,
    every subscriber of the database is checked again at once, not at the next interval."""

    route = "security"

    def initialize(self, *, reauthorizer: Reauthorizer, **collaborators: Any) -> None:
        super().initialize(**collaborators)
        self.reauthorizer = reauthorizer

    @relax
    def put(self, db: str) -> Any:
        """A body that is not a JSON object is 400, as CouchDB answers: pouchdb-server takes
        anything there."""
        self.json_body()
        yield pass_through(self, db)
        if self.get_status() < 300:
            self.reauthorizer.security_changed(db)
