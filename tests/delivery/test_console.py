"""The console's Delivery tab, over HTTP as a browser uses it: SMTP and SMS settings saved
(secrets write-only, sealed, never shown back), bad input refused inline, and a server then
sending with what was saved."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from passgate.server.services import tenants
from passgate.server.services.enums import VerificationMethod
from tests.console.helpers import Console, alerts, enrolled_console
from tests.delivery.conftest import audit_events, send_code
from tests.live_server import LiveServer, Tenant
from tests.receivers import HttpReceiver, SmtpReceiver, TestCa
from tests.server.push.test_delivery import construct_event

MADE = re.compile(r'id="made-secret">([^<]+)<')


@pytest.fixture
def console(live: LiveServer, tmp_path: Path) -> Iterator[Console]:
    made = enrolled_console(live, tmp_path, f"delivery-{tmp_path.name}@example.com")
    yield made
    made.close()


def test_smtp_settings_from_the_console(live: LiveServer, shop: Tenant, console: Console) -> None:
    page = console.get(f"/admin/tenants/{shop.id}/delivery")
    assert page.status_code == 200
    assert "Not configured" in page.text and 'aria-current="page">Delivery' in page.text
    ca = TestCa()
    form = {
        "smtp_host": "127.0.0.1",
        "smtp_security": "tls",
        "smtp_user": "mailer",
        "smtp_password": "console-pw",
        "smtp_from": "Shop <no-reply@shop.example.com>",
        "smtp_ca_pem": ca.pem.replace("\n", "\r\n"),  # as a browser sends a textarea
    }
    refused = console.post(f"/admin/tenants/{shop.id}/delivery/email", {**form, "smtp_port": "0"})
    assert refused.status_code == 400
    assert alerts(refused) == ["smtpPort 0 is not between 1 and 65535"]
    assert "console-pw" not in refused.text  # a password typed is not sent back
    with SmtpReceiver(security="tls", ca=ca, username="mailer", password="console-pw") as smtp:
        form["smtp_port"] = str(smtp.port)
        saved = console.post(f"/admin/tenants/{shop.id}/delivery/email", form)
        assert saved.status_code == 303, saved.text
        page = console.get(f"/admin/tenants/{shop.id}/delivery")
        assert "Password (stored; empty: keep it)" in page.text
        assert "console-pw" not in page.text and "CN=Passgate Test CA" in page.text
        # Saving again with the password left empty keeps it.
        kept = console.post(
            f"/admin/tenants/{shop.id}/delivery/email",
            {**form, "smtp_password": "", "smtp_ca_pem": ""},
        )
        assert kept.status_code == 303
        send_code(live, shop.id, "ivy@example.com", code="272727")
        got = smtp.wait()
    assert got.tls and got.login == "mailer" and got.code == "272727"
    stored = live.run(lambda db: tenants.get_tenant(db, shop.id)).settings["email"]
    assert stored["smtpPassword"].startswith("enc:v1:") and "BEGIN CERTIFICATE" in stored["caPem"]
    [event] = audit_events(live, shop.id, "tenant.email.changed")
    assert event["smtpHost"] == {"from": None, "to": "127.0.0.1"}

    removed = console.post(f"/admin/tenants/{shop.id}/delivery/email", {"email_remove": "on"})
    assert removed.status_code == 303
    assert "Not configured" in console.get(f"/admin/tenants/{shop.id}/delivery").text


def test_sms_settings_from_the_console(live: LiveServer, shop: Tenant, console: Console) -> None:
    with HttpReceiver() as hook:
        form = {"webhook_url": f"{hook.url}/sms", "allowed_country_codes": "+64, 61"}
        made = console.post(f"/admin/tenants/{shop.id}/delivery/sms", form)
        assert made.status_code == 200
        [secret] = MADE.findall(made.text)
        assert secret.startswith("pg_smssec_")
        assert secret not in console.get(f"/admin/tenants/{shop.id}/delivery").text
        send_code(live, shop.id, "+64211234567", code="818181", method=VerificationMethod.SMS)
        request = hook.wait()
    body = construct_event(secret, request.body.decode(), request.header("x-signature-v2") or "")
    assert body["code"] == "818181"

    refused = console.post(
        f"/admin/tenants/{shop.id}/delivery/sms",
        {**form, "twilio_account_sid": "AC1", "twilio_from": "+16502530000"},
    )
    assert refused.status_code == 400
    assert alerts(refused) == ["the Twilio sender needs its auth token"]
    twilio = console.post(
        f"/admin/tenants/{shop.id}/delivery/sms",
        {
            **form,
            "twilio_account_sid": "AC1",
            "twilio_auth_token": "console-token",
            "twilio_from": "+16502530000",
        },
    )
    assert twilio.status_code == 303, twilio.text
    page = console.get(f"/admin/tenants/{shop.id}/delivery")
    assert "console-token" not in page.text and "Auth token (stored; empty: keep it)" in page.text
    stored = live.run(lambda db: tenants.get_tenant(db, shop.id)).settings["sms"]
    assert stored["twilio"]["authToken"].startswith("enc:v1:")
    assert stored["allowedCountryCodes"] == ["+64", "+61"]
    # Without the CSRF token nothing is saved.
    forged = console.http.post(
        f"/admin/tenants/{shop.id}/delivery/sms", data={"csrf_token": "forged", **form}
    )
    assert forged.status_code == 403
