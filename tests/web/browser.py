"""A real browser for the console tests: Debian's chromium driven by its chromedriver through
Selenium, headless, with nothing fetched from the network by the browser itself (no component
updates, no sync, no QUIC) and nothing downloaded by Selenium (the driver is given, so
selenium-manager never runs).

``chrome()`` yields a driver with a fresh profile; ``screenshot(driver, name)`` keeps a PNG under
the artifacts folder ($NANODISTRO_TEST_ARTIFACTS, default <repo>/.test-artifacts/console/).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fixture_paths import REPO_ROOT
from needs_tools import require_tools

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "WINDOW",
    "artifacts_dir",
    "chrome",
    "screenshot",
    "set_viewport",
]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1400, 1000)

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # tests run as root, where chromium's own sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--password-store=basic",
)


def artifacts_dir() -> Path:
    """Where screenshots go (created)."""
    folder = Path(
        os.environ.get("NANODISTRO_TEST_ARTIFACTS") or REPO_ROOT / ".test-artifacts" / "console"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def chrome(window: tuple[int, int] = WINDOW) -> Iterator[WebDriver]:
    """A headless chromium (selenium ``webdriver.Chrome``) with a profile of its own, quit after.
    Skips locally (fails under CI) when chromium or chromedriver is missing."""
    require_tools("chromium", "chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="nanodistro-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={window[0]},{window[1]}")
        # the page's console messages, for tests checking a page raised no error
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER)
        driver = webdriver.Chrome(options=options, service=service)
        try:
            set_viewport(driver, *window)
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


def set_viewport(driver: WebDriver, width: int, height: int) -> None:
    """Size the window so the page's viewport (what a screenshot holds) is width x height:
    chromium's window size includes its own frame, even headless."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(width + (width - inner[0]), height + (height - inner[1]))


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save the current page as ``<artifacts>/<name>.png``; the path."""
    path = artifacts_dir() / f"{name}.png"
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"chromium could not save a screenshot to {path}")
    return path
