"""A real headless browser for the UI tests: Debian's `chromium`, driven by Playwright.

Import the fixtures in a conftest (`from tests.browser import browser, screenshots  # noqa: F401`).
Playwright's own browser download is never used: the system's chromium is launched through
`executable_path` (FUNNELSTREAM_TEST_CHROMIUM overrides the path). A missing chromium fails the
test with the command that installs it; it is never skipped.

Screenshots are kept as artifacts under `.artifacts/screenshots/` (FUNNELSTREAM_TEST_ARTIFACTS moves it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

ROOT = Path(__file__).resolve().parent.parent


def chromium_path() -> str:
    given = os.environ.get("FUNNELSTREAM_TEST_CHROMIUM")
    found = given or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("the browser tests need Debian's chromium: apt-get install -y chromium", pytrace=False)
    return found


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Folder for screenshots kept as test artifacts."""
    folder = Path(os.environ.get("FUNNELSTREAM_TEST_ARTIFACTS", ROOT / ".artifacts")) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
