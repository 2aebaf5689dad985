"""Debian's Chromium as the browser tests drive it (Playwright for Python, no browser
download), on a page that records what a person would not see: console errors and every
request it made."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def watched_page(width: int, height: int) -> Iterator[tuple[object, dict[str, list]]]:
    """(a page of that viewport, {"errors": console errors and uncaught exceptions,
    "requests": every URL it asked for})."""
    from playwright.sync_api import sync_playwright

    seen: dict[str, list] = {"errors": [], "requests": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: seen["errors"].append(m.text)
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("request", lambda r: seen["requests"].append(r.url))
            yield page, seen
        finally:
            browser.close()
