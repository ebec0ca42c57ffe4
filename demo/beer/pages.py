"""The welcome page, the brewery pages, and the live feed's token for a page's script."""

from __future__ import annotations

from typing import Any

import ujson
from tornado import web

from service.couch import relax

from .base import PageHandler
from .design import BEER_BY_BREWERY, BEER_BY_NAME, BREWERY_BY_NAME

BEERS_SHOWN = 500  # a brewery's beers, at most (the data set's have a handful each)


class WelcomeHandler(PageHandler):
    @relax
    def get(self) -> Any:
        beers, breweries = yield [
            self.db.view(BEER_BY_NAME, limit=0),
            self.db.view(BREWERY_BY_NAME, limit=0),
        ]
        self.render("welcome.html", beers=beers.total_rows, breweries=breweries.total_rows)


class BreweriesHandler(PageHandler):
    @relax
    def get(self) -> Any:
        page, prefix, since = yield from self.paged(BREWERY_BY_NAME)
        self.render("breweries/index.html", page=page, prefix=prefix, since=since)


class BreweryHandler(PageHandler):
    @relax
    def get(self, brewery_id: str) -> Any:
        info = yield self.db.info()  # first: the feed resumes from here, before the reads
        range_ = {"startkey": [brewery_id], "endkey": [brewery_id, {}]}
        brewery, beers = yield [
            self.db.get(brewery_id),
            self.db.view(BEER_BY_BREWERY, reduce=False, limit=BEERS_SHOWN, **range_),
        ]
        if brewery.get("type") != "brewery":
            raise web.HTTPError(404, "%s is no brewery", brewery_id)
        self.render_page(
            "breweries/show.html",
            "breweries/beers.html",
            brewery=brewery,
            beers=beers.rows,
            since=info.update_seq,
        )


class LiveTokenHandler(PageHandler):
    """``POST /live/token``: a one-time token for settee's WebSocket feed of the database.

    settee issues it for the demo's credentials (``POST /_settee/token``), so the page's
    socket reads the database as the demo does, and no more: the browser never holds a
    password, and the database stays closed to everyone else.
    """

    @relax
    def post(self) -> Any:
        reply = yield self.db.couch.relay(
            "POST", "/_settee/token", {"Content-Type": "application/json"}, b"{}"
        )
        try:
            body = yield reply.read_all()
        finally:
            reply.close()
        if reply.status != 200:
            raise web.HTTPError(502, "settee refused a token: %d", reply.status)
        self.set_header("Cache-Control", "no-store")
        self.write({"token": ujson.loads(body)["token"]})
