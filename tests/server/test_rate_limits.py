"""Rate limits on the Client API calls anyone can make with the tenant id alone (C1, C4 and
their /web variants): a real server with small limits, over SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from passgate.server.services import audit
from passgate.server.services.rate_limits import tenant_shards
from passgate.server.store import rate_limits as store
from passgate.server.store.db import Db
from passgate.server.store.tables import AuditEvent, RateLimitWindow, utcnow
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


# A tenant limit large enough to be split into shards (services/rate_limits.py): 100 is eight,
# four of 13 and four of 12.
SHARDED_PER_IP, SHARDED_PER_TENANT = 10, 100
SHARES = [12] * 4 + [13] * 4


@pytest.fixture(scope="module")
def sharded(database_url: str) -> Iterator[LiveServer]:
    """Production's lock timeout (the wait for a row another transaction holds), but a long
    wait for a pooled connection: the race below sends more calls at once than the pool has
    connections, and queueing for one is tests/server/test_overload.py's subject."""
    live = LiveServer(
        database_url,
        client_rate_limit_per_ip=SHARDED_PER_IP,
        client_rate_limit_per_tenant=SHARDED_PER_TENANT,
        client_rate_limit_window_seconds=WINDOW,
        prune_interval_seconds=0,
        database_pool_timeout_seconds=60,
    ).start()
    assert live.settings.database_lock_timeout_seconds == 0.7
    yield live
    live.stop()


def tenant_hits(server: LiveServer, tenant: Tenant) -> dict[str, int]:
    """The tenant's per-tenant buckets (its shards, and the mark of its first refusal)."""

    async def work(db: Db) -> dict[str, int]:
        query = select(RateLimitWindow.bucket, RateLimitWindow.hits).where(
            RateLimitWindow.bucket.startswith(f"client:tenant:{tenant.id}:")
        )
        return {bucket: hits for bucket, hits in (await db.execute(query)).all()}

    return server.run(work)


def shard_hits(server: LiveServer, tenant: Tenant) -> list[int]:
    return [hits for bucket, hits in tenant_hits(server, tenant).items() if "refused" not in bucket]


def test_the_tenant_limit_is_the_sum_of_its_shards(sharded: LiveServer) -> None:
    fresh_window(WINDOW)
    app = sharded.create_tenant(name="sharded")
    statuses = []
    for index in range(SHARDED_PER_TENANT // SHARDED_PER_IP):
        with client(sharded, app, f"127.0.4.{1 + index}") as api:
            statuses += [call(api, C4).status_code for _ in range(SHARDED_PER_IP)]
    assert statuses == [200] * SHARDED_PER_TENANT
    # Each shard holds its share, and the shares add up to the limit.
    assert sorted(shard_hits(sharded, app)) == SHARES
    with client(sharded, app, "127.0.5.1") as api:
        refused = [call(api, path) for path in (C4, C1, C4_WEB)]
    for response in refused:
        assert response.status_code == 429
        body = response.json()
        assert body["error"] == body["errorCode"] == "too_many_requests"
        assert body["errorDescription"].startswith(
            f"Too many sign-in requests for this tenant (at most {SHARDED_PER_TENANT} a window)."
        )
        assert 1 <= int(response.headers["retry-after"]) <= WINDOW
    # Refused calls count nowhere, and the first of them recorded one event.
    assert sorted(shard_hits(sharded, app)) == SHARES
    (event,) = events(sharded, app)
    assert event.details == {
        "limit": "tenant",
        "maximum": SHARDED_PER_TENANT,
        "windowSeconds": WINDOW,
    }


def test_shards_share_the_limit_exactly() -> None:
    assert tenant_shards("t", 7, 19) == [("client:tenant:t:7", 19)]
    assert tenant_shards("t", 7, 21) == [("client:tenant:t:7:0", 11), ("client:tenant:t:7:1", 10)]
    default = tenant_shards("t", 7, 6000)
    assert len(default) == 8 and {cap for _, cap in default} == {750}
    odd = tenant_shards("t", 7, 1003)
    assert len(odd) == 8 and sum(cap for _, cap in odd) == 1003


def test_a_full_shard_takes_a_spare_hit_from_another(limited: LiveServer) -> None:
    """store.take_spare on the database itself: the emptiest shard with room, then a shard
    not made yet, then nothing."""
    prefix = f"spare:{secrets.token_hex(8)}"
    full, roomy, unmade = f"{prefix}:0", f"{prefix}:1", f"{prefix}:2"
    expires = utcnow() + timedelta(hours=1)

    async def work(db: Db) -> list[str | None]:
        assert await store.count_hits(db, [full], expires, capped=full, cap=1) == {full: 1}
        # Full: not counted, not returned.
        assert await store.count_hits(db, [full], expires, capped=full, cap=1) == {}
        assert await store.count_hits(db, [roomy], expires, capped=roomy, cap=2) == {roomy: 1}
        shards = [(full, 1), (roomy, 2), (unmade, 1)]
        return [await store.take_spare(db, shards, expires) for _ in range(3)]

    assert limited.run(work) == [roomy, unmade, None]

    async def hits(db: Db) -> dict[str, int]:
        query = select(RateLimitWindow.bucket, RateLimitWindow.hits).where(
            RateLimitWindow.bucket.startswith(prefix)
        )
        return {bucket: count for bucket, count in (await db.execute(query)).all()}

    assert limited.run(hits) == {full: 1, roomy: 2, unmade: 1}


# The race: RACERS threads at once, each with its own address and warm connection, CALLS
# calls each: more than the tenant's limit.
RACERS, CALLS = 80, 2
# And one noisy address: NOISY threads sharing it, NOISY_CALLS calls each, over its own limit.
# Its calls queue on its own row (the per-address count is exact), so not many at once: a
# hundred calls from one address each waiting for all the others would meet the statement
# timeout and get 503s of their own, by design (tests/server/test_overload.py).
NOISY, NOISY_CALLS = 4, 4


def test_concurrent_sign_ins_of_one_tenant_keep_both_limits_without_503(
    sharded: LiveServer,
) -> None:
    """Every call of one tenant counted at once. Before the tenant's count was split, they all
    queued on its one row, and on PostgreSQL those that waited past the lock timeout were
    answered 503. Now: no 5xx, the address's limit exact, the tenant's never exceeded, and
    once the race is over the tenant's count reaches its limit exactly."""
    fresh_window(WINDOW)
    app = sharded.create_tenant(name="race")
    noisy = "127.0.2.1"
    addresses = [f"127.0.1.{1 + index}" for index in range(RACERS)] + [noisy] * NOISY
    clients = [client(sharded, app, address) for address in addresses]
    start = threading.Barrier(len(clients), timeout=60)

    def run(index: int) -> list[httpx.Response]:
        api = clients[index]
        assert api.get(f"{sharded.url}/health").status_code == 200
        start.wait()
        return [call(api, C4) for _ in range(CALLS if index < RACERS else NOISY_CALLS)]

    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            answers = list(pool.map(run, range(len(clients))))
    finally:
        for api in clients:
            api.close()
    responses = [response for answer in answers for response in answer]
    assert not [r.text for r in responses if r.status_code >= 500]
    assert set(Counter(r.status_code for r in responses)) <= {200, 429}

    def refused(answer: list[httpx.Response], who: str) -> int:
        return sum(
            1 for r in answer if r.status_code == 429 and who in r.json()["errorDescription"]
        )

    noisy_answers = [r for answer in answers[RACERS:] for r in answer]
    # The address's count is one row: exactly its limit got past it, the rest refused by it.
    assert refused(noisy_answers, "from this address") == NOISY * NOISY_CALLS - SHARDED_PER_IP
    admitted = sum(1 for r in responses if r.status_code == 200)
    assert admitted <= SHARDED_PER_TENANT
    # Every other refusal is the tenant's, and the shards hold exactly the admitted calls.
    assert refused(responses, "for this tenant") == len(responses) - admitted - (
        NOISY * NOISY_CALLS - SHARDED_PER_IP
    )
    assert sum(shard_hits(sharded, app)) == admitted
    # Calls one after another take whatever room is left (a call is refused early only while
    # other calls hold the shards with room), then the tenant refuses.
    topped_up = 0
    for index in range(SHARDED_PER_TENANT + 1):
        with client(sharded, app, f"127.0.3.{1 + index}") as api:
            last = call(api, C4)
        if last.status_code != 200:
            break
        topped_up += 1
    assert last.status_code == 429
    assert "for this tenant" in last.json()["errorDescription"]
    assert admitted + topped_up == SHARDED_PER_TENANT
    assert sorted(shard_hits(sharded, app)) == SHARES
    assert sorted((event.details or {})["limit"] for event in events(sharded, app)) == [
        "ip",
        "tenant",
    ]
