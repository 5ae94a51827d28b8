"""Client API authentication: the three Basic encodings of the tenant id
(docs/wire.md#authorization-headers)."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from passgate.server.client_api.auth import tenant_id_from_basic

TENANT = "3f1c2a9e-6b7d-4e21-9c0a-5d8e7f6a1b2c"


@pytest.mark.parametrize(
    "credentials",
    [
        base64.b64encode(f"{TENANT}:".encode()).decode(),  # Android: standard, padded
        base64.urlsafe_b64encode(f"{TENANT}:".encode()).decode().rstrip("="),  # iOS
        base64.b64encode(quote(TENANT, safe="").encode()).decode(),  # browser: no colon
    ],
)
def test_every_sdk_encoding_gives_the_tenant_id(credentials: str) -> None:
    assert tenant_id_from_basic(credentials) == TENANT


@pytest.mark.parametrize("credentials", ["", "!!!", base64.b64encode(b":").decode(), "\xff"])
def test_garbage_gives_nothing(credentials: str) -> None:
    assert tenant_id_from_basic(credentials) is None
