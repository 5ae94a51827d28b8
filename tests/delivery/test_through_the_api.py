"""Delivery seen from a backend calling the Server API (`POST /v1/challenge`, `/verify`): a
tenant that cannot send is told at once in Authsignal's error shape, a refusing SMTP server
never turns into an error for the request (it is audited instead), and a delivered code
verifies."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.delivery.conftest import audit_events, eventually
from tests.live_server import LiveServer, Tenant
from tests.receivers import HttpReceiver, SmtpReceiver, use_sms_webhook, use_smtp


@pytest.fixture
def backend(live: LiveServer, shop: Tenant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.api_url, auth=(shop.secret_key, ""), timeout=10) as client:
        yield client


def test_a_tenant_that_cannot_send_is_told_at_once(backend: httpx.Client) -> None:
    for body in (
        {"verificationMethod": "EMAIL_OTP", "email": "kit@example.com", "action": "signIn"},
        {"verificationMethod": "SMS", "phoneNumber": "+64211234567", "action": "signIn"},
    ):
        refused = backend.post("/challenge", json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["errorCode"] == "delivery_not_configured"
        assert set(refused.json()) == {"error", "errorCode", "errorDescription"}


def test_a_refusing_server_is_audited_not_an_error(
    live: LiveServer, shop: Tenant, backend: httpx.Client
) -> None:
    with SmtpReceiver(answers=["554 5.7.1 Message rejected"]) as smtp:
        use_smtp(live, shop.id, smtp)
        body = {"verificationMethod": "EMAIL_OTP", "email": "lee@example.com", "action": "signIn"}
        started = backend.post("/challenge", json=body)
        assert started.status_code == 200, started.text
        assert started.json()["challengeId"]
        eventually(lambda: bool(audit_events(live, shop.id, "delivery.email.failed")))
        # The next one gets through, and its code verifies.
        again = backend.post("/challenge", json={**body, "email": "mo@example.com"})
        assert again.status_code == 200, again.text
        code = smtp.wait(to="mo@example.com").code
    assert code is not None
    verified = backend.post(
        "/verify", json={"challengeId": again.json()["challengeId"], "verificationCode": code}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["isVerified"] is True
    [event] = audit_events(live, shop.id, "delivery.email.failed")
    assert event["destination"] == "l***@example.com" and "554" in event["error"]


def test_an_sms_code_through_the_webhook_verifies(
    live: LiveServer, shop: Tenant, backend: httpx.Client
) -> None:
    with HttpReceiver() as hook:
        use_sms_webhook(live, shop.id, hook)
        body = {"verificationMethod": "SMS", "phoneNumber": "+64 21 765 4321", "locale": "en-NZ"}
        started = backend.post("/challenge", json={**body, "action": "signIn"})
        assert started.status_code == 200, started.text
        sent = hook.wait().json()
    assert sent["phoneNumber"] == "+64217654321" and sent["locale"] == "en-NZ"
    verified = backend.post(
        "/verify",
        json={"challengeId": started.json()["challengeId"], "verificationCode": sent["code"]},
    )
    assert verified.json()["isVerified"] is True
