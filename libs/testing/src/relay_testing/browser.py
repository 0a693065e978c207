"""A real headless Chromium for page tests: Debian's ``chromium`` and ``chromium-driver``, never a downloaded one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless without a GPU, a sandbox (root in CI) or /dev/shm (small in containers); no background traffic.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
)

T = TypeVar("T")


@dataclass
class Browser:
    """One Chromium for many tests; ``screenshots`` is where ``shot`` writes ``<name>.png``."""

    driver: WebDriver
    screenshots: Path

    def shot(self, name: str) -> Path:
        """Save what the page shows now as ``<screenshots>/<name>.png`` (name made filesystem-safe)."""
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:150] + ".png")
        self.driver.save_screenshot(str(path))
        return path

    @contextlib.contextmanager
    def screenshot_after(self, name: str) -> Iterator[None]:
        """Run a block, then save a screenshot whether it passed or failed (a broken page must not hide the error)."""
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # the test's own error is the one to report
                self.shot(name)

    def wait(self, condition: Callable[[WebDriver], T | None], *, within: float = 15.0, what: str) -> T:
        """Poll ``condition`` until it returns something truthy (returned); fail naming ``what`` after ``within`` s."""
        try:
            # A re-render between finding an element and reading it (the console replaces a card when its order is
            # polled) is "not yet", not a failure: the next poll finds the new element.
            result = WebDriverWait(
                self.driver, within, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
            ).until(condition)
        except TimeoutException:
            raise AssertionError(f"not within {within:g}s: {what}") from None
        assert result is not None  # until() returns only a truthy value
        return result

    def visible(self, selector: str, *, within: float = 15.0) -> WebElement:
        """The first element matching the CSS ``selector`` that is displayed, once there is one."""

        def shown(driver: WebDriver) -> WebElement | None:
            return next((e for e in driver.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()), None)

        return self.wait(shown, within=within, what=f"{selector} visible")

    def text_in(self, selector: str, text: str, *, within: float = 15.0) -> WebElement:
        """The first element matching the CSS ``selector`` whose visible text contains ``text``, once there is one."""

        def has(driver: WebDriver) -> WebElement | None:
            return next((e for e in driver.find_elements(By.CSS_SELECTOR, selector) if text in e.text), None)

        return self.wait(has, within=within, what=f"{text!r} in {selector}")


def missing_chromium() -> str | None:
    """Why a browser test cannot run here (Debian ``chromium`` / ``chromium-driver`` not installed), or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing: run scripts/install-system-deps.sh (Debian package {package})"
    return None


@contextlib.contextmanager
def chromium(screenshots: Path, *, width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """A headless Chromium (the system's browser and driver) sized ``width`` x ``height``; quit on exit."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (*CHROMIUM_ARGS, f"--window-size={width},{height}"):
        options.add_argument(argument)
    # SE_AVOID_STATS: Selenium Manager sends no usage statistics; with both paths given it downloads nothing.
    with mock.patch.dict(os.environ, {"SE_AVOID_STATS": "true"}):
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield Browser(driver, screenshots)
    finally:
        driver.quit()


class LoopThread:
    """An event loop in a daemon thread, for the servers a browser test talks to: their loop keeps running (and
    their child processes' output keeps being read) while the browser calls block the test's thread."""

    def __init__(self, name: str = "browser-test-servers") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the loop and wait at most ``timeout`` s for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
