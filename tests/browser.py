"""A real browser for the page tests: Debian's Chromium driven by Playwright (``playwright install``
downloads a browser of its own, which cannot work offline; the system's is used instead).

Every page a test visits can be kept as a screenshot: ``Browser.shot(page, name)`` writes
``<artifacts>/screenshots/<test>/<nn>-<name>.png``, where ``<artifacts>`` is ``EXPO_TEST_ARTIFACTS``
(default ``var/test-artifacts``). CI keeps that directory.

Not a test module.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser as PlaywrightBrowser
from playwright.sync_api import BrowserContext, Page, sync_playwright

ARTIFACTS = Path(os.environ.get("EXPO_TEST_ARTIFACTS", "var/test-artifacts"))


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "./expo test installs Debian's chromium for the page tests"
    return path


@dataclass
class Browser:
    """One Chromium for a test; each user (a buyer, a staff member) gets a context of their own."""

    browser: PlaywrightBrowser
    screenshots: Path
    shots: int = 0
    contexts: list[BrowserContext] = field(default_factory=list)

    def user(self, lang: str = "zh-CN") -> Page:
        """A new user's window (own cookies), as a desktop browser in ``lang``."""
        context = self.browser.new_context(locale=lang, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        self.contexts.append(context)
        return context.new_page()

    def shot(self, page: Page, name: str) -> Path:
        """Keep the page as it is now (full page) under the test's screenshots."""
        self.shots += 1
        path = self.screenshots / f"{self.shots:02d}-{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@contextmanager
def chromium(test_name: str) -> Iterator[Browser]:
    screenshots = ARTIFACTS / "screenshots" / re.sub(r"[^A-Za-z0-9_-]+", "-", test_name)
    shutil.rmtree(screenshots, ignore_errors=True)
    screenshots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        wrapped = Browser(browser, screenshots)
        try:
            yield wrapped
        finally:
            for context in wrapped.contexts:
                context.close()
            browser.close()
