"""Fixtures for the recovery tests: the one-time code tests' tenant set-up (a real SMTP server
on loopback for email codes, a real HTTP receiver for the SMS webhook), with a client for the
tenant's backend and its user's app (tests/otp/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live_server import LiveServer, Tenant
from tests.otp.helpers import OtpClient, delivering_client, sms_hook, smtp
from tests.receivers import HttpReceiver, SmtpReceiver

__all__ = ["sms_hook", "smtp"]


@pytest.fixture
def app(
    server: LiveServer, tenant: Tenant, smtp: SmtpReceiver, sms_hook: HttpReceiver
) -> Iterator[OtpClient]:
    """The tenant's backend and its user's app, with email and SMS delivery set up."""
    yield from delivering_client(server, tenant, smtp, sms_hook)
