"""A real browser: Debian's chromium, driven by Playwright, with Chrome's virtual
authenticator (CDP), signs up and in through the Client API exactly as a web app would, and
the backend validates the results with Authsignal's Python server SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from authsignal.client import AuthsignalClient

from passgate.server.services import passkey_policy, tenants
from passgate.server.store.db import Db
from tests.browser import CHROMIUM, CHROMIUM_ARGS, add_virtual_authenticator, require_chromium
from tests.live_server import LiveServer

require_chromium()

from playwright.sync_api import Page, sync_playwright  # noqa: E402

SIGN_UP = """async ({token}) => {
  const call = (path, body) => fetch('/v1/client' + path, {method: 'POST',
      headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + token},
      body: JSON.stringify(body)}).then(r => r.json());
  const {challengeId, options} = await call(
      '/user-authenticators/passkey/registration-options', {username: 'browser@example.com'});
  const credential = await navigator.credentials.create(
      {publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)});
  return call('/user-authenticators/passkey',
      {challengeId, registrationCredential: credential.toJSON()});
}"""

# Sign-in with no token: Basic auth carrying the tenant id as @authsignal/browser encodes it.
SIGN_IN = """async ({tenantId}) => {
  const call = (path, body) => fetch('/v1/client' + path, {method: 'POST',
      headers: {'Content-Type': 'application/json',
                Authorization: 'Basic ' + btoa(encodeURIComponent(tenantId))},
      body: JSON.stringify(body)}).then(r => r.json());
  const {challengeId, options} = await call(
      '/user-authenticators/passkey/authentication-options', {});
  const credential = await navigator.credentials.get(
      {publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
  return call('/verify/passkey', {challengeId, authenticationCredential: credential.toJSON()});
}"""


@pytest.fixture
def browser_page() -> Iterator[tuple[Page, Any]]:
    """Per test: Playwright's sync API runs an event loop, which must not be running while
    the session's database fixtures start theirs."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page()
        cdp = page.context.new_cdp_session(page)
        yield page, cdp
        browser.close()


def test_sign_up_and_sign_in_in_chromium(
    server: LiveServer, browser_page: tuple[Page, Any]
) -> None:
    page, cdp = browser_page
    origin = f"http://localhost:{server.port}"  # http://localhost is a secure context
    tenant = server.create_tenant(name="web", rp_id="localhost", origins=[origin])

    async def require_user_verification(db: Db) -> None:
        row = await tenants.get_tenant(db, tenant.id)
        await passkey_policy.update_settings(db, row, {"userVerification": "required"})

    server.run(require_user_verification)
    authsignal = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=server.api_url)
    authenticator = add_virtual_authenticator(cdp)
    try:
        page.goto(f"{origin}/health")
        token = authsignal.track("browser-user", "signUp")["token"]
        added = page.evaluate(SIGN_UP, {"token": token})
        assert added.get("isVerified") is True, added
        signed_up = authsignal.validate_challenge({"token": added["accessToken"]})
        assert signed_up["is_valid"] and signed_up["user_id"] == "browser-user"

        verified = page.evaluate(SIGN_IN, {"tenantId": tenant.id})
        assert verified.get("isVerified") is True, verified
        assert verified["userId"] == "browser-user"
        assert verified["username"] == "browser@example.com"
        signed_in = authsignal.validate_challenge({"token": verified["accessToken"]})
        assert signed_in["is_valid"] and signed_in["action"] == "signInWithPasskey"

        # The tenant requires user verification: without it the browser refuses to assert.
        cdp.send(
            "WebAuthn.setUserVerified", {"authenticatorId": authenticator, "isUserVerified": False}
        )
        refused = page.evaluate(
            f"({SIGN_IN})({{tenantId: '{tenant.id}'}}).catch(e => ({{thrown: e.name}}))"
        )
        assert refused == {"thrown": "NotAllowedError"}
    finally:
        cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
        authsignal.session.close()
