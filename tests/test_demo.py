"""The beer-sample demo without a browser: its loader (idempotent, rights kept narrow), its
form checks and paging (pure), and its answers to malformed requests over HTTP.

The demo serves settee's embedded store, so these run there only (no backend fixture).
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from demo.beer import data, forms, load, paging
from service.couch import Forbidden, Unauthorized, blocking
from tests.demo_server import DemoServer

# -- the loader


def database(target: Path, auth: tuple[str, str] | None = None) -> blocking.Database:
    """The database at ``target``, in this process: as its server admin; or, with ``auth``
    (None: ``()``, anonymous), as a client that sends those credentials."""
    if auth is None:
        return blocking.Couch(f"embedded:{target.parent}")[target.name]
    couch = blocking.Couch(f"embedded:{target.parent}", local_admin=False)
    if auth:
        basic = base64.b64encode(":".join(auth).encode()).decode()
        couch = couch.acting_for({"Authorization": f"Basic {basic}"})
    return couch[target.name]


def test_a_second_load_writes_nothing_and_keeps_what_visitors_did(tmp_path):
    target = tmp_path / "beer-sample"
    assert load.load(target, breweries=30, beers=100, progress=False) == 130
    db = database(target)
    edited = db.get(data.beers(data.breweries(30), 100)[0]["_id"])
    edited["name"] = "Edited By A Visitor"
    db.save(edited)
    deleted = db.get(data.beers(data.breweries(30), 100)[1]["_id"])
    db.delete(deleted)
    before = db.info()
    designs = {ddoc_id: db.get(ddoc_id)["_rev"] for ddoc_id in load.design.DESIGNS}

    assert load.load(target, breweries=30, beers=100, progress=False) == 0
    after = db.info()
    assert (after["doc_count"], after["update_seq"]) == (before["doc_count"], before["update_seq"])
    assert db.get(edited["_id"])["name"] == "Edited By A Visitor"
    assert db.get([deleted["_id"]]) == [None]
    assert {ddoc_id: db.get(ddoc_id)["_rev"] for ddoc_id in designs} == designs
    assert db.security()["members"]["names"] == [load.DEMO_USER]
    assert after["doc_count"] == 130 - 1 + len(load.design.DESIGNS)
    db.couch.close()


def test_the_data_set_is_the_same_every_time_and_shaped_like_beer_sample():
    breweries = data.breweries(50)
    beers = data.beers(breweries, 300)
    assert breweries == data.breweries(50) and beers == data.beers(data.breweries(50), 300)
    assert len({doc["_id"] for doc in breweries + beers}) == 350
    brewery_ids = {doc["_id"] for doc in breweries}
    for beer in beers:
        assert beer["type"] == "beer" and beer["brewery_id"] in brewery_ids
        assert {"name", "abv", "ibu", "style", "category"} <= beer.keys()
    for brewery in breweries:
        assert {"city", "state", "country", "geo"} <= brewery.keys()
        assert {"lat", "lon"} <= brewery["geo"].keys()


def test_the_demo_user_reads_its_database_and_nothing_else(tmp_path):
    target = tmp_path / "beer-sample"
    load.load(target, breweries=5, beers=10, progress=False)
    with blocking.Couch(f"embedded:{tmp_path}") as admin:
        load.set_password(admin, "first")
        load.set_password(admin, "second")  # at each start: the old one no longer works
        admin.create("private")
        security = admin["beer-sample"].security()
    assert security["members"] == {"names": [load.DEMO_USER], "roles": ["_admin"]}
    as_demo = database(target, (load.DEMO_USER, "second"))
    assert as_demo.view("_all_docs", limit=0).total_rows == 15 + len(load.design.DESIGNS)
    with pytest.raises(Forbidden):
        as_demo.save({"_id": "_design/mine", "views": {}})  # members write no design
    with pytest.raises(Forbidden):
        as_demo.couch["private"].info()
    with pytest.raises(Unauthorized):
        database(target, (load.DEMO_USER, "first")).info()
    with pytest.raises(Unauthorized):
        database(target, ()).info()  # anonymous


def test_a_database_open_to_everyone_is_left_open(tmp_path):
    target = tmp_path / "beer-sample"
    everyone = {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": []}}
    with blocking.Couch(f"embedded:{tmp_path}") as admin:
        admin.create("beer-sample")
        admin["beer-sample"].security(everyone)
    load.load(target, breweries=2, beers=2, progress=False)
    assert database(target).security() == everyone


# -- forms and paging (pure)


@pytest.mark.parametrize(
    ("submitted", "errors"),
    [
        ({}, {"name": "is required", "brewery_id": "is required"}),
        ({"name": " ", "brewery_id": "b"}, {"name": "is required"}),
        ({"name": "A", "brewery_id": "b", "abv": "5,5"}, {"abv": "must be a number"}),
        ({"name": "A", "brewery_id": "b", "abv": "nan"}, {"abv": "must be between 0 and 100"}),
        ({"name": "A", "brewery_id": "b", "ibu": "1e400"}, {"ibu": "must be between 0 and 1000"}),
        ({"name": "A", "brewery_id": "b", "upc": "1.5"}, {"upc": "must be a whole number"}),
        ({"name": "A\x00", "brewery_id": "b"}, {"name": "must not hold a NUL character"}),
        ({"name": "A" * 121, "brewery_id": "b"}, {"name": "must be at most 120 characters"}),
    ],
)
def test_the_form_says_what_is_wrong_field_by_field(submitted, errors):
    assert forms.check(submitted).errors == errors


def test_the_form_reads_numbers_and_drops_empty_fields():
    form = forms.check({"name": " Pale ", "brewery_id": "b", "abv": "5", "ibu": "40.5", "srm": ""})
    assert form.ok
    assert form.fields == {"name": "Pale", "brewery_id": "b", "abv": 5, "ibu": 40.5}
    assert forms.new_beer_id("b", "Öl Nr. 1") == "b-ol-nr-1"
    assert forms.new_beer_id("b", "啤酒") != forms.new_beer_id("b", "麦酒")


@dataclass(frozen=True)
class R:
    key: str
    id: str


def test_a_page_knows_the_next_and_the_previous_by_their_first_rows():
    rows = [R("a", "1"), R("a", "2"), R("b", "3")]
    first = paging.page(rows, size=2)
    assert first.rows == rows[:2] and first.next == paging.Start("b", "3")
    assert not first.has_previous
    before = [R("b", "3"), R("a", "2"), R("a", "1")]  # descending from the start, itself first
    later = paging.page([R("b", "3")], before, paging.Start("b", "3"), size=2)
    assert later.next is None and later.has_previous and later.previous == paging.Start("a", "1")
    gone = paging.page([R("c", "4")], [R("a", "2")], paging.Start("b", "3"), size=2)
    assert gone.has_previous and gone.previous is paging.FIRST  # fewer than a page before
    assert paging.forward(None, "ho", 2) == {"limit": 3, "startkey": "ho", "endkey": "ho\ufff0"}


# -- malformed requests over HTTP


class Visitor:
    """A browser without a script: cookies kept, redirects not followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = jar = http.cookiejar.CookieJar()

        class NoRedirects(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(jar), NoRedirects()
        )

    def request(self, path: str, form: dict[str, str] | bytes | None = None) -> tuple[int, str]:
        body = form if isinstance(form, bytes | None) else urlencode(form).encode()
        try:
            with self.opener.open(self.base + path, data=body, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def form(self, path: str) -> dict[str, str]:
        """The hidden fields of the form at ``path`` (its XSRF token and rev)."""
        status, text = self.request(path)
        assert status == 200, text
        return dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', text))


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    server = DemoServer(breweries=20, beers=60).start()
    try:
        yield server
    finally:
        server.stop()


BEER = data.beers(data.breweries(20), 60)[0]
BREWERY = BEER["brewery_id"]


def test_a_form_without_its_xsrf_token_is_refused_with_a_page(demo):
    status, text = Visitor(demo.url).request(f"/beers/{BEER['_id']}/delete", {"_rev": "1-abc"})
    assert status == 403 and "did not come from this site" in text
    assert "Traceback" not in text


def test_a_feed_token_is_given_only_to_the_demo_s_own_pages(demo):
    visitor = Visitor(demo.url)
    assert visitor.request("/live/token", b"")[0] == 403  # no XSRF token: another site's
    visitor.form("/beers/new")  # the XSRF cookie, as the page's script has it
    cookie = next(c for c in visitor.jar if c.name == "_xsrf")
    request = urllib.request.Request(
        demo.url + "/live/token", data=b"", headers={"X-XSRFToken": cookie.value}
    )
    with visitor.opener.open(request, timeout=10) as response:
        assert response.status == 200 and len(json.load(response)["token"]) > 20


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"_rev": "1-0123456789abcdef0123456789abcdef"}, 409, "changed by someone else"),
        ({"_rev": "not a rev"}, 400, "is not a revision"),
        ({"_rev": ""}, 400, "is missing"),
        ({"abv": "-1"}, 400, "must be between 0 and 100"),
        ({"brewery_id": "_design/beer"}, 400, "is not the id of a brewery"),
    ],
)
def test_a_bad_edit_is_refused_on_the_form_and_changes_nothing(demo, change, status, says):
    visitor = Visitor(demo.url)
    hidden = visitor.form(f"/beers/{BEER['_id']}/edit")
    fields = {"name": "Should Not Be Saved", "brewery_id": BREWERY, **hidden, **change}
    got, text = visitor.request(f"/beers/{BEER['_id']}/edit", fields)
    assert (got, says in text, "Traceback" in text) == (status, True, False)
    assert visitor.request(f"/beers/{BEER['_id']}")[1].count("Should Not Be Saved") == 0


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/beers/no-such-beer", 404),
        (f"/beers/{BREWERY}", 404),  # a brewery is no beer
        ("/beers/_design%2Fbeer/edit", 404),
        ("/breweries/no-such-brewery", 404),
        ("/beers?start=%ff", 400),  # not UTF-8
        ("/nowhere", 404),
    ],
)
def test_odd_addresses_get_a_page_with_a_status_never_a_traceback(demo, path, status):
    got, text = Visitor(demo.url).request(path)
    assert (got, "Traceback" in text, "<h1>" in text) == (status, False, True)


def test_a_body_that_is_not_utf8_is_a_bad_request(demo):
    visitor = Visitor(demo.url)
    hidden = visitor.form("/beers/new")
    body = urlencode(hidden).encode() + b"&name=%ff%fe&brewery_id=" + BREWERY.encode()
    status, text = visitor.request("/beers/new", body)
    assert status == 400 and "Traceback" not in text


def test_deleting_with_a_stale_rev_is_a_conflict_and_deletes_nothing(demo):
    visitor = Visitor(demo.url)
    hidden = visitor.form(f"/beers/{BEER['_id']}/delete")
    status, text = visitor.request(
        f"/beers/{BEER['_id']}/delete", {**hidden, "_rev": "1-0123456789abcdef0123456789abcdef"}
    )
    assert status == 409 and "changed this meanwhile" in text
    assert visitor.request(f"/beers/{BEER['_id']}")[0] == 200
