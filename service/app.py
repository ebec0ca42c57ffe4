"""``make_app``: the one route table, and the access log that also feeds the metrics."""

from __future__ import annotations

import logging

from tornado import web

from .couch import Couch
from .handlers.attachments import AttachmentHandler
from .handlers.base import NotFoundHandler
from .handlers.changes import ChangesHandler
from .handlers.documents import DatabaseHandler, DocumentHandler
from .handlers.keepalive import Pinger
from .handlers.server import (
    AllDbsHandler,
    MetricsHandler,
    ReadyHandler,
    UpHandler,
    WelcomeHandler,
)
from .handlers.views import AllDocsHandler, BulkDocsHandler, BulkGetHandler, ViewHandler
from .hub import Hub
from .inflight import InFlight
from .metrics import Metrics
from .settings import Settings

access_log = logging.getLogger("settee.access")

# A database: a legal name starts with a letter; system databases start with "_". Anything else
# that starts with "_" is an endpoint settee does not have (404). Other illegal names reach the
# handlers, which answer 400 illegal_database_name as CouchDB does.
DB = r"/(?P<db>[^/_][^/]*|_users|_replicator|_global_changes)"
# A document id in one path segment (an encoded "/" stays inside it), or a design or local
# document's, whose prefix keeps its slash.
DOC = r"/(?P<doc_id>(?:_design/|_local/)?[^/]+)"
# An id that cannot be mistaken for an endpoint: no leading "_".
PLAIN_DOC = r"/(?P<doc_id>[^/_][^/]*)"


def routes() -> list[tuple[str, type[web.RequestHandler]]]:
    """The route table, in the order Tornado tries it: the first pattern that matches wins."""
    return [
        # Most requests are for plain documents, and Tornado tries each pattern in turn: this
        # one first, as nothing else matches such a path.
        (DB + PLAIN_DOC, DocumentHandler),
        (r"/", WelcomeHandler),
        (r"/_up", UpHandler),
        (r"/_ready", ReadyHandler),
        (r"/_metrics", MetricsHandler),
        (r"/_all_dbs", AllDbsHandler),
        (DB + r"/?", DatabaseHandler),
        (DB + r"/_all_docs", AllDocsHandler),
        (DB + r"/_bulk_docs", BulkDocsHandler),
        (DB + r"/_bulk_get", BulkGetHandler),
        (DB + r"/_changes", ChangesHandler),
        (DB + r"/_design/(?P<ddoc>[^/]+)/_view/(?P<view>[^/]+)", ViewHandler),
        (DB + DOC, DocumentHandler),
        (DB + DOC + r"/(?P<name>.+)", AttachmentHandler),
    ]


def make_hub(settings: Settings, couch: Couch) -> Hub:
    """The changes hub, sized by the settings."""
    return Hub(
        couch,
        queue_limit=settings.subscriber_buffer,
        max_subscribers=settings.max_subscribers,
        linger=settings.feed_linger,
        heartbeat=settings.heartbeat,
    )


def make_app(
    settings: Settings, couch: Couch, metrics: Metrics, in_flight: InFlight, hub: Hub
) -> web.Application:
    """The service: every route, each handler given the collaborators it needs."""
    metrics.watch_in_flight(in_flight)
    collaborators = {
        "couch": couch,
        "settings": settings,
        "metrics": metrics,
        "in_flight": in_flight,
    }

    def log_request(handler: web.RequestHandler) -> None:
        request = handler.request
        status = handler.get_status()
        seconds = request.request_time()
        route = getattr(handler, "route", "unknown")
        metrics.observe(route, request.method or "", status, seconds)
        access_log.info(
            '%s "%s %s" %d %.1fms',
            request.remote_ip,
            request.method,
            request.uri,
            status,
            seconds * 1000,
        )

    extra = {ChangesHandler: {"hub": hub, "pinger": Pinger(settings.heartbeat)}}
    return web.Application(
        [
            (pattern, handler, {**collaborators, **extra.get(handler, {})})
            for pattern, handler in routes()
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=collaborators,
        log_function=log_request,
        cors_origins=settings.cors_origins,
    )
