"""A real headless Chromium for the HTML report's tests: Debian's `chromium` and `chromium-driver`
packages, driven by Selenium through the driver's own path (so Selenium Manager never looks for,
or downloads, a browser or a driver).

- `chromium(tmp_path)`: a started `webdriver.Chrome`; skips, naming the apt-get command, when the
  browser, the driver or selenium is missing, and fails instead under GPO_REQUIRE_BROWSER=1 (CI).
- `HitCounter`: a server on 127.0.0.1 that counts every request it gets, whatever its path (a
  page that loads nothing leaves it at 0).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.background import BackgroundServer

# Debian's paths; GPO_CHROMIUM / GPO_CHROMEDRIVER name another pair (a GitHub runner's Chrome and its driver)
CHROMIUM = Path(os.environ.get("GPO_CHROMIUM") or "/usr/bin/chromium")
CHROMEDRIVER = Path(os.environ.get("GPO_CHROMEDRIVER") or "/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"


def chromium(tmp_path: Path, width: int = 1400, height: int = 1000):
    """Headless Chromium with a profile under `tmp_path`; the caller quits it."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        why = f"the HTML report's browser tests need Debian's chromium and chromium-driver ({INSTALL}); " \
              f"missing: {', '.join(missing)}"
        if os.environ.get("GPO_REQUIRE_BROWSER") == "1":
            pytest.fail(why + " (GPO_REQUIRE_BROWSER=1)")
        pytest.skip(why)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


class HitCounter(BackgroundServer):
    """Answers 404 to everything and counts the requests (`hits`: their paths)."""

    thread_name = "hit-counter"
    description = "hit counter"

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[str] = []

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._hit)
        return app

    async def _hit(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        return web.Response(status=404)
