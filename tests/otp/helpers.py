"""A tenant's backend and apps calling the one-time code routes over plain HTTP, and reading
the codes its real receivers got (an SMTP server and an SMS webhook, both on loopback)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from passgate.server.services import audit, otp, users
from passgate.server.services.delivery import config
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant
from tests.receivers import HttpReceiver, ReceivedRequest, SmtpReceiver
from tests.tenant_client import ENROL_SCOPE, TenantClient

__all__ = [
    "ENROL_SCOPE",
    "OtpClient",
    "configure_delivery",
    "delivering_client",
    "new_email",
    "new_phone",
    "sms_hook",
    "smtp",
]


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    """A real SMTP server on loopback (re-exported by the conftests that use it)."""
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def sms_hook() -> Iterator[HttpReceiver]:
    """A real HTTP receiver on loopback for the tenant's signed SMS webhook."""
    with HttpReceiver() as receiver:
        yield receiver


def delivering_client(
    server: LiveServer, tenant: Tenant, smtp: SmtpReceiver, sms_hook: HttpReceiver
) -> Iterator[OtpClient]:
    """The tenant's backend and its user's app, with email and SMS delivery set up (for a
    fixture to `yield from`)."""
    configure_delivery(server, tenant, smtp, sms_hook)
    client = OtpClient(server, tenant, smtp, sms_hook)
    yield client
    client.close()


def new_email() -> str:
    return f"user-{secrets.token_hex(6)}@example.com"


def new_phone() -> str:
    """A New Zealand mobile number nobody else in the run uses (+64 21 and 7 digits)."""
    return f"+6421{secrets.randbelow(9_000_000) + 1_000_000}"


def configure_delivery(
    server: LiveServer, tenant: Tenant, smtp: SmtpReceiver, sms_hook: HttpReceiver
) -> None:
    """What an operator does with `passgate tenant email` and `passgate tenant sms`."""

    async def work(db: Db) -> None:
        actor = audit.cli_actor()
        await config.configure_email(
            db,
            actor,
            tenant.id,
            host=smtp.host,
            port=smtp.port,
            security="none",
            sender="Passgate <codes@example.com>",
        )
        await config.configure_sms(
            db, actor, tenant.id, config.SmsChange(webhook_url=f"{sms_hook.url}/sms")
        )

    server.run(work)


class OtpClient(TenantClient):
    """The tenant's backend (secret key) and apps (Bearer token), and its receivers."""

    def __init__(
        self, server: LiveServer, tenant: Tenant, smtp: SmtpReceiver, sms_hook: HttpReceiver
    ) -> None:
        super().__init__(server.api_url, tenant)
        self.live = server
        self.smtp = smtp
        self.sms_hook = sms_hook

    # Client API.

    def enroll_email(self, token: str, email: str) -> httpx.Response:
        return self.client(
            "POST", "/user-authenticators/email-otp", token=token, json={"email": email}
        )

    def enroll_sms(self, token: str, phone_number: str) -> httpx.Response:
        body = {"phoneNumber": phone_number}
        return self.client("POST", "/user-authenticators/sms", token=token, json=body)

    def challenge(self, token: str, kind: str) -> httpx.Response:
        """E2, S2 or WA1 (`kind`: email-otp, sms, whatsapp), with no body, as the SDKs send."""
        return self.client("POST", f"/challenge/{kind}", token=token)

    def verify(self, token: str, kind: str, code: str) -> httpx.Response:
        body = {"verificationCode": code}
        return self.client("POST", f"/verify/{kind}", token=token, json=body)

    # Delivered codes.

    def email_code(self, address: str, count: int = 1) -> str:
        code = self.smtp.wait(to=address, count=count).code
        assert code is not None
        return code

    def sms_requests(self, phone_number: str) -> list[ReceivedRequest]:
        return [r for r in self.sms_hook.requests if r.json().get("phoneNumber") == phone_number]

    def sms(self, phone_number: str, count: int = 1, timeout: float = 15) -> dict[str, Any]:
        """The `count`-th webhook call for this number, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.sms_requests(phone_number)
            if len(found) >= count:
                return dict(found[count - 1].json())
            assert time.monotonic() < deadline, f"no SMS #{count} to {phone_number}"
            time.sleep(0.05)

    def sms_code(self, phone_number: str, count: int = 1) -> str:
        return str(self.sms(phone_number, count)["code"])

    # Tenant settings, as an operator sets them.

    def allow_methods(self, *methods: str) -> None:
        async def work(db: Db) -> None:
            await users.set_allowed_methods(db, self.tenant.id, methods)

        self.live.run(work)

    def set_limits(self, **limits: int) -> None:
        async def work(db: Db) -> None:
            await otp.set_limits(db, self.tenant.id, limits)

        self.live.run(work)

    def allow_countries(self, *codes: str) -> None:
        async def work(db: Db) -> None:
            change = config.SmsChange(allowed_country_codes=list(codes))
            await config.configure_sms(db, audit.cli_actor(), self.tenant.id, change)

        self.live.run(work)
