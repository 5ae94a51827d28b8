"""Rate limits on the Client API calls anyone can make with the tenant id alone (C1, C4 and
their /web variants): a real server with small limits, over SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from passgate.server.services import audit
from passgate.server.store.db import Db
from passgate.server.store.tables import AuditEvent, RateLimitWindow
from tests.live_server import LiveServer, Tenant

PER_IP, PER_TENANT, WINDOW = 3, 5, 3600
# The four routes that share one count.
C1, C1_WEB = "/client/challenge", "/client/challenge/web"
C4 = "/client/user-authenticators/passkey/authentication-options"
C4_WEB = C4 + "/web"


def limited_server(database_url: str, window: int = WINDOW) -> LiveServer:
    return LiveServer(
        database_url,
        client_rate_limit_per_ip=PER_IP,
        client_rate_limit_per_tenant=PER_TENANT,
        client_rate_limit_window_seconds=window,
        prune_interval_seconds=0,
    ).start()


@pytest.fixture(scope="module")
def limited(database_url: str) -> Iterator[LiveServer]:
    live = limited_server(database_url)
    yield live
    live.stop()


@pytest.fixture
def app(limited: LiveServer) -> Tenant:
    fresh_window(WINDOW)
    return limited.create_tenant(name="limited")


def fresh_window(seconds: int, needed: float = 30) -> None:
    """Wait for the next fixed window when this one ends within `needed` seconds."""
    left = seconds - time.time() % seconds
    if left < needed:
        time.sleep(left + 0.05)


def client(server: LiveServer, tenant: Tenant, address: str = "127.0.0.1") -> httpx.Client:
    """A browser or app of the tenant's, with nothing but its id, calling from `address`."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(
        base_url=server.api_url, auth=(tenant.id, ""), transport=transport, timeout=10
    )


def call(api: httpx.Client, path: str) -> httpx.Response:
    return api.post(path, json={})


def events(server: LiveServer, tenant: Tenant) -> list[Any]:
    """The tenant's rate-limit events (rows of `audit_events`)."""

    async def work(db: Db) -> list[Any]:
        query = select(AuditEvent).where(
            AuditEvent.tenant_id == tenant.id, AuditEvent.action == audit.RATE_LIMITED
        )
        return list((await db.execute(query)).all())

    return server.run(work)


def test_over_the_limit_is_429_in_authsignals_shape_with_retry_after(
    limited: LiveServer, app: Tenant
) -> None:
    with client(limited, app) as api:
        # C1 and C4, plain and /web, share one count.
        assert [call(api, path).status_code for path in (C1, C1_WEB, C4)] == [200, 200, 200]
        # A browser on the tenant's origin can read the refusal (see cors.py).
        refused = api.post(C4_WEB, json={}, headers={"Origin": "https://localhost"})
        again = call(api, C1)
    for response in (refused, again):
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["error"] == body["errorCode"] == "too_many_requests"
        assert "from this address" in body["errorDescription"]
        assert 1 <= int(response.headers["retry-after"]) <= WINDOW
    assert refused.headers["access-control-allow-origin"] == "https://localhost"
    assert refused.headers["access-control-expose-headers"] == "Retry-After"
    # One security event per bucket and window, however many calls were refused.
    (event,) = events(limited, app)
    assert (event.actor_type, event.source) == ("system", "127.0.0.1")
    assert event.details == {"limit": "ip", "maximum": PER_IP, "windowSeconds": WINDOW}


def test_other_tenants_and_addresses_are_unaffected_until_the_tenant_limit(
    limited: LiveServer, app: Tenant
) -> None:
    other = limited.create_tenant(name="neighbour")
    with client(limited, app) as first, client(limited, other) as neighbour:
        assert [call(first, C1).status_code for _ in range(PER_IP + 2)] == [200] * PER_IP + [
            429
        ] * 2
        assert call(neighbour, C1).status_code == 200
    # Calls refused by the address's limit did not count against the tenant: two more fit.
    with client(limited, app, "127.0.0.2") as second, client(limited, app, "127.0.0.3") as third:
        assert [call(second, C4).status_code for _ in range(3)] == [200, 200, 429]
        refused = call(third, C1)
    assert refused.status_code == 429
    assert "for this tenant" in refused.json()["errorDescription"]
    assert sorted((event.details or {})["limit"] for event in events(limited, app)) == [
        "ip",
        "tenant",
    ]


def test_bearer_calls_are_not_limited(limited: LiveServer, app: Tenant) -> None:
    with httpx.Client(base_url=limited.api_url, auth=(app.secret_key, ""), timeout=10) as backend:
        token = backend.post("/users/limited-user/actions/signIn", json={}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=limited.api_url, headers=headers, timeout=10) as api:
        statuses = {call(api, path).status_code for path in (C1, C4) * PER_TENANT}
    assert statuses == {200}


def test_unknown_tenants_are_refused_and_not_counted(limited: LiveServer) -> None:
    stranger = Tenant("no-such-tenant", "", "localhost")
    with client(limited, stranger) as api:
        statuses = {call(api, C1).status_code for _ in range(PER_IP + 1)}
    assert statuses == {401}

    async def buckets(db: Db) -> list[str]:
        query = select(RateLimitWindow.bucket).where(
            RateLimitWindow.bucket.contains("no-such-tenant")
        )
        return list((await db.execute(query)).scalars().all())

    assert limited.run(buckets) == []


def test_the_count_is_shared_by_servers_on_one_database(
    limited: LiveServer, app: Tenant, database_url: str
) -> None:
    twin = limited_server(database_url)
    try:
        with client(limited, app) as one, client(twin, app) as two:
            statuses = [call(api, C1).status_code for api in (one, two, one, two, one)]
    finally:
        twin.stop()
    assert statuses == [200, 200, 200, 429, 429]


def test_a_new_window_starts_from_zero(database_url: str) -> None:
    short = limited_server(database_url, window=2)
    try:
        tenant = short.create_tenant(name="short window")
        fresh_window(2, needed=1.5)
        with client(short, tenant) as api:
            statuses = [call(api, C1).status_code for _ in range(PER_IP + 1)]
            retry_after = int(call(api, C1).headers["retry-after"])
            assert 1 <= retry_after <= 2
            time.sleep(retry_after)
            assert call(api, C1).status_code == 200
    finally:
        short.stop()
    assert statuses == [200] * PER_IP + [429]
