"""Browser fixtures for the web suite: a Passgate server, a web app on a second loopback
origin that loads Authsignal's published browser SDK unchanged (installed by npm from
tests/web/sdk/package-lock.json), and Debian's chromium with a virtual authenticator.

The browser suite runs on SQLite only: what it proves (CORS, cookies, the browser SDK's wire,
the hosted pages and the console) does not depend on the database, and every service it
reaches runs on both databases in the rest of the suite."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from authsignal.client import AuthsignalClient

from tests.browser import CHROMIUM, CHROMIUM_ARGS, add_virtual_authenticator
from tests.conftest import IN_CI
from tests.live_server import LiveServer, Tenant

SDK_DIR = Path(__file__).parent / "sdk"
APP_PAGES = Path(__file__).parent / "app"


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One Passgate for the browser suite, its pages on http://localhost:<port>."""
    live = LiveServer(f"sqlite:///{tmp_path_factory.mktemp('web') / 'passgate.db'}").start()
    yield live
    live.stop()


@pytest.fixture(scope="session")
def sdk_dist() -> Path:
    """`@authsignal/browser` as published on npm, at the version package-lock.json pins."""
    dist = SDK_DIR / "node_modules" / "@authsignal" / "browser" / "dist"
    if not (dist / "index.js").exists():
        if not shutil.which("npm"):
            if IN_CI:
                pytest.fail("npm is required under CI")
            pytest.skip("npm is not installed")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=SDK_DIR,
            check=True,
            timeout=300,
        )
    return dist


class _AppHandler(SimpleHTTPRequestHandler):
    """Serves tests/web/app and, under /sdk/, the browser SDK's dist folder."""

    sdk: Path

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0].split("#", 1)[0]
        if path.startswith("/sdk/"):
            return str(self.sdk / path.removeprefix("/sdk/"))
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class AppSite:
    """The web app under test: another origin than Passgate's, on the same loopback host."""

    origin: str

    def url(self, path: str = "/") -> str:
        return self.origin + path


@pytest.fixture(scope="session")
def app_site(sdk_dist: Path) -> Iterator[AppSite]:
    handler = partial(type("Handler", (_AppHandler,), {"sdk": sdk_dist}), directory=str(APP_PAGES))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield AppSite(f"http://localhost:{httpd.server_address[1]}")
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def web_tenant(web_server: LiveServer, app_site: AppSite) -> Tenant:
    """A tenant whose web app runs on the app site (rp id localhost)."""
    return web_server.create_tenant(name="Web shop", rp_id="localhost", origins=[app_site.origin])


@pytest.fixture
def backend(web_server: LiveServer, web_tenant: Tenant) -> Iterator[AuthsignalClient]:
    """The web app's backend: Authsignal's Python server SDK with the tenant's secret key."""
    client = AuthsignalClient(api_secret_key=web_tenant.secret_key, api_url=web_server.api_url)
    yield client
    client.session.close()


@pytest.fixture(scope="module")
def chromium(web_server: LiveServer, app_site: AppSite) -> Iterator[Any]:
    """One browser per module. It starts after the servers: Playwright's sync API keeps an
    event loop running, and fixtures that start their own must not run inside it."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"chromium is required under CI ({CHROMIUM})")
        pytest.skip(f"no chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class BrowserTab:
    page: Any
    cdp: Any
    authenticator_id: str

    def credentials(self) -> list[dict[str, Any]]:
        found = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        return list(found["credentials"])

    def set_user_verified(self, verified: bool) -> None:
        self.cdp.send(
            "WebAuthn.setUserVerified",
            {"authenticatorId": self.authenticator_id, "isUserVerified": verified},
        )


@pytest.fixture
def tab(chromium: Any) -> Iterator[BrowserTab]:
    """A fresh browser context (no cookies, no storage) with a platform authenticator."""
    context = chromium.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    authenticator_id = add_virtual_authenticator(cdp)
    yield BrowserTab(page, cdp, authenticator_id)
    context.close()


def open_app(tab: BrowserTab, app_site: AppSite, path: str = "/") -> Any:
    """Load an app page and wait until it has imported the browser SDK."""
    tab.page.goto(app_site.url(path))
    tab.page.wait_for_function("window.sdkReady === true")
    return tab.page
