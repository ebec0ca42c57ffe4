"""What an operator may narrow at the gateway: which databases it exposes, and whether it
takes writes at all. CouchDB still decides who may do what; these only take away.

With ``databases`` set, a request about any other database is 404, as if it did not exist,
and server-wide endpoints are limited to those that expose no database (login, uuids,
health); ``_all_dbs`` lists only the exposed ones. With ``read_only``, a request that would
change something is 403, whoever sends it; reads sent as POST (queries) still pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from .couch.errors import Forbidden, NotFound

SYSTEM_DBS = ("_users", "_replicator", "_global_changes")
# Server-wide endpoints that name no database and change none.
OPEN_ENDPOINTS = frozenset(
    {"", "_up", "_ready", "_metrics", "_session", "_uuids", "_all_dbs", "_settee"}
)
# The last path segments of POST requests that only read.
READING_POSTS = frozenset(
    {
        "_all_docs",
        "_bulk_get",
        "_changes",
        "_design_docs",
        "_explain",
        "_find",
        "_local_docs",
        "_missing_revs",
        "_revs_diff",
        "queries",
        "_dbs_info",
        "_session",
        "token",
    }
)


@dataclass(frozen=True)
class Policy:
    """The operator's narrowing of what passes through the gateway (none by default)."""

    databases: tuple[str, ...] = ()
    read_only: bool = False

    def check(self, method: str, path: str) -> None:
        """Raise what the client is told if the policy refuses ``method`` on ``path``."""
        segments = path.lstrip("/").split("/")
        first = unquote(segments[0])
        if self.databases:
            names_database = not first.startswith("_") or first in SYSTEM_DBS
            if names_database and first not in self.databases:
                raise NotFound("not_found", "Database does not exist.")
            if not names_database and first not in OPEN_ENDPOINTS:
                raise NotFound("not_found", "missing")
        if self.read_only and method not in ("GET", "HEAD", "OPTIONS"):
            if method == "POST" and self._reads(segments):
                return
            raise Forbidden("forbidden", "this gateway is read-only")

    @staticmethod
    def _reads(segments: list[str]) -> bool:
        last = segments[-1]
        view_query = len(segments) >= 4 and segments[-2] in ("_view", "_list")
        return last in READING_POSTS or view_query

    def visible(self, names: list[str]) -> list[str]:
        """The databases of ``names`` this gateway exposes."""
        return [name for name in names if not self.databases or name in self.databases]
