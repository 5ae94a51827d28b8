"""The hosted challenge page (the `url` a track returns) in a real browser: redirect mode,
and the popup and window modes of Authsignal's browser SDK (`launch(url, {mode})`, 1.16.0
from npm, unchanged) on the app's own origin. The backend is Authsignal's Python server SDK;
push devices are Passgate's Python SDK, approving with the number the page shows."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore
from passgate.server.services import branding
from passgate.server.store.db import Db
from tests.browser import require_chromium
from tests.live_server import LiveServer, Tenant
from tests.web.conftest import AppSite, BrowserTab, open_app
from tests.web.screenshots import screenshot

require_chromium()

Device = Callable[[str], AuthsignalSync]
POPUP_FRAME = "#__authsignal-popup-iframe"


@pytest.fixture
def branded(web_server: LiveServer, web_tenant: Tenant) -> Tenant:
    """The web tenant with an accent colour, as its operator would set it."""

    async def work(db: Db) -> None:
        await branding.set_accent_color(db, web_tenant.id, "#7a2e8f")

    web_server.run(work)
    return web_tenant


@pytest.fixture
def device(
    web_server: LiveServer, web_tenant: Tenant, backend: AuthsignalClient, tmp_path: Path
) -> Iterator[Device]:
    """Enrol a push device (Passgate's Python SDK with its own key file) for a user."""
    made: list[AuthsignalSync] = []

    def enrol(user_id: str) -> AuthsignalSync:
        keys = DeviceKeyStore(tmp_path / f"{user_id}.pem")
        client = AuthsignalSync(web_tenant.id, web_server.api_url, device_keys=keys)
        made.append(client)
        token = backend.track(user_id, "enrollPush", {"scope": "add:authenticators"})["token"]
        assert client.push.add_credential(token).ok
        return client

    yield enrol
    for client in made:
        client.close()


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def valid_for(backend: AuthsignalClient, token: str) -> dict[str, Any]:
    result = backend.validate_challenge({"token": token})
    assert result["is_valid"], result
    return dict(result)


class Approver(threading.Thread):
    """The person at the device: waits for the push, then answers with the number they read
    on the page, while the page waits for the outcome."""

    def __init__(self, device: AuthsignalSync, number: str | None, approve: bool = True) -> None:
        super().__init__(daemon=True)
        self.device, self.number, self.approve = device, number, approve
        self.answer: Any = None

    def run(self) -> None:
        challenge = self.device.push.get_challenge(wait=10).data
        assert challenge is not None
        self.answer = self.device.push.update_challenge(
            challenge.challenge_id, self.approve, self.number
        )

    def finish(self) -> Any:
        self.join(timeout=20)
        assert self.answer is not None and self.answer.error is None, self.answer
        return self.answer.data


def launch(page: Any, url: str, mode: str) -> None:
    """`authsignal.launch(url, {mode})` in the app's page; the result lands in window.done."""
    page.evaluate(
        """([url, mode]) => {
            window.done = null;
            const authsignal = new Authsignal({tenantId: "unused", baseUrl: "unused"});
            authsignal.launch(url, {mode, onError: (e) => { window.apiError = e; }})
                .then((result) => { window.done = result; });
        }""",
        [url, mode],
    )


# Redirect mode ---------------------------------------------------------------------------


def test_redirect_mode_enrols_and_signs_in_with_a_passkey(
    tab: BrowserTab,
    app_site: AppSite,
    backend: AuthsignalClient,
    branded: Tenant,
    device: Device,
) -> None:
    page = tab.page
    back = app_site.url("/return.html")

    # A new user: the page enrols a passkey, then returns to the app with `&token=`.
    tracked = backend.track("hp-alice", "signUp", {"redirectUrl": f"{back}?from=page"})
    page.goto(tracked["url"])
    assert urlsplit(page.url).path == "/challenge" and "token" not in page.url
    assert page.locator("h1").inner_text() == "Create a passkey"
    screenshot(page, "hosted-enrol")
    page.get_by_role("button", name="Create a passkey").click()
    page.wait_for_url(f"{back}?from=page&token=*")
    assert valid_for(backend, query(page.url)["token"])["user_id"] == "hp-alice"
    assert len(tab.credentials()) == 1
    # The link is used up now.
    assert httpx.get(tracked["url"]).status_code == 410

    # Enrolled: the page signs in, keyboard only (the primary button has the focus).
    tracked = backend.track("hp-alice", "signIn", {"redirectUrl": back})
    page.goto(tracked["url"])
    assert page.locator("h1").inner_text() == "Confirm it's you"
    assert page.evaluate("document.activeElement.id") == "passkey-sign-in"
    screenshot(page, "hosted-sign-in")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{back}?token=*")
    assert valid_for(backend, query(page.url)["token"])["action"] == "signIn"

    # With a push device too: this browser used her passkey here, so it leads and push waits
    # one click away. Cancel goes back with the error.
    device("hp-alice")
    tracked = backend.track("hp-alice", "signIn", {"redirectUrl": back})
    page.goto(tracked["url"])
    assert page.locator("#push").is_hidden()
    page.get_by_role("button", name="Use my device instead").click()
    assert page.locator("#verification-code").inner_text() == tracked["verification_code"]
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(f"{back}?error=user_canceled")


def test_redirect_mode_push_shows_the_number_the_device_needs(
    tab: BrowserTab,
    app_site: AppSite,
    backend: AuthsignalClient,
    web_tenant: Tenant,
    device: Device,
) -> None:
    phone = device("hp-bob")
    page = tab.page
    back = app_site.url("/return.html")

    tracked = backend.track("hp-bob", "signIn", {"redirectUrl": back, "locale": "de-CH"})
    page.goto(tracked["url"])
    number = page.locator("#verification-code").inner_text()
    assert number == tracked["verification_code"]
    assert page.get_attribute("html", "lang") == "de"
    assert "Warten auf Ihr Gerät" in page.locator("#status").inner_text()
    screenshot(page, "hosted-push")
    page.set_viewport_size({"width": 360, "height": 640})
    screenshot(page, "hosted-push-360")
    approver = Approver(phone, number)
    approver.start()
    page.wait_for_url(f"{back}?token=*")
    assert approver.finish() is True
    assert valid_for(backend, query(page.url)["token"])["verification_method"] == "PUSH"

    # Declined on the device: back to the app with the error.
    tracked = backend.track("hp-bob", "signIn", {"redirectUrl": back})
    page.goto(tracked["url"])
    page.locator("#verification-code").wait_for()
    declined = Approver(phone, None, approve=False)
    declined.start()
    page.wait_for_url(f"{back}?error=challenge_failed")
    assert declined.finish() is False


# Popup and window modes (Authsignal's browser SDK) ------------------------------------


def test_popup_mode_signs_in_with_a_passkey(
    tab: BrowserTab, app_site: AppSite, backend: AuthsignalClient, branded: Tenant
) -> None:
    # A passkey made on the hosted page in redirect mode, used inside the app's popup.
    enrolment = backend.track("hp-carol", "signUp")
    page = tab.page
    page.goto(enrolment["url"])
    page.get_by_role("button", name="Create a passkey").click()
    page.get_by_text("You can close this page").wait_for()

    page = open_app(tab, app_site)
    tracked = backend.track("hp-carol", "signIn")
    launch(page, tracked["url"], "popup")
    frame = page.frame_locator(POPUP_FRAME)
    frame.get_by_role("button", name="Continue with a passkey").wait_for()
    # AUTHSIGNAL_READY revealed the frame; the {height} messages sized it.
    page.wait_for_selector(f"{POPUP_FRAME}.as-iframe-ready")
    assert page.eval_on_selector(POPUP_FRAME, "frame => frame.style.height").endswith("px")
    assert "token" not in page.frame(name="authsignal").url
    page.wait_for_selector("#__authsignal-popup-container.as-popup-visible")
    page.wait_for_timeout(300)  # the SDK's fade-in
    screenshot(page, "hosted-popup")
    frame.get_by_role("button", name="Continue with a passkey").click()
    page.wait_for_function("window.done !== null")
    result = page.evaluate("window.done")
    assert valid_for(backend, result["token"])["user_id"] == "hp-carol"
    assert page.locator(POPUP_FRAME).count() == 0


def test_popup_and_window_modes_with_push(
    tab: BrowserTab, app_site: AppSite, backend: AuthsignalClient, device: Device
) -> None:
    phone = device("hp-dan")
    page = open_app(tab, app_site)

    tracked = backend.track("hp-dan", "payment")
    launch(page, tracked["url"], "popup")
    frame = page.frame_locator(POPUP_FRAME)
    number = frame.locator("#verification-code").inner_text()
    assert number == tracked["verification_code"]
    approver = Approver(phone, number)
    approver.start()
    page.wait_for_function("window.done !== null")
    assert approver.finish() is True
    assert valid_for(backend, page.evaluate("window.done.token"))["action"] == "payment"

    # Window mode: the SDK opens the page with window.open and hears from it as its opener.
    tracked = backend.track("hp-dan", "transfer")
    with page.context.expect_page() as opened:
        launch(page, tracked["url"], "window")
    window = opened.value
    window.locator("#verification-code").wait_for()
    assert "token" not in window.url
    approver = Approver(phone, window.locator("#verification-code").inner_text())
    approver.start()
    page.wait_for_function("window.done !== null")
    assert approver.finish() is True
    assert valid_for(backend, page.evaluate("window.done.token"))["action"] == "transfer"
    for _ in range(50):  # the SDK closes its window on AUTHSIGNAL_CLOSE_POPUP
        if window.is_closed():
            break
        page.wait_for_timeout(100)
    assert window.is_closed()


def test_the_page_reports_only_to_the_tenants_own_origins(
    tab: BrowserTab, app_site: AppSite, backend: AuthsignalClient
) -> None:
    # The app's page, served on an origin the tenant does not list (127.0.0.1, not localhost).
    foreign = app_site.origin.replace("localhost", "127.0.0.1")
    tab.page.goto(foreign + "/")
    tab.page.wait_for_function("window.sdkReady === true")
    tab.page.evaluate(
        "window.heard = []; addEventListener('message', (e) => window.heard.push(e.data));"
    )
    tracked = backend.track("hp-ida", "signUp")
    with tab.page.context.expect_page() as opened:
        launch(tab.page, tracked["url"], "window")
    window = opened.value
    window.get_by_role("button", name="Cancel").click()  # posts AUTHSIGNAL_CLOSE_POPUP
    window.get_by_role("button", name="Cancel").wait_for(state="attached")
    tab.page.wait_for_timeout(300)
    assert tab.page.evaluate("window.heard") == []
    assert not window.is_closed()


# Refusals ------------------------------------------------------------------------------


def test_an_expired_token_gets_a_plain_message(
    tab: BrowserTab, web_server: LiveServer, web_tenant: Tenant
) -> None:
    expired = web_server.expired_token(web_tenant.id, "hp-erin")
    response = tab.page.goto(f"{web_server.public_url}/challenge?token={expired}")
    assert response is not None and response.status == 401
    assert tab.page.locator("#message").inner_text() == (
        "This link has expired. Go back and start again."
    )
    assert "token" not in tab.page.url
    screenshot(tab.page, "hosted-expired")
