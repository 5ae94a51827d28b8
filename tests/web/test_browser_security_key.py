"""Security keys with Authsignal's browser SDK (`@authsignal/browser` 1.16.0 from npm,
unchanged) on a web app's own origin, against Passgate on another: `securityKey.enroll` then
`securityKey.verify` in Debian's chromium, answered by Chrome's virtual authenticator set up
as a roaming USB key (CTAP2, no resident keys, no user verification), and the backend
validating each token with Authsignal's Python server SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from authsignal.client import AuthsignalClient

from tests.browser import add_virtual_authenticator, require_chromium
from tests.live_server import LiveServer, Tenant
from tests.web.conftest import AppSite, BrowserTab, open_app
from tests.web.test_browser_sdk import AppPage, valid

require_chromium()

# A plain FIDO2 security key: USB, no discoverable credentials, no PIN.
USB_KEY = {
    "transport": "usb",
    "hasResidentKey": False,
    "hasUserVerification": False,
    "isUserVerified": False,
}


@pytest.fixture
def key_tab(chromium: Any) -> Iterator[BrowserTab]:
    """A fresh browser context whose only authenticator is a roaming USB key."""
    context = chromium.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    authenticator_id = add_virtual_authenticator(cdp, **USB_KEY)
    yield BrowserTab(page, cdp, authenticator_id)
    context.close()


@pytest.fixture
def app(
    web_server: LiveServer, web_tenant: Tenant, app_site: AppSite, key_tab: BrowserTab
) -> AppPage:
    open_app(key_tab, app_site)
    return AppPage(key_tab, web_tenant.id, web_server.public_url + "/v1")


def test_enrol_then_verify_a_security_key(
    app: AppPage, backend: AuthsignalClient, key_tab: BrowserTab
) -> None:
    token = backend.track("web-key", "signUp")["token"]
    enrolled = app.run(
        "authsignal.setToken(token); return await authsignal.securityKey.enroll();", token=token
    )
    assert "error" not in enrolled, enrolled
    checked = valid(backend, enrolled["data"]["token"])
    assert (checked["action"], checked["verification_method"]) == ("signUp", "SECURITY_KEY")
    (credential,) = key_tab.credentials()
    assert credential["isResidentCredential"] is False  # residentKey "discouraged" honoured
    registration = enrolled["data"]["registrationResponse"]
    assert registration["authenticatorAttachment"] == "cross-platform"

    (listed,) = backend.get_authenticators("web-key")
    assert listed["verification_method"] == "SECURITY_KEY"
    assert listed["webauthn_credential"]["credential_id"] == registration["id"]

    token = backend.track("web-key", "transfer")["token"]
    verified = app.run(
        "authsignal.setToken(token); return await authsignal.securityKey.verify();", token=token
    )
    assert "error" not in verified, verified
    assert verified["data"]["isVerified"] is True
    assert verified["data"]["authenticationResponse"]["id"] == registration["id"]
    checked = valid(backend, verified["data"]["token"])
    assert (checked["action"], checked["user_id"]) == ("transfer", "web-key")
    assert checked["verification_method"] == "SECURITY_KEY"
    assert key_tab.credentials()[0]["signCount"] >= 2  # the key counted both ceremonies
