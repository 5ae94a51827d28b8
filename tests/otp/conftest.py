"""Fixtures for the one-time code tests: a tenant whose email goes to a real SMTP server on
loopback and whose SMS and WhatsApp codes go to a real HTTP receiver (its signed webhook), and
a client for its backend and apps (tests/otp/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live_server import LiveServer, Tenant
from tests.otp.helpers import OtpClient, configure_delivery
from tests.receivers import HttpReceiver, SmtpReceiver


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def sms_hook() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def otp(
    server: LiveServer, tenant: Tenant, smtp: SmtpReceiver, sms_hook: HttpReceiver
) -> Iterator[OtpClient]:
    configure_delivery(server, tenant, smtp, sms_hook)
    client = OtpClient(server, tenant, smtp, sms_hook)
    yield client
    client.close()
