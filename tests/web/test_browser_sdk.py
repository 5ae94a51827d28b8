"""Authsignal's browser SDK (`@authsignal/browser` 1.16.0 from npm, unchanged) on a web app's
own origin, against Passgate on another: every call a web app makes, in Debian's chromium with
the CDP virtual authenticator, and the backend checking each result with Authsignal's Python
server SDK."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore
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


def test_autofill_sign_in_from_a_username_field(
    app: AppPage, backend: AuthsignalClient, tab: BrowserTab
) -> None:
    """`signIn({autofill: true})` with an `autocomplete="username webauthn"` input: a
    conditional request. Chrome's virtual authenticator answers it at once, without showing the
    autofill UI, so this proves the wire, not the UI."""
    sign_up(app, backend, "web-autofill", "autofill@example.com")
    signed_in = app.run("return await authsignal.passkey.signIn({autofill: true});")
    assert signed_in["data"]["userId"] == "web-autofill", signed_in
    valid(backend, signed_in["data"]["token"])
    assert tab.page.get_attribute("#username", "autocomplete") == "username webauthn"


def test_cookie_variants_bind_the_challenge_to_the_browser(
    app: AppPage, backend: AuthsignalClient, tab: BrowserTab, web_server: LiveServer
) -> None:
    """`useCookies`: the SDK calls the /web routes with credentials included; Passgate sets an
    HttpOnly cookie on its own origin and answers only the browser that holds it."""
    added = sign_up(app, backend, "web-cookie", "cookie@example.com", useCookies=True)
    valid(backend, added["token"])
    cookies = tab.page.context.cookies(web_server.public_url + "/v1/client/verify/passkey")
    [cookie] = [c for c in cookies if c["name"] == "passgate_challenge"]
    assert cookie["domain"] == "localhost"  # Passgate's host, not the app's origin
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"  # http://localhost: SameSite=None needs https
    assert cookie["path"] == "/v1/client"

    usernameless = app.run("return await authsignal.passkey.signIn({useCookies: true});")
    assert usernameless["data"]["userId"] == "web-cookie", usernameless
    valid(backend, usernameless["data"]["token"])

    with_action = app.run(
        "return await authsignal.passkey.signIn({action: 'pay', useCookies: true});"
    )
    assert valid(backend, with_action["data"]["token"])["action"] == "pay"

    # The same challenge answered without the cookie: refused, whatever the assertion.
    tab.page.context.clear_cookies()
    refused = app.run(
        """
        const options = await fetch(baseUrl + '/client/challenge/web', {method: 'POST',
            credentials: 'include', headers: {'Content-Type': 'application/json',
            Authorization: 'Basic ' + btoa(encodeURIComponent(tenantId))},
            body: JSON.stringify({action: 'pay'})}).then(r => r.json());
        const verify = await fetch(baseUrl + '/client/verify/passkey', {method: 'POST',
            credentials: 'omit', headers: {'Content-Type': 'application/json',
            Authorization: 'Basic ' + btoa(encodeURIComponent(tenantId))},
            body: JSON.stringify({challengeId: options.challengeId,
                                  authenticationCredential: {id: 'x'}})});
        return {status: verify.status, body: await verify.json()};
        """
    )
    assert refused["status"] == 403
    assert refused["body"]["errorCode"] == "challenge_cookie_mismatch"


def test_push_challenge_and_verify_while_a_python_device_approves(
    app: AppPage,
    backend: AuthsignalClient,
    web_server: LiveServer,
    web_tenant: Tenant,
    tmp_path: Path,
) -> None:
    device = AuthsignalSync(
        web_tenant.id,
        web_server.api_url,
        device_keys=DeviceKeyStore(tmp_path / "phone.pem", passphrase="correct horse"),
    )
    enrolled = backend.track("web-bob", "enrollPush", {"scope": "add:authenticators"})
    assert device.push.add_credential(enrolled["token"]).ok
    token = backend.track("web-bob", "signIn")["token"]

    started = app.run(
        "authsignal.setToken(token); return await authsignal.push.challenge({action: 'signIn'});",
        token=token,
    )
    challenge_id = started["data"]["challengeId"]
    code = started["data"]["verificationCode"]

    def approve() -> None:
        for _ in range(50):
            pending = device.push.get_challenge(wait=2).data
            if pending is not None and pending.challenge_id == challenge_id:
                assert device.push.update_challenge(challenge_id, True, code).data is True
                return

    approver = threading.Thread(target=approve)
    approver.start()
    verified = app.run(
        """
        authsignal.setToken(token);
        for (let i = 0; i < 100; i++) {
          const result = await authsignal.push.verify({challengeId});
          if (result.error || result.data.isVerified || result.data.isConsumed) return result;
          await new Promise(resolve => setTimeout(resolve, 200));
        }
        return {timedOut: true};
        """,
        token=token,
        challengeId=challenge_id,
    )
    approver.join(timeout=30)
    device.close()
    assert verified["data"]["isVerified"] is True, verified
    assert valid(backend, verified["data"]["token"])["user_id"] == "web-bob"


def test_an_origin_the_tenant_does_not_list_is_refused(
    web_server: LiveServer, app_site: AppSite, tab: BrowserTab
) -> None:
    """The browser itself blocks the app: no tenant lists its origin, so the preflight has no
    CORS headers and the SDK's fetch fails."""
    stranger = web_server.create_tenant(name="Elsewhere", origins=["https://shop.localhost"])
    open_app(tab, app_site)
    app = AppPage(tab, stranger.id, web_server.public_url + "/v1")
    outcome = app.run(
        "try { await authsignal.passkey.signIn({action: 'signIn'}); return 'answered'; }"
        " catch (error) { return error.name + ': ' + error.message; }"
    )
    assert outcome == "TypeError: Failed to fetch"
