"""The demo's base handler: its collaborators, page rendering, and the one path for errors.

Every page handler gets the database and the live feed's address through ``initialize``.
An exception becomes a page of ``error.html`` with the right status and a sentence for the
visitor, never a traceback: the database's own errors are told apart here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from tornado import web

from service.couch import (
    BadRequest,
    Conflict,
    CouchError,
    Database,
    NotFound,
    ServerUnavailable,
)

from . import forms, paging

log = logging.getLogger("demo.beer")

MESSAGES = {
    400: "That request did not make sense to the server.",
    403: "This form has expired or did not come from this site: reload the page and try again.",
    404: "There is nothing here: it may have been deleted.",
    405: "That is not something this page does.",
    409: "Someone changed this meanwhile: look at it again, then retry.",
    502: "The database refused that request.",
    503: "The database is not answering just now: try again in a moment.",
}


@dataclass(frozen=True)
class Live:
    """Where a page's script finds settee's WebSocket feed: settee's port on the page's own
    host name, and the database's name."""

    settee_port: int
    database: str


def doc_link(path: str, doc_id: str) -> str:
    """The address of document ``doc_id``'s page under ``path`` (``/beers``)."""
    return f"{path}/{quote(doc_id, safe='')}"


def page_link(path: str, start: paging.Start | None, prefix: str = "") -> str:
    """The address of the page of ``path`` that begins at ``start`` (None: the first)."""
    query = {"q": prefix} if prefix else {}
    if start is not None:
        query.update(start=start.key, start_id=start.doc_id)
    return f"{path}?{urlencode(query)}" if query else path


def status_of(error: BaseException | None) -> int | None:
    """The HTTP status a page answers for ``error``: None if it is a bug (500)."""
    if isinstance(error, web.HTTPError):
        return error.status_code
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, BadRequest):
        return 400
    if isinstance(error, ServerUnavailable):
        return 503
    if isinstance(error, CouchError):
        return 502
    return None


class PageHandler(web.RequestHandler):
    """A page of the demo: ``db`` is the beer-sample database, as the demo's user."""

    def initialize(self, *, db: Database, live: Live) -> None:
        self.db = db
        self.live = live

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace.update(
            live=self.live,
            page_link=page_link,
            doc_link=doc_link,
            labels=forms.LABELS,
            form_fields=forms.FIELDS,
            shown_fields=forms.SHOWN,
        )
        return namespace

    def paged(self, view: str) -> Generator[Any, Any, tuple[paging.Page, str, Any]]:
        """The page of ``view`` the query names (``q``: a name prefix; ``start`` and
        ``start_id``: its first row), and the seq the view answered at. A flow: ``yield
        from`` it under ``@relax``; its queries run at once."""
        prefix = self.get_query_argument("q", "").strip()[: paging.PREFIX_LIMIT]
        key = self.get_query_argument("start", None)
        start = None if key is None else paging.Start(key, self.get_query_argument("start_id", ""))
        queries = [self.db.view(view, update_seq=True, **paging.forward(start, prefix))]
        if start is not None:
            queries.append(self.db.view(view, **paging.backward(start, prefix)))
        views = yield queries
        before = views[1].rows if start is not None else ()
        return paging.page(views[0].rows, before, start), prefix, views[0].update_seq

    def render_page(self, whole: str, part: str, **namespace: Any) -> None:
        """Render template ``whole``, or only its live ``part`` when the page's script asks
        for it (``?part=live``) to show what changed."""
        self.render(part if self.get_query_argument("part", "") == "live" else whole, **namespace)

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        status = status_of(value)
        if status is None:
            super().log_exception(typ, value, tb)  # a bug: with its traceback
        elif status >= 500:
            log.warning("%s %s: %s", self.request.method, self.request.path, value)
        else:
            log.info("%d %s %s: %s", status, self.request.method, self.request.path, value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        status = status_of(error) or status_code
        self.set_status(status)
        message = MESSAGES.get(status, "Something went wrong on our side.")
        self.render("error.html", status=status, message=message)
