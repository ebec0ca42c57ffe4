"""The beer pages: the list (by name, a page at a time, searchable by the name's beginning),
one beer, and the forms that create, edit and delete one.

Each handler method is a ``@relax`` generator yielding the client's calls; ``yield from``
runs a helper flow (``beer``, ``brewery``, ``checked_form``) inside it. Writes carry the rev
the visitor saw: a beer changed meanwhile is a conflict, shown on the form, not overwritten.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from typing import Any

from tornado import web

from service.couch import BadRequest, Conflict, Document, relax

from . import forms
from .base import PageHandler, doc_link
from .design import BEER_BY_NAME

Flow = Generator[Any, Any, Any]
STALE = "was changed by someone else since you opened this form: reload it to see theirs"


def now() -> str:
    """The time as beer-sample's documents write it, in UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


class BeerPage(PageHandler):
    """What the beer pages share: reading a beer, its brewery, and the submitted form."""

    def beer(self, beer_id: str) -> Flow:
        """The beer ``beer_id``: 404 for a missing document or one that is no beer."""
        doc = yield self.db.get(beer_id)
        if doc.get("type") != "beer":
            raise web.HTTPError(404, "%s is no beer", beer_id)
        return doc

    def brewery(self, brewery_id: str) -> Flow:
        """The brewery ``brewery_id``, or None if there is no such brewery."""
        try:
            [doc] = yield self.db.get([brewery_id])
        except BadRequest:  # not an id a document may have
            return None
        return doc if doc is not None and doc.get("type") == "brewery" else None

    def brewery_names(self, ids: Iterable[str]) -> Flow:
        """Brewery id → name, for the breweries of ``ids`` that exist: one bulk read."""
        wanted = sorted({brewery_id for brewery_id in ids if isinstance(brewery_id, str)})
        docs = (yield self.db.get(wanted)) if wanted else []
        return {doc["_id"]: doc.get("name", doc["_id"]) for doc in docs if doc is not None}

    def checked_form(self) -> Flow:
        """The submitted beer form, checked, its brewery looked up."""
        form = forms.check({name: self.get_body_argument(name, "") for name in forms.FIELDS})
        if (
            "brewery_id" in form.fields
            and (yield from self.brewery(form.fields["brewery_id"])) is None
        ):
            form.errors["brewery_id"] = "is not the id of a brewery"
        return form

    def show_form(self, form: forms.BeerForm, beer: Document | None, rev: str, status: int) -> None:
        self.set_status(status)
        self.render("beers/edit.html", form=form, beer=beer, rev=rev)


class BeersHandler(BeerPage):
    @relax
    def get(self) -> Any:
        page, prefix, since = yield from self.paged(BEER_BY_NAME)
        names = yield from self.brewery_names(
            (row.value or {}).get("brewery_id") for row in page.rows
        )
        self.render_page(
            "beers/index.html",
            "beers/rows.html",
            page=page,
            prefix=prefix,
            breweries=names,
            since=since,
        )


class BeerHandler(BeerPage):
    @relax
    def get(self, beer_id: str) -> Any:
        info = yield self.db.info()  # first: the feed resumes from here, before the read
        beer = yield from self.beer(beer_id)
        brewery = yield from self.brewery(beer.get("brewery_id", ""))
        self.render_page(
            "beers/show.html",
            "beers/details.html",
            beer=beer,
            brewery=brewery,
            since=info.update_seq,
        )


class NewBeerHandler(BeerPage):
    def get(self) -> None:
        values = {"brewery_id": self.get_query_argument("brewery", "")}
        self.render("beers/edit.html", form=forms.BeerForm(values), beer=None, rev="")

    @relax
    def post(self) -> Any:
        form = yield from self.checked_form()
        if not form.ok:
            return self.show_form(form, None, "", 400)
        beer_id = forms.new_beer_id(form.fields["brewery_id"], form.fields["name"])
        try:
            yield self.db.save({"_id": beer_id, "type": "beer", **form.fields, "updated": now()})
        except Conflict:
            form.errors["name"] = "is taken: that brewery has a beer of that name already"
            return self.show_form(form, None, "", 409)
        self.redirect(doc_link("/beers", beer_id), status=303)


class EditBeerHandler(BeerPage):
    @relax
    def get(self, beer_id: str) -> Any:
        beer = yield from self.beer(beer_id)
        self.render("beers/edit.html", form=forms.of_beer(beer), beer=beer, rev=beer["_rev"])

    @relax
    def post(self, beer_id: str) -> Any:
        form = yield from self.checked_form()
        beer = yield from self.beer(beer_id)
        rev = self.get_body_argument("_rev", "")
        if not rev:
            form.errors["_rev"] = "is missing: reload the form"
        if not form.ok:
            return self.show_form(form, beer, rev, 400)
        kept = {key: value for key, value in beer.items() if key not in forms.FIELDS}
        try:
            yield self.db.save({**kept, **form.fields, "_rev": rev, "updated": now()})
        except (Conflict, BadRequest) as exc:  # stale, or not a rev at all
            form.errors["_rev"] = STALE if isinstance(exc, Conflict) else "is not a revision"
            return self.show_form(form, beer, rev, 409 if isinstance(exc, Conflict) else 400)
        self.redirect(doc_link("/beers", beer_id), status=303)


class DeleteBeerHandler(BeerPage):
    @relax
    def get(self, beer_id: str) -> Any:
        beer = yield from self.beer(beer_id)
        self.render("beers/delete.html", beer=beer)

    @relax
    def post(self, beer_id: str) -> Any:
        yield from self.beer(beer_id)
        rev = self.get_body_argument("_rev", "")
        if not rev:
            raise web.HTTPError(400, "no _rev to delete %s with", beer_id)
        yield self.db.delete({"_id": beer_id, "_rev": rev})  # stale: Conflict, the 409 page
        self.redirect("/beers", status=303)
