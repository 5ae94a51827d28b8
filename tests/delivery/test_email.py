"""Codes, links and notices by email: enqueued in a transaction, sent by a running server's
outbox to a real SMTP server on loopback (aiosmtpd), plain, STARTTLS and implicit TLS under a
CA made in the test; refusals retried or given up and audited."""

from __future__ import annotations

import time

import pytest

from passgate.server.services import tenants
from passgate.server.services.audit import cli_actor
from passgate.server.services.delivery import DeliveryNotConfigured, config
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import InvalidRequest
from passgate.server.store.db import Db
from tests.delivery.conftest import (
    audit_events,
    eventually,
    messenger,
    outbox_rows,
    send_code,
)
from tests.live_server import LiveServer, Tenant
from tests.raw_database import raw_text
from tests.receivers import SmtpReceiver, TestCa, use_smtp


def test_a_code_arrives_by_plain_smtp_with_both_bodies(live: LiveServer, shop: Tenant) -> None:
    with SmtpReceiver() as smtp:
        use_smtp(live, shop.id, smtp)
        started = time.monotonic()
        send_code(live, shop.id, "Uma@Example.COM", code="493817")
        assert time.monotonic() - started < 1  # enqueued, not sent, in the transaction
        got = smtp.wait(to="Uma@example.com")
    assert got.rcpt_tos == ["Uma@example.com"]
    assert got.mail_from == "no-reply@passgate.example.com"
    assert got.message["From"] == "Passgate Test <no-reply@passgate.example.com>"
    assert got.message["Auto-Submitted"] == "auto-generated"
    assert got.subject == "493817 is your Shop & Co verification code"
    assert got.code == "493817"
    assert "expires in 10 minutes" in got.text
    # The HTML body is escaped: the tenant's name carries an ampersand.
    assert "Shop &amp; Co" in got.html and "493817" in got.html
    assert not got.tls
    [row] = outbox_rows(live, shop.id)
    assert row.kind == "email" and row.delivered_at is not None
    assert row.destination == "U***@example.com"
    assert "493817" not in row.payload and row.payload.startswith("enc:v1:")


def test_starttls_verified_against_the_tenants_ca_with_a_login(
    live: LiveServer, shop: Tenant
) -> None:
    ca = TestCa()
    with SmtpReceiver(security="starttls", ca=ca, username="mailer", password="s3cret-pw") as smtp:
        use_smtp(live, shop.id, smtp)
        send_code(live, shop.id, "vic@example.com", code="111222")
        got = smtp.wait()
    assert got.tls and got.login == "mailer"
    assert got.code == "111222"
    assert smtp.failed_logins == 0
    # The password is sealed at rest: a copy of the database does not show it.
    assert "s3cret-pw" not in raw_text(live.database_url)
    stored = live.run(lambda db: tenants.get_tenant(db, shop.id)).settings["email"]
    assert stored["smtpPassword"].startswith("enc:v1:")
    assert stored["caPem"] == ca.pem


def test_implicit_tls(live: LiveServer, shop: Tenant) -> None:
    with SmtpReceiver(security="tls") as smtp:
        use_smtp(live, shop.id, smtp)
        send_code(live, shop.id, "wen@example.com", code="765432")
        got = smtp.wait()
    assert got.tls and got.code == "765432"


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_an_untrusted_certificate_is_refused_and_audited(
    live: LiveServer, shop: Tenant, security: str
) -> None:
    with SmtpReceiver(security=security) as smtp:  # type: ignore[arg-type]
        use_smtp(live, shop.id, smtp, trust_ca=False)  # the system's CAs: not the test CA
        send_code(live, shop.id, "xia@example.com", code="999000")
        eventually(lambda: bool(audit_events(live, shop.id, "delivery.email.failed")))
        assert smtp.messages == []
    [event] = audit_events(live, shop.id, "delivery.email.failed")
    assert "certificate is not trusted" in event["error"]
    assert event["destination"] == "x***@example.com"
    assert event["attempts"] == 1  # permanent: not retried
    [row] = outbox_rows(live, shop.id)
    assert row.failed_at is not None and row.delivered_at is None


def test_a_busy_server_is_retried_and_a_refusal_is_given_up(live: LiveServer, shop: Tenant) -> None:
    with SmtpReceiver(answers=["451 4.3.0 Try again later"]) as smtp:
        use_smtp(live, shop.id, smtp)
        send_code(live, shop.id, "yan@example.com", code="100001")
        got = smtp.wait()
        assert got.code == "100001" and smtp.refused == 1  # 451, then delivered on retry
    with SmtpReceiver(answers=["550 5.1.1 No such user"]) as smtp:
        use_smtp(live, shop.id, smtp)
        send_code(live, shop.id, "zed@example.com", code="100002")
        eventually(lambda: bool(audit_events(live, shop.id, "delivery.email.failed")))
        assert smtp.messages == [] and smtp.refused == 1  # 5xx: given up at once
    [event] = audit_events(live, shop.id, "delivery.email.failed")
    assert event["error"].startswith("the server refused: 550")
    assert event["destination"] == "z***@example.com"
    assert audit_events(live, shop.id, "system.outbox.failed")


def test_a_server_that_is_down_is_tried_then_given_up(live: LiveServer, shop: Tenant) -> None:
    smtp = SmtpReceiver()
    use_smtp(live, shop.id, smtp)
    smtp.close()  # nothing listens on its port any more
    send_code(live, shop.id, "ada@example.com", code="424242")
    eventually(lambda: bool(audit_events(live, shop.id, "delivery.email.failed")))
    [event] = audit_events(live, shop.id, "delivery.email.failed")
    assert event["attempts"] == 3 and event["error"].startswith("unreachable")
    [row] = outbox_rows(live, shop.id)
    assert row.attempts == 3 and row.failed_at is not None


def test_a_wrong_password_is_refused_for_good(live: LiveServer, shop: Tenant) -> None:
    with SmtpReceiver(security="starttls", username="mailer", password="right") as smtp:
        use_smtp(live, shop.id, smtp)

        async def wrong(db: Db) -> None:
            await config.configure_email(db, cli_actor(), shop.id, password="wrong")

        live.run(wrong)
        send_code(live, shop.id, "bo@example.com")
        eventually(lambda: bool(audit_events(live, shop.id, "delivery.email.failed")))
        assert smtp.failed_logins >= 1 and smtp.messages == []
    [event] = audit_events(live, shop.id, "delivery.email.failed")
    assert event["error"].startswith("the login was refused: 535")
    assert event["attempts"] == 1


def test_without_smtp_settings_the_caller_is_told_at_once(live: LiveServer, shop: Tenant) -> None:
    with pytest.raises(DeliveryNotConfigured) as refused:
        send_code(live, shop.id, "cy@example.com")
    assert refused.value.status_code == 400
    assert refused.value.error_code == "delivery_not_configured"
    assert "passgate tenant email" in refused.value.description
    assert outbox_rows(live, shop.id) == []
    with SmtpReceiver() as smtp:
        use_smtp(live, shop.id, smtp)
        with pytest.raises(InvalidRequest, match="not a valid email address"):
            send_code(live, shop.id, "not an address")


def test_magic_links_notices_and_tenant_templates(live: LiveServer, shop: Tenant) -> None:
    overrides = {
        "code.fr.subject": "Votre code {{ app_name }} : {{ code }}",
        "code.fr.txt": "Code : {{ code }} ({{ expiry_minutes }} min, {{ locale }})",
        "code.fr.html": "<p>{{ code }} pour {{ app_name }}</p>",
    }

    async def set_templates(db: Db) -> None:
        await config.set_templates(db, cli_actor(), shop.id, overrides)

    async def link_and_notice(db: Db) -> None:
        tenant = await tenants.get_tenant(db, shop.id)
        await messenger(live).send_magic_link(
            db,
            tenant,
            email="dee@example.com",
            url="https://shop.example/ml?t=abc&x=<1>",
            locale=None,
        )
        await messenger(live).send_notice(
            db,
            tenant,
            email="dee@example.com",
            notice="authenticator_added",
            details={"method": "PASSKEY", "ip": "203.0.113.9"},
            locale="en",
        )

    with SmtpReceiver() as smtp:
        use_smtp(live, shop.id, smtp)
        live.run(set_templates)
        send_code(
            live, shop.id, "eve@example.com", code="314159", locale="fr-CA", expires_in_minutes=5
        )
        french = smtp.wait(to="eve@example.com")
        live.run(link_and_notice)
        smtp.wait(to="dee@example.com", count=2)  # sent side by side: in either order
        [link] = [m for m in smtp.messages if m.subject.startswith("Sign in")]
        [notice] = [m for m in smtp.messages if m.subject.startswith("A new sign-in")]
    assert french.subject == "Votre code Shop & Co : 314159"
    assert french.text.strip() == "Code : 314159 (5 min, fr-CA)"
    assert french.html.strip() == "<p>314159 pour Shop &amp; Co</p>"
    assert link.subject == "Sign in to Shop & Co"
    assert "\n\nhttps://shop.example/ml?t=abc&x=<1>\n\n" in link.text  # not escaped
    assert 'href="https://shop.example/ml?t=abc&amp;x=&lt;1&gt;"' in link.html
    assert notice.subject == "A new sign-in method was added to your Shop & Co account"
    assert "method: PASSKEY" in notice.text and "203.0.113.9" in notice.html
    [event] = audit_events(live, shop.id, "tenant.templates.changed")
    assert event["templates"] == sorted(overrides)


def test_a_notice_without_smtp_is_dropped_quietly(live: LiveServer, shop: Tenant) -> None:
    async def notice(db: Db) -> None:
        tenant = await tenants.get_tenant(db, shop.id)
        await messenger(live).send_notice(
            db, tenant, email="fay@example.com", notice="recovery_used", details={}, locale=None
        )

    live.run(notice)
    assert outbox_rows(live, shop.id) == []


def test_a_code_that_expired_before_it_could_be_sent_is_not_sent(
    live: LiveServer, shop: Tenant
) -> None:
    with SmtpReceiver() as smtp:
        use_smtp(live, shop.id, smtp)
        send_code(live, shop.id, "gus@example.com", expires_in_minutes=0)
        time.sleep(1.1)  # the expiry is whole seconds
        eventually(lambda: bool(audit_events(live, shop.id, "delivery.email.failed")))
        assert smtp.messages == []
    [event] = audit_events(live, shop.id, "delivery.email.failed")
    assert event["error"] == "it expired before it could be sent"


def test_refused_settings(live: LiveServer, shop: Tenant) -> None:
    def configure(**values: object) -> None:
        async def work(db: Db) -> None:
            await config.configure_email(db, cli_actor(), shop.id, **values)  # type: ignore[arg-type]

        live.run(work)

    with pytest.raises(InvalidRequest, match="smtpSecurity must be one of"):
        configure(host="mail.example", sender="a@example.com", security="ssl")
    with pytest.raises(InvalidRequest, match="from"):
        configure(host="mail.example", sender="nobody")
    with pytest.raises(InvalidRequest, match="PEM certificate"):
        configure(host="mail.example", sender="a@example.com", ca_pem="not a certificate")
    with pytest.raises(InvalidRequest, match="needs an SMTP user"):
        configure(host="mail.example", sender="a@example.com", password="pw")
    with pytest.raises(InvalidRequest, match="smtpHost"):
        configure(host="bad host name", sender="a@example.com")
    assert live.run(lambda db: tenants.get_tenant(db, shop.id)).settings.get("email") is None

    async def bad_template(db: Db) -> None:
        await config.set_templates(db, cli_actor(), shop.id, {"code.txt": "{% if %}"})

    with pytest.raises(InvalidRequest, match=r"template 'code\.txt', line 1"):
        live.run(bad_template)

    async def unknown(db: Db) -> None:
        await config.set_templates(db, cli_actor(), shop.id, {"welcome.txt": "hi"})

    with pytest.raises(InvalidRequest, match=r"template 'welcome\.txt'"):
        live.run(unknown)


def test_whatsapp_and_sms_need_their_own_sender(live: LiveServer, shop: Tenant) -> None:
    with SmtpReceiver() as smtp:
        use_smtp(live, shop.id, smtp)
        for method in (VerificationMethod.SMS, VerificationMethod.WHATSAPP):
            with pytest.raises(DeliveryNotConfigured, match="passgate tenant sms"):
                send_code(live, shop.id, "+64211234567", method=method)
