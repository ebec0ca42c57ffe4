"""``make_app``: the demo's one route table, templates, static files and XSRF protection."""

from __future__ import annotations

from pathlib import Path

from tornado import web

from service.couch import Database

from .base import Live, PageHandler
from .beers import BeerHandler, BeersHandler, DeleteBeerHandler, EditBeerHandler, NewBeerHandler
from .pages import BreweriesHandler, BreweryHandler, LiveTokenHandler, WelcomeHandler

HERE = Path(__file__).resolve().parent


class MissingHandler(PageHandler):
    """Any other address: the 404 page."""

    def prepare(self) -> None:
        raise web.HTTPError(404)


def make_app(db: Database, live: Live) -> web.Application:
    """The demo on ``db`` (the beer-sample database, with the demo's credentials)."""
    collaborators = {"db": db, "live": live}
    routes = [
        (r"/", WelcomeHandler),
        (r"/beers", BeersHandler),
        (r"/beers/new", NewBeerHandler),
        (r"/beers/([^/]+)/edit", EditBeerHandler),
        (r"/beers/([^/]+)/delete", DeleteBeerHandler),
        (r"/beers/([^/]+)", BeerHandler),
        (r"/breweries", BreweriesHandler),
        (r"/breweries/([^/]+)", BreweryHandler),
        (r"/live/token", LiveTokenHandler),
    ]
    return web.Application(
        [(pattern, handler, collaborators) for pattern, handler in routes],
        template_path=str(HERE / "templates"),
        static_path=str(HERE / "static"),
        xsrf_cookies=True,
        default_handler_class=MissingHandler,
        default_handler_args=collaborators,
    )
