"""`passgate tenant email` and `passgate tenant sms`, run as an operator runs them (real
processes), and what a running server then sends with the settings they wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from passgate.server.services.enums import VerificationMethod
from tests.cli.test_keys_cli import Operator, key_file_id
from tests.delivery.conftest import audit_events, send_code
from tests.live_server import LiveServer, Tenant
from tests.raw_database import fresh_database_url, raw_text
from tests.receivers import HttpReceiver, SmtpReceiver, TestCa
from tests.server.push.test_delivery import construct_event

__all__ = ["fresh_database_url"]

PASSGATE = [sys.executable, "-m", "passgate.cli"]


def passgate(live: LiveServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A command on the live server's database and data directory (the same master key)."""
    return subprocess.run(
        [*PASSGATE, *args, "--database-url", live.database_url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def shown(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_tenant_email_sets_shows_and_clears(live: LiveServer, shop: Tenant, tmp_path: Path) -> None:
    nothing = passgate(live, "tenant", "email", shop.id)
    assert nothing.returncode == 0 and nothing.stdout.strip() == "email: not configured"
    ca = TestCa()
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "code.subject").write_text("Code for {{ app_name }}")
    (templates / "code.txt").write_text("Your code: {{ code }}\n")
    with SmtpReceiver(
        security="starttls", ca=ca, username="mailer", password="pw-from-env"
    ) as smtp:
        args = [
            "tenant",
            "email",
            shop.id,
            "--smtp-host",
            "localhost",  # the certificate names localhost and 127.0.0.1
            "--smtp-port",
            str(smtp.port),
            "--smtp-security",
            "starttls",
            "--smtp-user",
            "mailer",
            "--smtp-password-env",
            "SMTP_PASSWORD",
            "--smtp-from",
            "Shop <no-reply@shop.example.com>",
            "--smtp-ca-file",
            str(ca.write_pem(tmp_path)),
            "--template-dir",
            str(templates),
            "--json",
        ]
        missing = passgate(live, *args)
        assert missing.returncode != 0
        assert "SMTP_PASSWORD is not set" in missing.stderr
        settings = shown(passgate(live, *args, SMTP_PASSWORD="pw-from-env"))
        assert settings == {
            "smtpHost": "localhost",
            "smtpPort": smtp.port,
            "smtpSecurity": "starttls",
            "smtpUser": "mailer",
            "smtpPasswordSet": True,
            "from": "Shop <no-reply@shop.example.com>",
            "caCertificate": "CN=Passgate Test CA",
            "templates": ["code.subject", "code.txt"],
        }
        assert "pw-from-env" not in raw_text(live.database_url)
        send_code(live, shop.id, "hal@example.com", code="505050")
        got = smtp.wait()
    assert got.tls and got.login == "mailer"
    assert got.subject == "Code for Shop & Co" and got.text == "Your code: 505050\n"
    assert "505050" in got.html  # the built-in HTML body: no code.html override
    [changed] = audit_events(live, shop.id, "tenant.email.changed")
    assert changed["smtpHost"] == {"from": None, "to": "localhost"}
    assert changed["smtpPassword"] == "changed"

    # Back to the system's CAs, then the built-in templates, then nothing.
    again = shown(passgate(live, "tenant", "email", shop.id, "--system-cas", "--json"))
    assert again["caCertificate"] is None and again["smtpUser"] == "mailer"
    defaults = shown(passgate(live, "tenant", "email", shop.id, "--default-templates", "--json"))
    assert defaults["templates"] == "built-in"
    cleared = passgate(live, "tenant", "email", shop.id, "--clear")
    assert cleared.returncode == 0 and cleared.stdout.strip() == "email: not configured"
    refused = passgate(live, "tenant", "email", shop.id, "--smtp-security", "ssl")
    assert refused.returncode != 0 and "smtpSecurity must be one of" in refused.stderr


def test_tenant_sms_webhook_and_twilio(live: LiveServer, shop: Tenant) -> None:
    with HttpReceiver() as hook:
        done = passgate(
            live, "tenant", "sms", shop.id, "--webhook-url", f"{hook.url}/sms", "--json"
        )
        settings = shown(done)
        secret = settings.pop("webhookSecret")
        assert secret.startswith("pg_smssec_")
        assert settings == {
            "webhookUrl": f"{hook.url}/sms",
            "webhookSecretSet": True,
            "allowedCountryCodes": [],
        }
        send_code(live, shop.id, "+64211234567", code="909090", method=VerificationMethod.SMS)
        request = hook.wait()
        body = construct_event(
            secret, request.body.decode(), request.header("x-signature-v2") or ""
        )
        assert body["code"] == "909090"
        # Shown once: showing the settings again does not print it.
        assert secret not in passgate(live, "tenant", "sms", shop.id).stdout

    twilio = shown(
        passgate(
            live,
            "tenant",
            "sms",
            shop.id,
            "--twilio-account-sid",
            "AC123",
            "--twilio-auth-token-env",
            "TWILIO_TOKEN",
            "--twilio-from",
            "+16502530000",
            "--allowed-country-codes",
            "+64, 1",
            "--json",
            TWILIO_TOKEN="tok-secret",
        )
    )
    assert twilio["twilio"] == {
        "accountSid": "AC123",
        "authTokenSet": True,
        "from": "+16502530000",
        "baseUrl": "https://api.twilio.com",
    }
    assert twilio["allowedCountryCodes"] == ["+64", "+1"]
    assert "tok-secret" not in raw_text(live.database_url)
    text = passgate(live, "tenant", "sms", shop.id, "--clear")
    assert text.returncode == 0
    assert "allowedCountryCodes" in text.stdout and "twilio" not in text.stdout
    assert audit_events(live, shop.id, "tenant.sms.changed")


def test_rotate_master_reseals_delivery_secrets(fresh_database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    host = Operator(fresh_database_url, data)
    created = json.loads(
        host.ok("tenant", "create", "--name", "R", "--rp-id", "r.example", "--json")
    )
    tenant_id = created["tenantId"]
    host.ok(
        "tenant",
        "email",
        tenant_id,
        "--smtp-host",
        "mail.r.example",
        "--smtp-user",
        "u",
        "--smtp-password-env",
        "PW",
        "--smtp-from",
        "no-reply@r.example.com",
        PW="smtp-pw-1",
    )
    host.ok(
        "tenant",
        "sms",
        tenant_id,
        "--webhook-url",
        "https://hooks.r.example/sms",
        "--webhook-secret-env",
        "HOOK",
        "--twilio-account-sid",
        "AC1",
        "--twilio-auth-token-env",
        "TOK",
        "--twilio-from",
        "+16502530000",
        HOOK="hook-secret-1",
        TOK="twilio-tok-1",
    )
    old_id = key_file_id(data / "master.key")
    before = host.status()["encryptedSecrets"][old_id]
    host.ok("keys", "rotate-master")
    new_id = key_file_id(data / "master.key")
    # Every sealed value opened under the old key and was sealed again under the new one.
    assert host.status()["encryptedSecrets"] == {new_id: before}
    raw = raw_text(fresh_database_url)
    assert f"enc:v1:{old_id}:" not in raw
    for secret in ("smtp-pw-1", "hook-secret-1", "twilio-tok-1"):
        assert secret not in raw
