"""Push fixtures: a device (the Python SDK with a key file) enrolled through a real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore
from passgate.server.services.push import settings as push_settings
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant

Device = Callable[..., AuthsignalSync]


@pytest.fixture
def make_device(server: LiveServer, tenant: Tenant, tmp_path: Path) -> Iterator[Device]:
    """A new device (its own key file) of the test's tenant."""
    made: list[AuthsignalSync] = []

    def make(name: str = "device", tenant_id: str | None = None) -> AuthsignalSync:
        keys = DeviceKeyStore(tmp_path / f"{name}.pem", passphrase="correct horse")
        client = AuthsignalSync(tenant_id or tenant.id, server.api_url, device_keys=keys)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def enroll(authsignal: AuthsignalClient) -> Callable[[AuthsignalSync, str], str]:
    """Enroll `device` for `user_id` as an app does; returns the userAuthenticatorId."""

    def run(device: AuthsignalSync, user_id: str) -> str:
        tracked = authsignal.track(user_id, "enrollPush", {"scope": "add:authenticators"})
        response = device.push.add_credential(tracked["token"])
        assert response.ok, response
        assert response.data is not None
        return response.data.credential_id

    return run


@pytest.fixture
def configure(server: LiveServer, tenant: Tenant) -> Callable[..., push_settings.PushSettings]:
    """Change the tenant's push settings as `passgate tenant update` does."""

    def run(**changes: Any) -> push_settings.PushSettings:
        async def work(db: Db) -> push_settings.PushSettings:
            return await push_settings.configure(db, tenant.id, **changes)

        return server.run(work)

    return run
