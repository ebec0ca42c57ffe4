"""``make_app``: the one route table, and the access log that also feeds the metrics."""

from __future__ import annotations

import logging
import re

from tornado import web

from .couch import Couch
from .handlers.attachments import AttachmentHandler
from .handlers.base import NotFoundHandler, PassThroughHandler
from .handlers.changes import ChangesHandler
from .handlers.documents import DatabaseHandler, DocumentHandler
from .handlers.keepalive import Pinger
from .handlers.security import SecurityHandler
from .handlers.server import (
    AllDbsHandler,
    MetricsHandler,
    OpenAPIHandler,
    ReadyHandler,
    UpHandler,
    WelcomeHandler,
)
from .handlers.tokens import TokenHandler
from .handlers.views import AllDocsHandler, BulkDocsHandler, BulkGetHandler, ViewHandler
from .httpserver import Server, Timeouts
from .hub import Hub
from .inflight import InFlight
from .metrics import Metrics
from .reauthorize import Reauthorizer
from .settings import Settings
from .sources import CouchSource
from .tokens import SubscriberTokens

access_log = logging.getLogger("settee.access")
# A WebSocket's one-time token (service.tokens), kept out of the access log.
TOKEN = re.compile(r"([?&])token=[^&]*")

# A database: a legal name starts with a letter; system databases start with "_". Anything else
# that starts with "_" is an endpoint settee does not have (404). Other illegal names reach the
# handlers, which answer 400 illegal_database_name as CouchDB does.
DB = r"/(?P<db>[^/_][^/]*|_users|_replicator|_global_changes)"
# CouchDB 3.4's endpoints below a database that settee passes through (chttpd_httpd_handlers).
DB_ENDPOINTS = (
    "_all_docs|_auto_purge|_bulk_docs|_bulk_get|_changes|_compact|_design_docs|_explain|"
    "_ensure_full_commit|_find|_index|_local_docs|_missing_revs|_nouveau_cleanup|_partition|"
    "_purge|_purged_infos_limit|_revs_diff|_revs_limit|_search_cleanup|_security|_shards|"
    "_sync_shards|_temp_view|_view_cleanup"
)
# A document id in one path segment (an encoded "/" stays inside it), or a design or local
# document's, whose prefix keeps its slash. Any other id is a document's too (CouchDB refuses
# ids that start with "_": so do the handlers), unless it names one of CouchDB's endpoints.
DOC = rf"/(?P<doc_id>(?:_design/|_local/)[^/]+|(?!(?:{DB_ENDPOINTS})(?:/|$)|_design/|_local/)[^/]+)"
# An attachment's name: one that starts with "_" is a design document's endpoint (``_show``,
# ``_info``, …), which CouchDB forbids as an attachment name.
ATTACHMENT = r"/(?P<name>[^_].*)"
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
        (r"/_settee/token", TokenHandler),
        (r"/_settee/openapi\.json", OpenAPIHandler),
        (DB + r"/?", DatabaseHandler),
        (DB + r"/_all_docs", AllDocsHandler),
        (DB + r"/_bulk_docs", BulkDocsHandler),
        (DB + r"/_bulk_get", BulkGetHandler),
        (DB + r"/_changes", ChangesHandler),
        (DB + r"/_security", SecurityHandler),
        (DB + r"/_design/(?P<ddoc>[^/]+)/_view/(?P<view>[^/]+)", ViewHandler),
        (DB + DOC, DocumentHandler),
        (DB + DOC + ATTACHMENT, AttachmentHandler),
        # Everything else is CouchDB's, and passed through to it as it is.
        (r"/.*", PassThroughHandler),
    ]


def make_couches(settings: Settings) -> tuple[Couch, Couch]:
    """The clients' Couch, with no credentials of its own, and settee's own Couch, with the
    configured ones (the same object when none are configured)."""
    timeout, max_connections = settings.couch_timeout, settings.couch_connections
    own = Couch(
        settings.backend_url, settings.couch_auth, timeout=timeout, max_connections=max_connections
    )
    if own.endpoint.embedded:
        # settee is the embedded store's server: its own Couch is the store's admin, and its
        # clients' are anonymous but for their own credentials.
        return Couch(own.url, timeout=timeout, local_admin=False), own
    if own.endpoint.auth is None:
        return own, own
    # The same nodes, without the credentials; a cluster's health is shared.
    urls = ",".join(own.endpoint.urls)
    clients = Couch(urls, timeout=timeout, max_connections=max_connections, cluster=own.cluster)
    return clients, own


def make_hub(settings: Settings, couch: Couch) -> Hub:
    """The changes hub, sized by the settings."""
    return Hub(
        CouchSource(couch),
        queue_limit=settings.subscriber_buffer,
        max_subscribers=settings.max_subscribers,
        linger=settings.feed_linger,
        heartbeat=settings.heartbeat,
    )


def make_server(app: web.Application, settings: Settings) -> Server:
    """The HTTP server for ``app``, with the limits and timeouts of ``settings``."""
    timeouts = Timeouts(
        header=settings.header_timeout,
        body=settings.body_timeout,
        idle=settings.idle_timeout,
        write=settings.write_timeout,
    )
    return Server(
        app, xheaders=settings.xheaders, max_body_size=settings.max_body_size, timeouts=timeouts
    )


def make_app(
    settings: Settings,
    couch: Couch,
    metrics: Metrics,
    in_flight: InFlight,
    hub: Hub,
    own_couch: Couch | None = None,
) -> web.Application:
    """The service: every route, each handler given the collaborators it needs.

    ``couch`` has no credentials of its own: each handler acts through it with its client's.
    ``own_couch`` has settee's, for its health checks (the hub has it too); without one,
    ``couch`` serves for both, as when the backend asks nobody for credentials.
    """
    metrics.watch_in_flight(in_flight)
    if (cluster := (own_couch or couch).cluster) is not None:
        metrics.watch_cluster(cluster)
    collaborators: dict[str, object] = {
        "couch": couch,
        "own_couch": own_couch or couch,
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
            TOKEN.sub(r"\1token=***", request.uri or ""),
            status,
            seconds * 1000,
        )

    reauthorizer = Reauthorizer(couch, settings.reauthorize_interval)
    tokens = SubscriberTokens()
    # What some handlers need beyond the collaborators every handler gets.
    extra: dict[type[web.RequestHandler], dict[str, object]] = {
        ChangesHandler: {
            "hub": hub,
            "pinger": Pinger(settings.heartbeat),
            "reauthorizer": reauthorizer,
            "tokens": tokens,
        },
        SecurityHandler: {"reauthorizer": reauthorizer},
        TokenHandler: {"tokens": tokens},
    }
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
