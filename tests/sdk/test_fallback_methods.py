"""The Python SDK's fallback methods against a real server on loopback, as an app uses them:
codes read from a real SMTP server (aiosmtpd) and a real SMS webhook receiver, TOTP codes
computed from the enrolled secret, a security key played by the software authenticator, a
magic link opened over HTTP (its page, then its confirm button), and every token checked with
Authsignal's own server SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from authsignal.client import AuthsignalClient

from passgate import Authsignal, AuthsignalSync, VerifyResponse
from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import audit
from passgate.server.services.delivery import config as delivery
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant
from tests.receivers import HttpReceiver, SmtpReceiver
from tests.totp.helpers import app_code, current_step

PHONE = "+64211234567"
CODE_INVALID = "CODE_INVALID_OR_EXPIRED"


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def sms_hook() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def delivering(
    server: LiveServer, tenant: Tenant, smtp: SmtpReceiver, sms_hook: HttpReceiver
) -> Tenant:
    """The test's tenant, sending email to `smtp` and SMS and WhatsApp to `sms_hook`."""

    async def work(db: Db) -> None:
        actor = audit.Actor(type="admin", id="test")
        await delivery.configure_email(
            db,
            actor,
            tenant.id,
            host=smtp.host,
            port=smtp.port,
            security="none",
            sender="Passgate <no-reply@example.com>",
        )
        await delivery.configure_sms(
            db, actor, tenant.id, delivery.SmsChange(webhook_url=f"{sms_hook.url}/sms")
        )

    server.run(work)
    return tenant


@pytest.fixture
def app(server: LiveServer, delivering: Tenant, tmp_path: Path) -> Iterator[AuthsignalSync]:
    key = SoftwareAuthenticator(tmp_path / "security-key.bin")
    with AuthsignalSync(delivering.id, server.api_url, security_key_authenticator=key) as client:
        yield client


def start(authsignal: AuthsignalClient, app: AuthsignalSync, user_id: str, action: str) -> str:
    """The backend tracks an action and hands its token to the app."""
    tracked = authsignal.track(user_id, action)
    app.set_token(tracked["token"])
    return str(tracked["idempotency_key"])


def validated(
    authsignal: AuthsignalClient, response: VerifyResponse | None, user_id: str, action: str
) -> dict[str, Any]:
    """What the backend sees of the token a verify returned (valid once, for that action)."""
    assert response is not None and response.is_verified and response.token, response
    result = authsignal.validate_challenge({"token": response.token, "action": action})
    assert result["is_valid"] is True and result["user_id"] == user_id, result
    assert result["action"] == action
    return dict(result)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def totp_code(secret: str, steps_ahead: int = 0) -> str:
    """RFC 6238 (SHA-1, 30 s steps, 6 digits), as an authenticator app computes it (the
    TOTP tests' own app, checked there against the RFC's vectors)."""
    return app_code(secret.upper(), current_step() + steps_ahead)


def test_email_enrol_then_sign_in(
    authsignal: AuthsignalClient, app: AuthsignalSync, smtp: SmtpReceiver
) -> None:
    start(authsignal, app, "uma", "signUp")
    tracked_token = app.token
    enrolled = app.email.enroll("uma@example.com")
    assert enrolled.data is not None and enrolled.data.user_authenticator_id, enrolled
    code = smtp.wait(to="uma@example.com").code
    assert code is not None

    wrong = app.email.verify(other_code(code))
    assert wrong.data == VerifyResponse(is_verified=False, failure_reason=CODE_INVALID)
    assert app.token == tracked_token  # a failed verify keeps the token
    assert "EMAIL_OTP" not in (authsignal.get_user("uma")["enrolled_verification_methods"] or [])

    verified = app.email.verify(code)
    assert verified.data is not None and app.token == verified.data.token  # the new Bearer
    result = validated(authsignal, verified.data, "uma", "signUp")
    assert result["verification_method"] == "EMAIL_OTP"
    assert "EMAIL_OTP" in authsignal.get_user("uma")["enrolled_verification_methods"]

    # Later: a sign-in challenged by email.
    start(authsignal, app, "uma", "signIn")
    challenge = app.email.challenge()
    assert challenge.data is not None and challenge.data.challenge_id, challenge
    second = smtp.wait(to="uma@example.com", count=2).code
    assert second is not None
    if second != code:  # a used code is spent (one in a million, the new code is the same)
        reused = app.email.verify(code)
        assert reused.data == VerifyResponse(is_verified=False, failure_reason=CODE_INVALID)
    validated(authsignal, app.email.verify(second).data, "uma", "signIn")


def test_refusals_are_responses_not_exceptions(
    authsignal: AuthsignalClient, app: AuthsignalSync, smtp: SmtpReceiver
) -> None:
    start(authsignal, app, "vic", "signUp")
    bad = app.email.enroll("not an address")
    assert bad.data is None and bad.error_code == "invalid_request", bad
    assert app.email.enroll("vic@example.com").ok
    code = str(smtp.wait(to="vic@example.com").code)
    reasons = []
    for _ in range(6):
        wrong = app.email.verify(other_code(code)).data
        assert wrong is not None and wrong.is_verified is False
        reasons.append(wrong.failure_reason)
        if wrong.failure_reason != CODE_INVALID:
            break
    assert reasons[0] == CODE_INVALID and reasons[-1] == "MAX_ATTEMPTS_EXCEEDED", reasons
    burnt = app.email.verify(code).data  # the right code is no use once the challenge is burnt
    assert burnt is not None and burnt.is_verified is False


def test_an_enrolled_user_adds_nothing_without_leave(
    authsignal: AuthsignalClient, app: AuthsignalSync, smtp: SmtpReceiver
) -> None:
    start(authsignal, app, "wes", "signUp")
    assert app.email.enroll("wes@example.com").ok
    validated(
        authsignal,
        app.email.verify(str(smtp.wait(to="wes@example.com").code)).data,
        "wes",
        "signUp",
    )
    start(authsignal, app, "wes", "signIn")  # no add:authenticators scope, nothing verified
    refused = app.email.enroll("wes@elsewhere.example")
    assert (refused.data, refused.error_code) == (None, "forbidden"), refused
    refused_totp = app.totp.enroll()
    assert (refused_totp.data, refused_totp.error_code) == (None, "forbidden"), refused_totp


def test_sms_and_whatsapp(
    authsignal: AuthsignalClient, app: AuthsignalSync, sms_hook: HttpReceiver
) -> None:
    start(authsignal, app, "sam", "signUp")
    enrolled = app.sms.enroll(PHONE)
    assert enrolled.data is not None, enrolled
    sent = sms_hook.wait().json()
    assert sent["phoneNumber"] == PHONE
    wrong = app.sms.verify(other_code(sent["code"]))
    assert wrong.data == VerifyResponse(is_verified=False, failure_reason=CODE_INVALID)
    result = validated(authsignal, app.sms.verify(sent["code"]).data, "sam", "signUp")
    assert result["verification_method"] == "SMS"

    start(authsignal, app, "sam", "signIn")
    challenge = app.whatsapp.challenge()
    assert challenge.data is not None, challenge
    by_whatsapp = sms_hook.wait(count=2).json()
    assert by_whatsapp["phoneNumber"] == PHONE
    validated(authsignal, app.whatsapp.verify(by_whatsapp["code"]).data, "sam", "signIn")


def test_totp(authsignal: AuthsignalClient, app: AuthsignalSync) -> None:
    start(authsignal, app, "tess", "signUp")
    enrolled = app.totp.enroll()
    assert enrolled.data is not None, enrolled
    assert enrolled.data.uri.startswith("otpauth://totp/")
    assert f"secret={enrolled.data.secret}" in enrolled.data.uri
    code = totp_code(enrolled.data.secret)
    wrong = app.totp.verify(other_code(code))
    assert wrong.data is not None and wrong.data.is_verified is False
    assert wrong.data.failure_reason == CODE_INVALID
    result = validated(authsignal, app.totp.verify(code).data, "tess", "signUp")
    assert result["verification_method"] == "AUTHENTICATOR_APP"

    start(authsignal, app, "tess", "signIn")
    again = app.totp.verify(code)  # a code is accepted once
    assert again.data is not None and again.data.is_verified is False
    validated(
        authsignal, app.totp.verify(totp_code(enrolled.data.secret, 1)).data, "tess", "signIn"
    )


def test_security_key(authsignal: AuthsignalClient, app: AuthsignalSync) -> None:
    start(authsignal, app, "kim", "signUp")
    enrolled = app.security_key.enroll()
    assert enrolled.data is not None and enrolled.data.user_authenticator_id, enrolled
    if enrolled.data.token:
        assert app.token == enrolled.data.token
    assert "SECURITY_KEY" in authsignal.get_user("kim")["enrolled_verification_methods"]

    start(authsignal, app, "kim", "signIn")
    verified = app.security_key.verify()
    assert app.token == (verified.data.token if verified.data else None), verified
    result = validated(authsignal, verified.data, "kim", "signIn")
    assert result["verification_method"] == "SECURITY_KEY"


def test_recovery_codes(authsignal: AuthsignalClient, app: AuthsignalSync) -> None:
    start(authsignal, app, "rob", "signUp")
    issued = app.recovery_code.enroll()
    assert issued.data is not None and len(issued.data.recovery_codes) == 10, issued
    assert authsignal.get_user("rob")["enrolled_verification_methods"] == ["RECOVERY_CODE"]

    start(authsignal, app, "rob", "recover")
    first = issued.data.recovery_codes[0]
    wrong = app.recovery_code.verify(issued.data.recovery_codes[1][::-1])
    assert wrong.data is not None and wrong.data.is_verified is False, wrong
    assert wrong.data.failure_reason
    result = validated(authsignal, app.recovery_code.verify(first).data, "rob", "recover")
    assert result["verification_method"] == "RECOVERY_CODE"

    start(authsignal, app, "rob", "recover")
    spent = app.recovery_code.verify(first)  # each code works once
    assert spent.data is not None and spent.data.is_verified is False, spent
    validated(
        authsignal, app.recovery_code.verify(issued.data.recovery_codes[1]).data, "rob", "recover"
    )


class _Forms(HTMLParser):
    """The forms of a page: action, method and the inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"action": found.get("action") or "", "method": found.get("method"), "fields": {}}
            )
        elif tag in ("input", "button") and self.forms and found.get("name"):
            self.forms[-1]["fields"][found["name"]] = found.get("value") or ""


async def confirm_link(link: str) -> None:
    """What the user does on any device: open the link, press its confirm button (a POST)."""
    async with httpx.AsyncClient(timeout=10, follow_redirects=True) as browser:
        page = await browser.get(link)
        assert page.status_code == 200, page.text
        parser = _Forms()
        parser.feed(page.text)
        posts = [form for form in parser.forms if (form["method"] or "").lower() == "post"]
        assert len(posts) == 1, parser.forms
        confirmed = await browser.post(
            urljoin(str(page.url), posts[0]["action"]), data=posts[0]["fields"]
        )
        assert confirmed.status_code == 200, confirmed.text


async def test_magic_link_with_the_async_client(
    server: LiveServer, delivering: Tenant, authsignal: AuthsignalClient, smtp: SmtpReceiver
) -> None:
    async with Authsignal(delivering.id, server.api_url) as client:
        client.set_token(authsignal.track("lee", "signUp")["token"])
        enrolled = await client.email_magic_link.enroll("lee@example.com")
        assert enrolled.data is not None, enrolled
        link = smtp.wait(to="lee@example.com").link
        assert link is not None
        # The app polls while the user confirms on another device.
        polling = asyncio.create_task(
            client.email_magic_link.check_verification_status(poll_interval=0.2, timeout=30)
        )
        await asyncio.sleep(0.5)
        assert not polling.done()
        await confirm_link(link)
        status = await polling
        assert client.token == (status.data.token if status.data else None), status
        validated(authsignal, status.data, "lee", "signUp")

        client.set_token(authsignal.track("lee", "signIn")["token"])
        challenge = await client.email_magic_link.challenge()
        assert challenge.data is not None, challenge
        await confirm_link(str(smtp.wait(to="lee@example.com", count=2).link))
        status = await client.email_magic_link.check_verification_status(
            poll_interval=0.2, timeout=30
        )
        validated(authsignal, status.data, "lee", "signIn")


async def test_email_with_the_async_client(
    server: LiveServer, delivering: Tenant, authsignal: AuthsignalClient, smtp: SmtpReceiver
) -> None:
    async with Authsignal(delivering.id, server.api_url) as client:
        client.set_token(authsignal.track("ari", "signUp")["token"])
        assert (await client.email.enroll("ari@example.com")).ok
        code = str(smtp.wait(to="ari@example.com").code)
        wrong = await client.email.verify(other_code(code))
        assert wrong.data == VerifyResponse(is_verified=False, failure_reason=CODE_INVALID)
        validated(authsignal, (await client.email.verify(code)).data, "ari", "signUp")
