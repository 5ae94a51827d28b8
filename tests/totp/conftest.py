"""A client for the test's tenant: its backend and app (tests/totp/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live_server import LiveServer, Tenant
from tests.totp.helpers import CodesClient


@pytest.fixture
def codes(server: LiveServer, tenant: Tenant) -> Iterator[CodesClient]:
    with CodesClient(server.api_url, tenant) as client:
        yield client
