"""A recovery that ends in a security key (SK2) sends its notices as the request commits, not
at the outbox's next poll (docs/recovery.md): on a server of this module's own whose outbox
polls only every ten minutes, and with nothing else waking it after the enrolment, both
notices still arrive within seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from passgate.authenticators import SoftwareAuthenticator
from tests.conftest import PATIENT_DATABASE
from tests.fresh_postgres import fresh_postgres_database
from tests.live_server import LiveServer
from tests.otp.helpers import ENROL_SCOPE, OtpClient, configure_delivery, new_email
from tests.receivers import HttpReceiver, SmtpReceiver

SECURITY_KEY = "/user-authenticators/security-key"
# Far longer than the test waits: a notice left to the poll does not arrive in time.
SLOW_OUTBOX = {"outbox_poll_seconds": 600, **PATIENT_DATABASE}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def slow_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('slow-outbox') / 'passgate.db'}"
        return
    with fresh_postgres_database("passgate_slow_outbox") as url:
        yield url


@pytest.fixture(scope="module")
def slow_server(slow_url: str) -> Iterator[LiveServer]:
    server = LiveServer(slow_url, **SLOW_OUTBOX).start()
    yield server
    server.stop()


@pytest.fixture
def slow_app(
    slow_server: LiveServer, smtp: SmtpReceiver, sms_hook: HttpReceiver
) -> Iterator[OtpClient]:
    tenant = slow_server.create_tenant()
    configure_delivery(slow_server, tenant, smtp, sms_hook)
    client = OtpClient(slow_server, tenant, smtp, sms_hook)
    yield client
    client.close()


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


def test_a_security_key_enrolled_in_a_recovery_sends_the_notices_at_once(
    slow_app: OtpClient, tmp_path: Path
) -> None:
    app, user, email = slow_app, "ines", new_email()
    app.register_passkey(SoftwareAuthenticator(tmp_path / "lost-phone.bin"), user)
    scoped = app.token(user, "addEmail", scope=ENROL_SCOPE)
    ok(app.enroll_email(scoped, email))
    assert ok(app.verify(scoped, "email-otp", app.email_code(email, 1)))["isVerified"]

    # The phone is lost: she signs in with an email code (a recovery method by default) ...
    tracked = ok(app.track(user, "signIn"))
    ok(app.challenge(tracked["token"], "email-otp"))
    verified = ok(app.verify(tracked["token"], "email-otp", app.email_code(email, 2)))
    token = verified["accessToken"]

    # ... and enrols a security key with the token that verify answered.
    key = SoftwareAuthenticator(tmp_path / "key.bin")
    options = ok(app.client("POST", f"{SECURITY_KEY}/registration-options", token=token, json={}))
    added = ok(app.client("POST", SECURITY_KEY, token=token, json=key.create(options)))
    assert added["userAuthenticator"]["verificationMethod"] == "SECURITY_KEY"

    # Both notices, well before the outbox's next poll (sent in either order).
    notices = [app.smtp.wait(to=email, count=count, timeout=15) for count in (3, 4)]
    recovered = next(m for m in notices if "recovered" in m.subject)
    added_mail = next(m for m in notices if m is not recovered)
    assert "EMAIL_OTP" in recovered.text
    assert added["userAuthenticatorId"] in added_mail.text and "SECURITY_KEY" in added_mail.text
