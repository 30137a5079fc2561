"""Debian's chromium, headless, driven through Debian's chromedriver by selenium: nothing
is downloaded (selenium's own manager is never asked, both paths being given)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextmanager
def chromium(tmp: Path) -> Iterator[Any]:
    """A browser window of 1000 x 640, its profile and driver log under ``tmp``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        assert path.exists(), f"{path} is missing: apt-get install chromium chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container: chromium's own sandbox needs user namespaces
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1000,640",
        f"--user-data-dir={tmp / 'chromium'}",
    ):
        options.add_argument(argument)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp / "driver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def state_of(driver: Any, css: str) -> str | None:
    """The ``data-state`` of the element ``css`` selects (a grid cell), None if none."""
    found = driver.find_elements("css selector", css)
    value = found[0].get_attribute("data-state") if found else None
    return str(value) if value else None
