"""The beer-sample demo in a real Chromium (Debian's), driven by Playwright.

One demo process (``python -m demo.beer``, its one command) serves the module, on a data set
small enough to load in seconds; each test opens fresh browser contexts. The data set is
deterministic, so the tests know every beer and brewery it holds (``demo.beer.data``).
Not run per backend: the demo serves settee's embedded store, its default.
"""

from __future__ import annotations

import html
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from demo.beer import data
from tests.demo_server import DemoServer

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: scripts/setup --test installs it"
)

BREWERY_COUNT, BEER_COUNT = 150, 700
BREWERIES = data.breweries(BREWERY_COUNT)
BEERS = data.beers(BREWERIES, BEER_COUNT)
PAGE = 30
LIVE_WITHIN = 1.0  # seconds from a submit in one browser to the change shown in the other


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    server = DemoServer(breweries=BREWERY_COUNT, beers=BEER_COUNT).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Chromium's sandbox refuses to run as root, as the tests may.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield chromium
        chromium.close()


def new_page(browser: Browser) -> Page:
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    page.set_default_timeout(10_000)
    return page


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = new_page(browser)
    yield page
    page.context.close()


@pytest.fixture
def two_pages(browser: Browser) -> Iterator[tuple[Page, Page]]:
    """Two browsers, as far as the demo can tell: contexts share no cookie or storage."""
    pages = new_page(browser), new_page(browser)
    yield pages
    for page in pages:
        page.context.close()


def beer_url(demo: DemoServer, beer_id: str) -> str:
    return f"{demo.url}/beers/{quote(beer_id, safe='')}"


def wait_live(page: Page) -> None:
    """Until the page's script has caught up with settee's feed."""
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


def row_ids(page: Page, table: str = "#beer-table") -> list[str]:
    return page.locator(f"{table} tbody tr[data-id]").evaluate_all(
        "rows => rows.map(row => row.dataset.id)"
    )


def submit(page: Page) -> int:
    """Submit the page's form; the status of the answer to the POST."""
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.click("form button[type=submit]")
    return answer.value.status


def edit_name(page: Page, demo: DemoServer, beer_id: str, name: str) -> float:
    """Rename a beer through its edit form; the monotonic time the form was submitted."""
    page.goto(beer_url(demo, beer_id) + "/edit")
    page.fill("#f-name", name)
    submitted = time.monotonic()
    page.click("form button[type=submit]")
    return submitted


def test_the_welcome_page_leads_to_the_beers_and_a_brewery_with_its_beers(demo, page):
    page.goto(demo.url + "/")
    expect(page.locator("main")).to_contain_text(f"{BEER_COUNT:,} beers")
    page.click("text=Show me all beers")
    expect(page.locator("#beer-table tbody tr")).to_have_count(PAGE)
    page.click(".masthead nav >> text=Breweries")
    expect(page.locator("#brewery-table tbody tr")).to_have_count(PAGE)
    brewery_id = row_ids(page, "#brewery-table")[0]
    page.locator("#brewery-table tbody tr").first.locator("a").click()
    brewery = next(doc for doc in BREWERIES if doc["_id"] == brewery_id)
    expect(page.locator("h1")).to_have_text(brewery["name"])
    theirs = sorted(doc["_id"] for doc in BEERS if doc["brewery_id"] == brewery_id)
    assert sorted(row_ids(page, "#brewery-beers")) == theirs


def test_pages_follow_each_other_by_name_and_back(demo, page):
    page.goto(demo.url + "/beers")
    first = row_ids(page)
    expect(page.locator("a[rel=prev]")).to_have_count(0)
    page.click("a[rel=next]")
    expect(page).to_have_url(re.compile(r"start_id="))
    second = row_ids(page)
    assert len(second) == PAGE and not set(first) & set(second)
    page.click("a[rel=prev]")
    assert row_ids(page) == first


def test_walking_the_pages_lists_every_beer_once_even_where_names_repeat(demo):
    """By the next links, as a visitor would: startkey_docid starts each page exactly."""
    names = [doc["name"] for doc in BEERS]
    assert len(set(names)) < len(names)  # the data set has beers of the same name
    seen: list[str] = []
    address: str | None = demo.url + "/beers"
    for _ in range(BEER_COUNT // PAGE + 2):
        if address is None:
            break
        with urllib.request.urlopen(address, timeout=10) as response:
            text = response.read().decode()
        seen += re.findall(r'<tr data-id="([^"]+)"', text)
        found = re.search(r'rel="next" href="([^"]+)"', text)
        address = demo.url + html.unescape(found.group(1)) if found else None
    assert address is None
    assert sorted(html.unescape(beer_id) for beer_id in seen) == sorted(d["_id"] for d in BEERS)


def test_the_search_box_lists_the_beers_whose_name_starts_so(demo, page):
    page.goto(demo.url + "/beers")
    page.fill("#beer-search", "hoppy")
    expected = sorted(d["_id"] for d in BEERS if d["name"].lower().startswith("hoppy"))
    assert 0 < len(expected) < PAGE
    expect(page.locator("#beer-table tbody tr[data-id]")).to_have_count(len(expected))
    assert sorted(row_ids(page)) == expected
    expect(page).to_have_url(re.compile(r"/beers\?q=hoppy$"))
    page.goto(demo.url + "/beers?q=zzz")  # the form without its script
    expect(page.locator("#beer-table td.empty")).to_contain_text("No beer whose name starts")


def test_a_beer_is_created_edited_and_deleted_through_the_forms(demo, page):
    brewery = BREWERIES[3]
    page.goto(demo.url + "/beers")
    page.click("text=Add a beer")
    page.fill("#f-name", "Aardvark Test Ale")
    page.fill("#f-brewery_id", brewery["_id"])
    page.fill("#f-abv", "5.5")
    page.fill("#f-style", "Pale Ale")
    assert submit(page) == 303
    beer_id = f"{brewery['_id']}-aardvark-test-ale"
    expect(page).to_have_url(beer_url(demo, beer_id))
    expect(page.locator("#beer-name")).to_have_text("Aardvark Test Ale")
    expect(page.locator("td[data-field=brewery_id]")).to_have_text(brewery["name"])

    page.click(".actions >> text=Edit")
    expect(page.locator("#f-abv")).to_have_value("5.5")
    page.fill("#f-abv", "6.1")
    page.fill("#f-style", "")
    assert submit(page) == 303
    expect(page.locator("td[data-field=abv]")).to_have_text("6.1")
    expect(page.locator("td[data-field=style]")).to_have_count(0)  # cleared: gone

    page.click(".actions >> text=Delete")
    expect(page.locator("h1")).to_contain_text("Delete “Aardvark Test Ale”?")
    assert submit(page) == 303
    expect(page).to_have_url(demo.url + "/beers")
    response = page.goto(beer_url(demo, beer_id))
    assert response is not None and response.status == 404
    expect(page.locator(".notice")).to_contain_text("nothing here")


def test_malformed_input_is_shown_on_the_form_and_nothing_is_written(demo, page):
    page.goto(demo.url + "/beers/new")
    page.fill("#f-name", "  ")
    page.fill("#f-brewery_id", "no-such-brewery")
    page.fill("#f-abv", "strong")
    page.fill("#f-ibu", "-3")
    page.fill("#f-upc", "12.5")
    assert submit(page) == 400
    errors = page.locator(".field .error")
    expect(errors).to_have_text(
        [
            "Name is required.",
            "Brewery is not the id of a brewery.",
            "Alcohol (ABV, %) must be a number.",
            "Bitterness (IBU) must be between 0 and 1000.",
            "Product code (UPC) must be a whole number.",
        ]
    )
    expect(page.locator("#f-abv")).to_have_value("strong")  # what was typed stays
    expect(page.locator("body")).not_to_contain_text("Traceback")

    page.fill("#f-name", "x" * 121)
    page.fill("#f-brewery_id", BREWERIES[0]["_id"])
    for name in ("abv", "ibu", "upc"):
        page.fill(f"#f-{name}", "")
    assert submit(page) == 400
    expect(errors).to_have_text(["Name must be at most 120 characters."])


def test_an_edit_in_one_browser_shows_in_the_other_within_a_second(
    demo, two_pages, record_property
):
    writer, watcher = two_pages
    beer = BEERS[11]
    watcher.goto(beer_url(demo, beer["_id"]))
    wait_live(watcher)
    submitted = edit_name(writer, demo, beer["_id"], "Renamed Live Porter")
    expect(watcher.locator("#beer-name")).to_have_text("Renamed Live Porter")
    latency = time.monotonic() - submitted
    record_property("live_update_seconds", round(latency, 3))
    print(f"\nlive update, beer page: {latency * 1000:.0f} ms from submit to the other browser")
    assert latency < LIVE_WITHIN


def test_the_list_follows_creations_edits_and_deletions_made_elsewhere(demo, two_pages):
    writer, watcher = two_pages
    watcher.goto(demo.url + "/beers")
    wait_live(watcher)
    shown = row_ids(watcher)

    writer.goto(demo.url + "/beers/new")  # "AAA" sorts first: onto the page being watched
    writer.fill("#f-name", "AAA Live Lager")
    writer.fill("#f-brewery_id", BREWERIES[0]["_id"])
    started = time.monotonic()
    assert submit(writer) == 303
    first = watcher.locator("#beer-table tbody tr").first.locator("a.name")
    expect(first).to_have_text("AAA Live Lager")
    assert time.monotonic() - started < LIVE_WITHIN

    edit_name(writer, demo, shown[2], "AAB Renamed Elsewhere")
    expect(watcher.locator("#beer-table tbody tr").nth(1).locator("a.name")).to_have_text(
        "AAB Renamed Elsewhere"
    )

    new_id = f"{BREWERIES[0]['_id']}-aaa-live-lager"
    writer.goto(beer_url(demo, new_id) + "/delete")
    assert submit(writer) == 303
    expect(watcher.locator(f'#beer-table tr[data-id="{new_id}"]')).to_have_count(0)
    expect(watcher.locator("#beer-table tbody tr[data-id]")).to_have_count(PAGE)


def test_a_beer_deleted_elsewhere_is_marked_gone(demo, two_pages):
    writer, watcher = two_pages
    beer = BEERS[12]
    watcher.goto(beer_url(demo, beer["_id"]))
    wait_live(watcher)
    writer.goto(beer_url(demo, beer["_id"]) + "/delete")
    assert submit(writer) == 303
    expect(watcher.locator("#gone")).to_be_visible()


def test_a_page_catches_up_from_its_last_seq_after_a_pause_or_a_drop(demo, two_pages):
    writer, watcher = two_pages
    beer = BEERS[13]
    watcher.goto(beer_url(demo, beer["_id"]))
    wait_live(watcher)

    watcher.click("#live-toggle")  # pause: the socket is closed
    expect(watcher.locator("#live-status")).to_have_attribute("data-state", "paused")
    edit_name(writer, demo, beer["_id"], "Changed While Paused")
    expect(writer.locator("#beer-name")).to_have_text("Changed While Paused")
    assert watcher.inner_text("#beer-name") == beer["name"]
    watcher.click("#live-toggle")  # resume from the last seq received: the change comes
    expect(watcher.locator("#beer-name")).to_have_text("Changed While Paused")
    assert watcher.evaluate("beerLive.connects") == 2

    watcher.evaluate("beerLive.socket.close()")  # a drop, as a network would make it
    watcher.wait_for_function("beerLive.connects === 3")
    wait_live(watcher)
    edit_name(writer, demo, beer["_id"], "Changed After The Drop")
    expect(watcher.locator("#beer-name")).to_have_text("Changed After The Drop")


def test_a_brewery_page_follows_its_beers(demo, two_pages):
    writer, watcher = two_pages
    brewery = BREWERIES[7]
    watcher.goto(f"{demo.url}/breweries/{brewery['_id']}")
    wait_live(watcher)
    before = len(row_ids(watcher, "#brewery-beers"))
    writer.goto(f"{demo.url}/beers/new?brewery={brewery['_id']}")
    expect(writer.locator("#f-brewery_id")).to_have_value(brewery["_id"])
    writer.fill("#f-name", "Brewery Page Bock")
    assert submit(writer) == 303
    new_id = f"{brewery['_id']}-brewery-page-bock"
    expect(watcher.locator(f'#brewery-beers tr[data-id="{new_id}"]')).to_have_count(1)
    assert len(row_ids(watcher, "#brewery-beers")) == before + 1
