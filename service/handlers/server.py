"""Server-wide endpoints: welcome, liveness, readiness, metrics, the list of databases, and
the OpenAPI document of settee's own routes."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from .. import openapi
from ..backend import backend_of
from ..couch import relax
from ..couch.errors import HTTPError, ServerUnavailable
from .base import RETRY_AFTER_SECONDS, ApiHandler, json_text

SETTEE_VERSION = version("settee")


class WelcomeHandler(ApiHandler):
    """``GET /``: CouchDB's welcome document, with settee's version and the backend's."""

    route = "welcome"
    couchdb_methods = "GET,HEAD"

    @relax
    def get(self) -> Any:
        welcome = yield self.couch.info()
        backend = backend_of(welcome)
        self.write_json(
            {
                "couchdb": "Welcome",
                "settee": SETTEE_VERSION,
                "version": backend["version"],
                "backend": backend,
            }
        )


class UpHandler(ApiHandler):
    """``GET /_up``: liveness. The process answers, whatever the backend does."""

    route = "up"
    couchdb_methods = "GET,HEAD"

    def get(self) -> None:
        self.write_json({"status": "ok"})

    head = get


class ReadyHandler(ApiHandler):
    """``GET /_ready``: readiness. 200 when the backend answers, 503 with the reason when not;
    in front of a cluster, with each node's state (``nodes``)."""

    route = "ready"
    couchdb_methods = "GET,HEAD"

    @relax
    def get(self) -> Any:
        try:
            welcome = yield self.own_couch.info()
        except ServerUnavailable:
            reason = "the database is unreachable"
        except HTTPError as exc:
            reason = f"the database answered {exc.status} {exc.error}"
        else:
            self.write_json({"status": "ok", "backend": backend_of(welcome), **self.nodes()})
            return
        self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.write_json({"status": "unavailable", "reason": reason, **self.nodes()}, 503)

    def nodes(self) -> dict[str, Any]:
        """Each node's state, in front of a cluster (as the last request left it)."""
        cluster = self.own_couch.cluster
        return {"nodes": cluster.status()} if cluster is not None else {}

    head = get


class MetricsHandler(ApiHandler):
    """``GET /_metrics``: Prometheus text format."""

    route = "metrics"
    couchdb_methods = "GET,HEAD"

    def get(self) -> None:
        self.set_header("Content-Type", self.metrics.content_type)
        self.finish(self.metrics.render())

    head = get


class AllDbsHandler(ApiHandler):
    """``GET /_all_dbs``."""

    route = "all_dbs"
    couchdb_methods = "GET,HEAD"

    @relax
    def get(self) -> Any:
        self.write_json(self.config.policy.visible((yield self.couch.all_dbs())))


class OpenAPIHandler(ApiHandler):
    """``GET /_settee/openapi.json``: the OpenAPI document of settee's own routes."""

    route = "openapi"
    couchdb_methods = "GET,HEAD"

    def get(self) -> None:
        self.finish(json_text(openapi.document()))

    head = get
