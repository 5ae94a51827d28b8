"""One-time codes with Authsignal's browser SDK (`@authsignal/browser` 1.16.0 from npm,
unchanged) on a web app's own origin, against Passgate on another: `email.enroll` and
`sms.enroll` send the first code, `verify` answers it (a wrong code first: not an error, a
failure reason), and `challenge` sends a later sign-in's code; the codes are read from a real
SMTP server and a real SMS webhook on loopback, and the backend validates every token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from authsignal.client import AuthsignalClient

from tests.browser import require_chromium
from tests.live_server import LiveServer, Tenant
from tests.receivers import HttpReceiver, SmtpReceiver, use_sms_webhook, use_smtp
from tests.web.conftest import AppSite, BrowserTab, open_app
from tests.web.test_browser_sdk import AppPage, valid

require_chromium()

ENROL_AND_VERIFY = """
authsignal.setToken(token);
const wrong = await authsignal[kind].verify({code: wrongCode});
const right = await authsignal[kind].verify({code});
return {wrong, right};
"""


@pytest.fixture
def app(web_server: LiveServer, web_tenant: Tenant, app_site: AppSite, tab: BrowserTab) -> AppPage:
    open_app(tab, app_site)
    return AppPage(tab, web_tenant.id, web_server.public_url + "/v1")


@pytest.fixture
def smtp(web_server: LiveServer, web_tenant: Tenant) -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        use_smtp(web_server, web_tenant.id, receiver)
        yield receiver


@pytest.fixture
def sms_hook(web_server: LiveServer, web_tenant: Tenant) -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        use_sms_webhook(web_server, web_tenant.id, receiver)
        yield receiver


def other_than(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_email_otp_enrol_verify_and_sign_in(
    app: AppPage, backend: AuthsignalClient, smtp: SmtpReceiver
) -> None:
    email = "web-otp@example.com"
    token = backend.track("web-otp", "signUp")["token"]
    enrolled = app.run(
        "authsignal.setToken(token); return await authsignal.email.enroll({email});",
        token=token,
        email=email,
    )
    assert "error" not in enrolled, enrolled
    assert enrolled["data"]["userId"] == "web-otp"
    code = smtp.wait(to=email).code
    assert code is not None
    answers = app.run(
        ENROL_AND_VERIFY, token=token, kind="email", code=code, wrongCode=other_than(code)
    )
    assert answers["wrong"]["data"] == {
        "isVerified": False,
        "failureReason": "CODE_INVALID_OR_EXPIRED",
    }
    verified = answers["right"]["data"]
    assert verified["isVerified"] is True
    added = verified["userAuthenticator"]
    assert (added["verificationMethod"], added["email"]) == ("EMAIL_OTP", email)
    checked = valid(backend, verified["token"])
    assert (checked["action"], checked["verification_method"]) == ("signUp", "EMAIL_OTP")

    # A later sign-in: challenge (no body) sends a code to the enrolled address.
    token = backend.track("web-otp", "signIn")["token"]
    started = app.run(
        "authsignal.setToken(token); return await authsignal.email.challenge();", token=token
    )
    assert started["data"]["challengeId"], started
    second = smtp.wait(to=email, count=2).code
    signed_in = app.run(
        "authsignal.setToken(token); return await authsignal.email.verify({code});",
        token=token,
        code=second,
    )
    assert signed_in["data"]["isVerified"] is True, signed_in
    assert "userAuthenticator" not in signed_in["data"]
    assert valid(backend, signed_in["data"]["token"])["action"] == "signIn"


def test_sms_enrol_and_verify(
    app: AppPage, backend: AuthsignalClient, sms_hook: HttpReceiver
) -> None:
    phone = "+6421555123"
    token = backend.track("web-sms", "signUp")["token"]
    enrolled = app.run(
        "authsignal.setToken(token); return await authsignal.sms.enroll({phoneNumber});",
        token=token,
        phoneNumber=phone,
    )
    assert "error" not in enrolled, enrolled
    sent = sms_hook.wait().json()
    assert sent["phoneNumber"] == phone
    code = str(sent["code"])
    answers = app.run(
        ENROL_AND_VERIFY, token=token, kind="sms", code=code, wrongCode=other_than(code)
    )
    assert answers["wrong"]["data"]["failureReason"] == "CODE_INVALID_OR_EXPIRED"
    verified = answers["right"]["data"]
    assert verified["isVerified"] is True
    assert verified["userAuthenticator"]["phoneNumber"] == phone
    checked = valid(backend, verified["token"])
    assert checked["verification_method"] == "SMS"
    assert backend.get_user("web-sms")["phone_number_verified"] is True
