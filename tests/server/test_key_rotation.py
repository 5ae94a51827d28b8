"""Rotating a tenant's secret key with a grace period: the old key keeps working until the
period ends, then gets 401, checked with Authsignal's own Python server SDK."""

from __future__ import annotations

from datetime import timedelta

import pytest
from authsignal.client import ApiException, AuthsignalClient
from sqlalchemy import update

from passgate.server.services import tenants
from passgate.server.services.errors import InvalidRequest
from passgate.server.store.db import Db
from passgate.server.store.tables import Tenant as TenantTable
from passgate.server.store.tables import utcnow
from tests.live_server import LiveServer, Tenant


def rotate(server: LiveServer, tenant_id: str, grace: timedelta) -> str:
    async def work(db: Db) -> str:
        return await tenants.rotate_secret_key(db, tenant_id, grace=grace)

    return server.run(work)


def end_grace_period(server: LiveServer, tenant_id: str) -> None:
    """What the passing of time does: the previous key's expiry is now behind us."""

    async def work(db: Db) -> None:
        await db.execute(
            update(TenantTable)
            .where(TenantTable.id == tenant_id)
            .values(previous_secret_key_expires_at=utcnow() - timedelta(seconds=1))
        )

    server.run(work)


def works(server: LiveServer, secret_key: str) -> bool:
    client = AuthsignalClient(api_secret_key=secret_key, api_url=server.api_url, timeout=10)
    try:
        client.get_user("rotation-user")
    except ApiException as exc:
        assert exc.status_code == 401, exc
        return False
    finally:
        client.session.close()
    return True


def test_old_key_works_during_the_grace_period_and_not_after(
    server: LiveServer, tenant: Tenant
) -> None:
    assert works(server, tenant.secret_key)
    new_key = rotate(server, tenant.id, timedelta(hours=1))
    assert new_key != tenant.secret_key
    assert works(server, new_key)
    assert works(server, tenant.secret_key)  # still within the hour

    end_grace_period(server, tenant.id)
    assert not works(server, tenant.secret_key)
    assert works(server, new_key)


def test_without_grace_the_old_key_stops_at_once(server: LiveServer, tenant: Tenant) -> None:
    assert works(server, tenant.secret_key)  # now in this process's tenant cache
    new_key = rotate(server, tenant.id, timedelta(0))
    assert not works(server, tenant.secret_key)
    assert works(server, new_key)


def test_a_second_rotation_ends_the_first_keys_grace(server: LiveServer, tenant: Tenant) -> None:
    second = rotate(server, tenant.id, timedelta(hours=1))
    third = rotate(server, tenant.id, timedelta(hours=1))
    assert not works(server, tenant.secret_key)
    assert works(server, second)
    assert works(server, third)


def test_grace_is_bounded(server: LiveServer, tenant: Tenant) -> None:
    with pytest.raises(InvalidRequest, match="grace period"):
        rotate(server, tenant.id, timedelta(days=31))
    with pytest.raises(InvalidRequest, match="grace period"):
        rotate(server, tenant.id, timedelta(seconds=-1))
    assert works(server, tenant.secret_key)
