"""Fixtures for the one-time code tests: a tenant whose email goes to a real SMTP server on
loopback and whose SMS and WhatsApp codes go to a real HTTP receiver (its signed webhook), and
a client for its backend and apps (tests/otp/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live_server import LiveServer, Tenant
from tests.otp.helpers import OtpClient, delivering_client, sms_hook, smtp
from tests.receivers import HttpReceiver, SmtpReceiver

__all__ = ["sms_hook", "smtp"]


@pytest.fixture
def otp(
    server: LiveServer, tenant: Tenant, smtp: SmtpReceiver, sms_hook: HttpReceiver
) -> Iterator[OtpClient]:
    yield from delivering_client(server, tenant, smtp, sms_hook)
