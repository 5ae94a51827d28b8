"""Email magic links with Authsignal's browser SDK (`@authsignal/browser` 1.16.0 from npm,
unchanged) on a web app's own origin, against Passgate on another: `emailML.enroll` sends
the link and `checkVerificationStatus` polls while the user opens the delivered link in
another browser (another device: no cookies, no token) and presses its button; the poll
then resolves with a token the backend validates. `emailML.challenge` likewise for a later
sign-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from authsignal.client import AuthsignalClient

from passgate.server.services import audit
from passgate.server.services.delivery.config import configure_email
from passgate.server.store.db import Db
from tests.browser import require_chromium
from tests.live_server import LiveServer, Tenant
from tests.receivers import SmtpReceiver
from tests.web.conftest import AppSite, BrowserTab, open_app
from tests.web.test_browser_sdk import AppPage, valid

require_chromium()

EMAIL = "web-ml@example.com"
# The SDK polls until the link is confirmed, however long that takes: the test waits this long.
POLL = """async () => await Promise.race([
    window.linkStatus,
    new Promise(resolve => setTimeout(() => resolve({timedOut: true}), 20000)),
])"""


@pytest.fixture
def app(web_server: LiveServer, web_tenant: Tenant, app_site: AppSite, tab: BrowserTab) -> AppPage:
    open_app(tab, app_site)
    return AppPage(tab, web_tenant.id, web_server.public_url + "/v1")


@pytest.fixture
def smtp(web_server: LiveServer, web_tenant: Tenant) -> Iterator[SmtpReceiver]:
    """An SMTP server on loopback that the web tenant sends its email to."""
    with SmtpReceiver() as receiver:

        async def work(db: Db) -> None:
            await configure_email(
                db,
                audit.Actor(type="admin", id="test"),
                web_tenant.id,
                host=receiver.host,
                port=receiver.port,
                security="none",
                sender="Web shop <no-reply@example.com>",
            )

        web_server.run(work)
        yield receiver


def open_link_elsewhere(chromium: Any, link: str) -> str:
    """Open the link in a browser context of its own (another device) and press the button;
    the text the page then shows."""
    context = chromium.new_context()
    try:
        page = context.new_page()
        shown = page.goto(link)
        assert shown is not None and shown.status == 200
        page.click("#confirm")
        page.wait_for_selector("#message")
        return str(page.inner_text("#message"))
    finally:
        context.close()


def test_enrol_and_sign_in_by_email_link(
    app: AppPage,
    backend: AuthsignalClient,
    smtp: SmtpReceiver,
    chromium: Any,
    tab: BrowserTab,
) -> None:
    token = backend.track("web-ml", "signUp")["token"]
    enrolled = app.run(
        """
        authsignal.setToken(token);
        const enrolled = await authsignal.emailML.enroll({email});
        // The app waits for the link as Authsignal's docs show: poll until it is confirmed.
        window.linkStatus = authsignal.emailML.checkVerificationStatus();
        return enrolled;
        """,
        token=token,
        email=EMAIL,
    )
    assert "error" not in enrolled, enrolled
    assert enrolled["data"]["userId"] == "web-ml"

    link = smtp.wait(to=EMAIL).link
    assert link is not None
    shown = open_link_elsewhere(chromium, link)
    assert "return to the device you started on" in shown

    verified = tab.page.evaluate(POLL)
    assert "error" not in verified, verified
    assert verified["data"]["isVerified"] is True
    assert verified["data"]["userAuthenticator"]["verificationMethod"] == "EMAIL_MAGIC_LINK"
    checked = valid(backend, verified["data"]["token"])
    assert (checked["action"], checked["verification_method"]) == ("signUp", "EMAIL_MAGIC_LINK")

    # A later sign-in: the link goes to the enrolled address.
    token = backend.track("web-ml", "signIn")["token"]
    started = app.run(
        """
        authsignal.setToken(token);
        const started = await authsignal.emailML.challenge();
        window.linkStatus = authsignal.emailML.checkVerificationStatus();
        return started;
        """,
        token=token,
    )
    assert started["data"]["challengeId"], started
    second = smtp.wait(to=EMAIL, count=2).link
    assert second is not None and second != link
    assert "return to the device you started on" in open_link_elsewhere(chromium, second)
    signed_in = tab.page.evaluate(POLL)
    assert signed_in["data"]["isVerified"] is True, signed_in
    checked = valid(backend, signed_in["data"]["token"])
    assert (checked["action"], checked["user_id"]) == ("signIn", "web-ml")
