"""Authsignal's browser SDK (`@authsignal/browser` 1.16.0 from npm, unchanged) on a web app's
own origin, against Passgate on another: every call a web app makes, in Debian's chromium with
the CDP virtual authenticator, and the backend checking each result with Authsignal's Python
server SDK."""

from __future__ import annotations

from typing import Any

import pytest
from authsignal.client import AuthsignalClient

from tests.browser import require_chromium
from tests.live_server import LiveServer, Tenant
from tests.web.conftest import AppSite, BrowserTab, open_app

require_chromium()


class AppPage:
    """The web app's page, building the SDK as an app does: tenant id and Passgate's base URL,
    nothing else changed."""

    def __init__(self, tab: BrowserTab, tenant_id: str, base_url: str) -> None:
        self.tab, self.tenant_id, self.base_url = tab, tenant_id, base_url

    def run(self, body: str, **arguments: Any) -> Any:
        """Run `body` in the page with `authsignal` built and `arguments` in scope."""
        names = ", ".join(["tenantId", "baseUrl", *arguments])
        script = (
            f"async ({{{names}}}) => {{ const authsignal = new Authsignal({{tenantId, baseUrl}});"
            f" {body} }}"
        )
        return self.tab.page.evaluate(
            script, {"tenantId": self.tenant_id, "baseUrl": self.base_url, **arguments}
        )


@pytest.fixture
def app(web_server: LiveServer, web_tenant: Tenant, app_site: AppSite, tab: BrowserTab) -> AppPage:
    open_app(tab, app_site)
    return AppPage(tab, web_tenant.id, web_server.public_url + "/v1")


def sign_up(
    app: AppPage, backend: AuthsignalClient, user_id: str, username: str, **options: Any
) -> dict[str, Any]:
    token = backend.track(user_id, "signUp", {"scope": "add:authenticators"})["token"]
    result = app.run(
        "return await authsignal.passkey.signUp({token, username, ...options});",
        token=token,
        username=username,
        options=options,
    )
    assert "error" not in result, result
    return dict(result["data"])


def valid(backend: AuthsignalClient, token: str) -> dict[str, Any]:
    result = backend.validate_challenge({"token": token})
    assert result["is_valid"], result
    return dict(result)


def test_sign_up_and_every_sign_in(app: AppPage, backend: AuthsignalClient) -> None:
    added = sign_up(app, backend, "web-alice", "alice@example.com")
    valid(backend, added["token"])
    # The response's userAuthenticator, as the SDK hands it to the app.
    authenticator = added["userAuthenticator"]
    assert authenticator["verificationMethod"] == "PASSKEY"
    assert authenticator["userId"] == "web-alice"
    credential_id = added["registrationResponse"]["id"]
    assert authenticator["webauthnCredential"]["credentialId"] == credential_id

    # With a token from the backend's track.
    token = backend.track("web-alice", "transfer")["token"]
    with_token = app.run("return await authsignal.passkey.signIn({token});", token=token)
    assert with_token["data"]["isVerified"] is True, with_token
    assert valid(backend, with_token["data"]["token"])["action"] == "transfer"

    # With an action: the SDK asks for a challenge itself (Basic auth with the tenant id).
    with_action = app.run("return await authsignal.passkey.signIn({action: 'checkout'});")
    checked = valid(backend, with_action["data"]["token"])
    assert (checked["action"], checked["user_id"]) == ("checkout", "web-alice")

    # Usernameless: the passkey says who the user is.
    usernameless = app.run("return await authsignal.passkey.signIn();")
    assert usernameless["data"]["userId"] == "web-alice"
    assert usernameless["data"]["username"] == "alice@example.com"
    valid(backend, usernameless["data"]["token"])

    # The SDK remembers the credential in the app's localStorage and asks Passgate about it.
    lookup = "return await authsignal.passkey.isAvailableOnDevice({userId});"
    assert app.run(lookup, userId="web-alice") is True
    assert app.run(lookup, userId="nobody") is False
