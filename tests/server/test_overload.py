"""Overload and a stalled database: answered 503 with Retry-After, in Authsignal's error shape,
well before the 2 s an Authsignal SDK waits; never 500. Reads on SQLite do not wait for the
write lock, /health never waits for the database, and waiting long-polls hold no connection."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import insert, text

from passgate.sdk._protocol import basic_auth
from passgate.sdk._push_protocol import (
    PUSH_PATH,
    SIGNATURE_HEADER,
    public_key_base64,
    public_key_param,
    sign,
)
from passgate.server.errors import database_busy
from passgate.server.store.database import (
    WriteInReadOnlyTransaction,
    create_engine,
    sqlite_path,
)
from passgate.server.store.db import Engines
from passgate.server.store.tables import RateLimitWindow, utcnow
from tests.live_server import LiveServer, Tenant

# A 503 well before Authsignal's Python SDK gives up at 2 s.
PROMPT = 1.5


@contextmanager
def database_locked(database_url: str) -> Iterator[None]:
    """Another process's transaction holding the database: SQLite's write lock, or an
    exclusive lock on PostgreSQL's `actions` table (reads of it wait too)."""
    path = sqlite_path(database_url)
    if path is not None:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    locked, release = threading.Event(), threading.Event()

    async def hold() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            async with connection.transaction():
                await connection.execute("LOCK TABLE actions IN ACCESS EXCLUSIVE MODE")
                locked.set()
                await asyncio.get_running_loop().run_in_executor(None, release.wait)
        finally:
            await connection.close()

    holder_thread = threading.Thread(target=lambda: asyncio.run(hold()), daemon=True)
    holder_thread.start()
    assert locked.wait(timeout=10), "could not lock the actions table"
    try:
        yield
    finally:
        release.set()
        holder_thread.join(timeout=10)


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_busy(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["error"] == body["errorCode"] == "service_unavailable"
    assert body["errorDescription"]


@pytest.fixture(scope="module")
def strict_server(database_url: str) -> Iterator[LiveServer]:
    """A server with the default database waits (the shared test server is patient)."""
    live = LiveServer(database_url).start()
    yield live
    live.stop()


def test_a_locked_database_answers_503_promptly_and_reads_go_on(
    strict_server: LiveServer,
) -> None:
    server = strict_server
    tenant = server.create_tenant()
    http = httpx.Client(base_url=server.api_url, auth=(tenant.secret_key, ""), timeout=10)
    tracked = http.post("/users/ann/actions/signIn", json={})
    assert tracked.status_code == 200
    action_path = f"/users/ann/actions/signIn/{tracked.json()['idempotencyKey']}"
    with database_locked(server.database_url):
        track, elapsed = timed(lambda: http.post("/users/ann/actions/signIn", json={}))
        assert_busy(track)
        assert elapsed < PROMPT
        patch, elapsed = timed(lambda: http.patch(action_path, json={"state": "ALLOW"}))
        assert_busy(patch)
        assert elapsed < PROMPT
        health, elapsed = timed(lambda: httpx.get(f"{server.url}/health"))
        assert health.status_code == 200 and elapsed < PROMPT
        read, elapsed = timed(lambda: http.get(action_path))
        if server.database_url.startswith("sqlite"):
            # A plain read takes no write lock: it goes on while a writer holds the database.
            assert read.status_code == 200, read.text
            assert read.json()["state"] == "CHALLENGE_REQUIRED"
            assert http.get("/users/ann").status_code == 200
        else:
            # The action's table itself is locked: the read waits its lock_timeout, no more.
            assert_busy(read)
        assert elapsed < PROMPT
    # The lock gone, the same calls succeed: nothing was left half-done.
    assert http.patch(action_path, json={"state": "ALLOW"}).status_code == 200
    assert http.get(action_path).json()["state"] == "ALLOW"


def test_a_write_in_a_read_only_transaction_is_refused(server: LiveServer) -> None:
    """The guard behind read-only GETs: a route that writes but was not marked as writing
    fails loudly in tests on both databases (rather than as a rare lock error on SQLite)."""

    async def attempt() -> None:
        engine = create_engine(server.database_url)
        try:
            async with Engines(engine).transaction(read_only=True) as db:
                row = {"bucket": "read-only-guard", "hits": 1, "expires_at": utcnow()}
                with pytest.raises(WriteInReadOnlyTransaction):
                    await db.execute(insert(RateLimitWindow).values(**row))
        finally:
            await engine.dispose()

    asyncio.run(attempt())


@pytest.fixture
def small_pool_server(database_url: str) -> Iterator[LiveServer]:
    """Default waits and a pool of 2 + 2 connections (SQLite: one writer), so a burst
    exceeds it."""
    live = LiveServer(database_url, database_pool_size=2).start()
    yield live
    live.stop()


Device = tuple[str, ec.EllipticCurvePrivateKey]


async def enroll_devices(server: LiveServer, tenant: Tenant, count: int) -> list[Device]:
    """`count` push devices, each its own user, enrolled as apps enrol them."""
    limit = asyncio.Semaphore(10)

    async def enroll(index: int, client: httpx.AsyncClient) -> Device:
        key = ec.generate_private_key(ec.SECP256R1())
        user_id = f"burst-{index}"
        async with limit:
            tracked = await client.post(
                f"/users/{user_id}/actions/enrollPush",
                json={"scope": "add:authenticators"},
                auth=(tenant.secret_key, ""),
            )
            token = tracked.json()["token"]
            added = await client.post(
                PUSH_PATH,
                json={"publicKey": public_key_base64(key)},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert added.status_code == 200, added.text
        return user_id, key

    async with httpx.AsyncClient(base_url=server.api_url, timeout=30) as client:
        return await asyncio.gather(*(enroll(index, client) for index in range(count)))


async def long_polls(api_url: str, tenant_id: str, keys: list[bytes], wait: float) -> list[Any]:
    """The devices' P4 then P5 with `wait`, all at once (the first one 0.5 s ahead of the
    rest); each result is (status, Retry-After, body) of the last call made."""
    loaded = [serialization.load_pem_private_key(pem, None) for pem in keys]
    limits = httpx.Limits(max_connections=len(keys) + 10, max_keepalive_connections=len(keys))

    async def poll(client: httpx.AsyncClient, key: Any) -> tuple[int, str | None, Any]:
        params = {"publicKey": public_key_param(key)}
        headers = {"Authorization": basic_auth(tenant_id)}
        response = await client.post(f"{PUSH_PATH}/challenge/sign", params=params, headers=headers)
        if response.status_code == 200:
            headers[SIGNATURE_HEADER] = sign(key, response.json()["message"])
            params["wait"] = str(wait)
            response = await client.get(f"{PUSH_PATH}/challenge", params=params, headers=headers)
        return response.status_code, response.headers.get("Retry-After"), response.json()

    async with httpx.AsyncClient(base_url=api_url, timeout=wait + 30, limits=limits) as client:
        first = asyncio.create_task(poll(client, loaded[0]))
        await asyncio.sleep(0.5)
        rest = await asyncio.gather(*(poll(client, key) for key in loaded[1:]))
        return [await first, *rest]


def run_long_polls(api_url: str, tenant_id: str, keys: list[bytes], wait: float) -> list[Any]:
    return asyncio.run(long_polls(api_url, tenant_id, keys, wait))


def test_a_burst_of_long_polls_gets_no_500_and_health_stays_fast(
    server: LiveServer, tenant: Tenant, small_pool_server: LiveServer
) -> None:
    """Long-polls beyond what the pool takes in time get 503; those that got in wait without
    a connection, so a track during the wait still gets one and wakes its device. The devices
    are another process, as they would be."""
    count, wait = 200, 8.0
    devices = asyncio.run(enroll_devices(server, tenant, count))
    keys = [
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for _, key in devices
    ]
    live = small_pool_server
    health_times: list[float] = []
    with (
        ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as other,
        httpx.Client(base_url=live.url, timeout=30) as probe,
    ):
        burst = other.submit(run_long_polls, live.api_url, tenant.id, keys, wait)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert probe.get("/health").status_code == 200
            health_times.append(time.monotonic() - started)
            time.sleep(0.1)
        # The long-polls that got in are waiting now: a track still gets a connection
        # (waiters hold none) and wakes the first device.
        tracked = probe.post(
            f"/v1/users/{devices[0][0]}/actions/signIn", json={}, auth=(tenant.secret_key, "")
        )
        results = burst.result(timeout=120)
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    for status, retry_after, body in results:
        if status == 503:
            assert retry_after == "1" and body["errorCode"] == "service_unavailable"
    assert max(health_times) < PROMPT, max(health_times)
    assert tracked.status_code == 200, tracked.text
    assert results[0][0] == 200, results[0]
    assert results[0][2]["challengeId"] == tracked.json()["challengeId"]
    waited = [body for status, _, body in results if status == 200 and "challengeId" not in body]
    assert len(waited) >= 10, statuses.count(503)


def test_an_unreachable_database_is_busy_not_broken() -> None:
    """A refused connection (PostgreSQL restarting, a failover) is answered like a stalled
    database, 503 with Retry-After, not 500: the error the driver really raises is classed so."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    async def connect() -> BaseException:
        engine = create_engine(f"postgresql://postgres@127.0.0.1:{closed_port}/gone")
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError("a closed port accepted a connection")

    refused = asyncio.run(connect())
    assert isinstance(refused, ConnectionError), repr(refused)
    assert database_busy(refused)
    assert not database_busy(ValueError("a bug, not an outage"))
