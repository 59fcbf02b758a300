"""A real browser for the pages people see: the system's Chromium driven by Playwright.

Playwright never downloads a browser here: it launches `CHROMIUM` (default
/usr/bin/chromium) with a fresh profile per test. A missing Chromium fails the tests with
what to install; they are never skipped. A failing test leaves a screenshot in its temp dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


# Module scope, not session: while Playwright's sync API is open it keeps an event loop
# running in the main thread, and every later asyncio test (asyncio.run, pytest-asyncio)
# would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is missing ({CHROMIUM}): the browser tests need it. Install it with "
            "`apt-get install chromium` (Debian/Ubuntu; scripts/bootstrap.sh does this as "
            "root) or set CHROMIUM to a Chromium binary.",
            pytrace=False,
        )
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def context(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),  # a fresh user-data dir: no cookies from other tests
        executable_path=str(CHROMIUM),
        headless=True,
        args=LAUNCH_ARGS,
        ignore_https_errors=True,  # the sandbox's own CA; the app side is plain loopback http
    )
    context.set_default_timeout(20_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    page = context.pages[0] if context.pages else context.new_page()
    yield page
    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    if failed:
        shot = tmp_path / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")
