"""SMS and WhatsApp codes: to the tenant's signed webhook (checked as Authsignal's SDK checks
push webhooks) and through the Twilio sender, both to a loopback HTTP receiver, sent by a
running server's outbox."""

from __future__ import annotations

import base64

import pytest

from passgate.server.services.audit import cli_actor
from passgate.server.services.delivery import DeliveryNotConfigured, config
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import InvalidRequest
from passgate.server.store.db import Db
from tests.delivery.conftest import audit_events, eventually, outbox_rows, send_code
from tests.live_server import LiveServer, Tenant
from tests.raw_database import raw_text
from tests.receivers import HttpReceiver, use_sms_webhook
from tests.server.push.test_delivery import InvalidSignatureError, construct_event

SID = "AC0123456789abcdef0123456789abcdef"


def use_twilio(live: LiveServer, tenant_id: str, api: HttpReceiver, token: str) -> None:
    async def work(db: Db) -> None:
        change = config.SmsChange(
            twilio_account_sid=SID,
            twilio_auth_token=token,
            twilio_from="+1 650 253 0000",
            twilio_base_url=api.url,
        )
        await config.configure_sms(db, cli_actor(), tenant_id, change)

    live.run(work)


def test_sms_and_whatsapp_codes_reach_the_webhook_signed(live: LiveServer, shop: Tenant) -> None:
    with HttpReceiver(statuses=[503]) as hook:
        secret = use_sms_webhook(live, shop.id, hook)
        send_code(live, shop.id, "+64 21 123 4567", code="246810", method=VerificationMethod.SMS)
        retried = hook.wait(count=2)  # 503 first, then sent again
        send_code(
            live,
            shop.id,
            "+64211234567",
            code="135791",
            method=VerificationMethod.WHATSAPP,
            locale="en-NZ",
        )
        whatsapp = hook.wait(count=3)
    first = hook.requests[0]
    assert retried.body == first.body
    assert retried.header("x-passgate-event-id") == first.header("x-passgate-event-id")
    assert (first.header("x-passgate-attempt"), retried.header("x-passgate-attempt")) == ("1", "2")
    event = construct_event(secret, retried.body.decode(), retried.header("x-signature-v2") or "")
    assert event == {
        "phoneNumber": "+64211234567",
        "code": "246810",
        "locale": None,
        "channel": "SMS",
        "message": "246810 is your Shop & Co verification code. It expires in 10 minutes.",
    }
    assert retried.path == "/sms"
    assert retried.header("content-type") == "application/json"
    with pytest.raises(InvalidSignatureError):
        construct_event(
            "pg_smssec_wrong", retried.body.decode(), retried.header("x-signature-v2") or ""
        )
    body = construct_event(secret, whatsapp.body.decode(), whatsapp.header("x-signature-v2") or "")
    assert body["channel"] == "WHATSAPP" and body["code"] == "135791" and body["locale"] == "en-NZ"
    rows = outbox_rows(live, shop.id)
    assert [row.kind for row in rows] == ["sms", "sms"]
    assert rows[0].destination == "+64***67"
    assert all("246810" not in row.payload for row in rows)
    assert secret not in raw_text(live.database_url)


def test_twilio_gets_the_form_it_documents(live: LiveServer, shop: Tenant) -> None:
    with HttpReceiver(reply=lambda _: {"sid": "SM1", "status": "queued"}, statuses=[201]) as api:
        use_twilio(live, shop.id, api, token="twilio-token-1")
        send_code(live, shop.id, "+16502530001", code="864202", method=VerificationMethod.SMS)
        request = api.wait()
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert request.form() == {
        "To": "+16502530001",
        "From": "+16502530000",
        "Body": "864202 is your Shop & Co verification code. It expires in 10 minutes.",
    }
    basic = base64.b64encode(f"{SID}:twilio-token-1".encode()).decode()
    assert request.header("authorization") == f"Basic {basic}"
    assert "twilio-token-1" not in raw_text(live.database_url)
    # Twilio sends no WhatsApp here: that needs the webhook.
    with pytest.raises(DeliveryNotConfigured, match="SMS webhook"):
        send_code(live, shop.id, "+16502530001", method=VerificationMethod.WHATSAPP)


def test_twilio_refusals(live: LiveServer, shop: Tenant) -> None:
    with HttpReceiver(statuses=[429, 400], reply=lambda _: {"code": 21211}) as api:
        use_twilio(live, shop.id, api, token="t")
        send_code(live, shop.id, "+16502530001", method=VerificationMethod.SMS)
        eventually(lambda: bool(audit_events(live, shop.id, "delivery.sms.failed")))
        assert len(api.requests) == 2  # 429 is tried again; 400 is refused for good
    [event] = audit_events(live, shop.id, "delivery.sms.failed")
    assert event["error"].startswith("Twilio answered HTTP 400")
    assert event["destination"] == "+16***01" and event["attempts"] == 2


def test_a_webhook_that_is_down_is_given_up_after_the_last_try(
    live: LiveServer, shop: Tenant
) -> None:
    hook = HttpReceiver()
    use_sms_webhook(live, shop.id, hook)
    hook.close()
    send_code(live, shop.id, "+64211234567", method=VerificationMethod.SMS)
    eventually(lambda: bool(audit_events(live, shop.id, "delivery.sms.failed")))
    [event] = audit_events(live, shop.id, "delivery.sms.failed")
    assert event["attempts"] == 3 and event["error"].startswith("unreachable")


def test_numbers_are_checked_when_the_code_is_enqueued(live: LiveServer, shop: Tenant) -> None:
    with HttpReceiver() as hook:
        use_sms_webhook(live, shop.id, hook)

        async def allow(db: Db) -> None:
            change = config.SmsChange(allowed_country_codes=["+64", "61"])
            await config.configure_sms(db, cli_actor(), shop.id, change)

        live.run(allow)
        with pytest.raises(InvalidRequest, match=r"country calling code \+1") as refused:
            send_code(live, shop.id, "+16502530001", method=VerificationMethod.SMS)
        assert refused.value.error_code == "country_not_allowed"
        with pytest.raises(InvalidRequest, match=r"E\.164"):
            send_code(live, shop.id, "021 123 4567", method=VerificationMethod.SMS)
        send_code(live, shop.id, "+61 491 570 006", method=VerificationMethod.SMS, code="777777")
        assert hook.wait().json()["phoneNumber"] == "+61491570006"
    assert len(outbox_rows(live, shop.id)) == 1


def test_without_a_sender_the_caller_is_told_at_once(live: LiveServer, shop: Tenant) -> None:
    with pytest.raises(DeliveryNotConfigured, match="passgate tenant sms"):
        send_code(live, shop.id, "+64211234567", method=VerificationMethod.SMS)
    with pytest.raises(InvalidRequest, match="not sent"):
        send_code(live, shop.id, "+64211234567", method=VerificationMethod.PASSKEY)
