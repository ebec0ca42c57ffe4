"""Take the README's pictures of a running demo: the beer list and a beer's page.

``python -m demo.beer.screenshots http://127.0.0.1:8080`` writes ``docs/demo-beers.png``
and ``docs/demo-beer.png``, in Debian's Chromium driven by Playwright (the test extras),
once each page has caught up with settee's feed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m demo.beer.screenshots", description=__doc__)
    cli.add_argument("url", help="the running demo, e.g. http://127.0.0.1:8080")
    cli.add_argument("--out", type=Path, default=ROOT / "docs")
    args = cli.parse_args(argv)
    args.out.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=sandbox)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(args.url.rstrip("/") + "/beers")
        page.wait_for_selector('#live-status[data-state="live"]')
        page.screenshot(path=args.out / "demo-beers.png")
        page.locator("#beer-table tbody tr a.name").nth(4).click()
        page.wait_for_selector('#live-status[data-state="live"]')
        page.screenshot(path=args.out / "demo-beer.png")
        browser.close()
    print(f"wrote {args.out / 'demo-beers.png'} and {args.out / 'demo-beer.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
