"""A real browser for the page tests: Debian's Chromium driven by Playwright (``playwright install``
downloads a browser of its own, which cannot work offline; the system's is used instead).

Every page a test visits can be kept as a screenshot: ``Browser.shot(page, name)`` writes
``<artifacts>/screenshots/<test>/<nn>-<name>.png``, where ``<artifacts>`` is ``EXPO_TEST_ARTIFACTS``
(default ``var/test-artifacts``). CI keeps that directory.

Each page kept is also audited by axe-core (bundled with ``axe-playwright-python``, so offline) for the
WCAG 2.x level A and AA rules: what it finds goes to ``accessibility.json`` beside the screenshots, and
``Browser.assert_accessible()`` fails the test with the list.

Not a test module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Browser as PlaywrightBrowser
from playwright.sync_api import BrowserContext, Page, sync_playwright

ARTIFACTS = Path(os.environ.get("EXPO_TEST_ARTIFACTS", "var/test-artifacts"))
# Every WCAG 2.0, 2.1 and 2.2 rule of levels A and AA that axe-core has (best practices are not asked).
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_AA}, "resultTypes": ["violations"]}


@dataclass(frozen=True)
class Violation:
    """One axe-core rule a kept page breaks, with the elements (CSS selectors) that break it."""

    shot: str
    url: str
    rule: str
    impact: str | None
    help: str
    selectors: list[str]

    def __str__(self) -> str:
        return f"{self.shot}: {self.rule} ({self.impact}) {self.help}: {', '.join(self.selectors)}"


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
    violations: list[Violation] = field(default_factory=list)
    audited: list[dict[str, str]] = field(default_factory=list)  # each page audited: shot, url
    axe: Any = field(default_factory=Axe)

    def user(self, lang: str = "zh-CN") -> Page:
        """A new user's window (own cookies), as a desktop browser in ``lang``."""
        context = self.browser.new_context(locale=lang, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        self.contexts.append(context)
        return context.new_page()

    def shot(self, page: Page, name: str, audit: bool = True) -> Path:
        """Keep the page as it is now (full page) under the test's screenshots, and audit it (``audit``:
        false for what is not one of our pages, such as a voucher the browser shows by itself)."""
        self.shots += 1
        path = self.screenshots / f"{self.shots:02d}-{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=True)
        if audit:
            self.audit(page, path.stem)
        return path

    def audit(self, page: Page, shot: str) -> None:
        """Run axe-core in the page as it is now; what it finds is added to the report beside the
        screenshots (rewritten each time, so a walk that stops half-way still leaves it)."""
        results = self.axe.run(page, options=AXE_OPTIONS).response
        found = results["violations"]
        self.audited.append({"shot": shot, "url": page.url})
        self.violations += [
            Violation(
                shot=shot,
                url=page.url,
                rule=rule["id"],
                impact=rule["impact"],
                help=rule["help"],
                selectors=[" ".join(map(str, node["target"])) for node in rule["nodes"]],
            )
            for rule in found
        ]
        report = {
            "axe": results["testEngine"]["version"],
            "tags": WCAG_AA,
            "pages": self.audited,
            "violations": [asdict(violation) for violation in self.violations],
        }
        (self.screenshots / "accessibility.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))

    def assert_accessible(self) -> None:
        """Fail with every violation found in the pages kept so far."""
        assert not self.violations, "axe-core (WCAG 2.x A/AA) found in the pages:\n" + "\n".join(
            map(str, self.violations)
        )


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
