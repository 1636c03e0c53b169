"""Debian's Chromium, headless, driven through Debian's ChromeDriver: the
real browser the live view's tests and screenshots use. Nothing is
downloaded: without /usr/bin/chromium and /usr/bin/chromedriver (Debian's
chromium and chromium-driver packages) it fails with what to install."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, and quiet: this machine's network is closed, and Chromium's own
# connections (updates, sync, safe browsing) would only fail.
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # run as root in CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A new headless Chromium with a window of ``width`` x ``height`` and
    a profile of its own, quit and removed afterwards."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not found: install Debian's chromium and chromium-driver (.ci/run does)"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()
