"""P4, P5 and P6 take the tenant from the process's cache and check its version in the
statement they run anyway (docs/push.md#statements-per-request): a tenant changed through
another process (of one deployment, on one database) is read afresh by the next of them."""

from __future__ import annotations

from collections.abc import Callable

from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.server.services import tenants
from passgate.server.services.push import settings as push_settings
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant
from tests.server.push.conftest import Device

Enroll = Callable[[AuthsignalSync, str], str]


def test_a_tenant_changed_through_another_process_applies_at_once(
    database_url: str,
    server: LiveServer,
    tenant: Tenant,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
) -> None:
    device = make_device()
    enroll(device, "cara")
    assert device.push.get_challenge().ok  # this process now holds the tenant and the device
    tracked = authsignal.track("cara", "signIn")
    held = tenants.cached(tenant.id)
    assert held is not None

    other = LiveServer(database_url).start()
    try:

        async def change(db: Db) -> push_settings.PushSettings:
            return await push_settings.configure(db, tenant.id, challenge_expiry_seconds=90)

        other.run(change)
    finally:
        other.stop()

    got = device.push.get_challenge()  # P4 and P5 see the new version and read the tenant
    assert got.ok and got.data is not None, got
    assert got.data.challenge_id == tracked["challenge_id"]
    fresh = tenants.cached(tenant.id)
    assert fresh is not None and fresh.updated_at > held.updated_at
    assert push_settings.push_settings(fresh).challenge_expiry_seconds == 90
    answer = device.push.update_challenge(
        got.data.challenge_id, True, tracked.get("verification_code")
    )
    assert answer.ok and answer.data is True, answer
    assert authsignal.validate_challenge({"token": tracked["token"]})["is_valid"] is True
