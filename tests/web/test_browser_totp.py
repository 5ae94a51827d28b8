"""Authenticator apps with Authsignal's browser SDK (`@authsignal/browser` 1.16.0 from npm,
unchanged) on a web app's own origin, against Passgate on another: `totp.enroll` returns the
otpauth URI and secret (and Passgate's QR code, which the page shows), `totp.verify` answers
with a code the test computes from that secret as an authenticator app would (a wrong code
first: not an error, a failure reason), and the backend validates the token; a later sign-in
verifies the next code, and a reused one is refused."""

from __future__ import annotations

import pytest
from authsignal.client import AuthsignalClient

from tests.browser import require_chromium
from tests.live_server import LiveServer, Tenant
from tests.totp.helpers import App, parse_uri
from tests.web.conftest import AppSite, BrowserTab, open_app
from tests.web.test_browser_sdk import AppPage, valid

require_chromium()

VERIFY = """
authsignal.setToken(token);
const wrong = await authsignal.totp.verify({code: wrongCode});
const right = await authsignal.totp.verify({code});
const again = await authsignal.totp.verify({code});
return {wrong, right, again};
"""


@pytest.fixture
def app(web_server: LiveServer, web_tenant: Tenant, app_site: AppSite, tab: BrowserTab) -> AppPage:
    open_app(tab, app_site)
    return AppPage(tab, web_tenant.id, web_server.public_url + "/v1")


def other_than(app: App, step: int) -> str:
    """A six-digit code that is not the app's for any step near `step`."""
    near = {app.code(step + offset) for offset in range(-2, 3)}
    return next(f"{n:06d}" for n in range(100000, 100010) if f"{n:06d}" not in near)


def test_totp_enrol_verify_and_sign_in(
    app: AppPage, backend: AuthsignalClient, tab: BrowserTab
) -> None:
    token = backend.track("web-totp", "signUp", {"username": "totp@example.com"})["token"]
    enrolled = app.run(
        """authsignal.setToken(token);
        const result = await authsignal.totp.enroll();
        if (result.data) {
          const image = document.createElement("img");
          image.id = "qr";
          image.src = result.data.qrCodePng;
          document.body.append(image);
          await image.decode();
        }
        return result;""",
        token=token,
    )
    assert "error" not in enrolled, enrolled
    data = enrolled["data"]
    assert data["userId"] == "web-totp"
    kind, label, params = parse_uri(data["uri"])
    assert (kind, label, params["secret"]) == ("totp", "Web shop:totp@example.com", data["secret"])
    # Passgate's PNG QR code is an image the browser decodes (4 px a module).
    assert tab.page.eval_on_selector("#qr", "image => image.naturalWidth") > 100

    authenticator_app = App(data["secret"])
    code = authenticator_app.next_code()
    answers = app.run(
        VERIFY,
        token=token,
        code=code,
        wrongCode=other_than(authenticator_app, authenticator_app.used),
    )
    assert answers["wrong"]["data"] == {
        "isVerified": False,
        "failureReason": "CODE_INVALID_OR_EXPIRED",
    }
    verified = answers["right"]["data"]
    assert verified["isVerified"] is True
    assert verified["userAuthenticator"]["verificationMethod"] == "AUTHENTICATOR_APP"
    checked = valid(backend, verified["token"])
    assert (checked["action"], checked["verification_method"]) == ("signUp", "AUTHENTICATOR_APP")
    # The same code again: accepted once.
    assert answers["again"]["data"] == {
        "isVerified": False,
        "failureReason": "CODE_INVALID_OR_EXPIRED",
    }

    # A later sign-in, with the app's next code.
    sign_in = backend.track("web-totp", "signIn")["token"]
    signed_in = app.run(
        "authsignal.setToken(token); return await authsignal.totp.verify({code});",
        token=sign_in,
        code=authenticator_app.next_code(),
    )
    assert signed_in["data"]["isVerified"] is True, signed_in
    assert valid(backend, signed_in["data"]["token"])["action"] == "signIn"
