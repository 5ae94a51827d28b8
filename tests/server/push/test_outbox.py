"""The outbox: webhooks are written with the event that causes them and delivered at least once
by any server process under a lease (services/outbox.py, docs/push.md#webhooks).

Real parts: Passgate servers on loopback ports (several at once over one database stand for
several processes: each has its own engines, event loop and outbox deliverer), a receiver on
loopback that answers as each test tells it, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from authsignal.client import AuthsignalClient

from passgate.server.services import audit, tenants
from passgate.server.services import outbox as service
from passgate.server.services.pruning import Pruner, prune
from passgate.server.services.push import settings as push_settings
from passgate.server.settings import Settings
from passgate.server.store import outbox as store
from passgate.server.store.database import create_engine
from passgate.server.store.db import Db, Engines
from passgate.server.store.outbox import OutboxRow
from passgate.server.store.tables import utcnow
from tests.conftest import PATIENT_DATABASE
from tests.fresh_postgres import fresh_postgres_database
from tests.live_server import LiveServer, Tenant
from tests.server.push.conftest import Device
from tests.server.push.test_delivery import construct_event

T = TypeVar("T")
EVENT_ID = "x-passgate-event-id"
ATTEMPT = "x-passgate-attempt"
# Short timings, so retries and polls happen within a test.
FAST = {
    "outbox_poll_seconds": 0.2,
    "outbox_retry_base_seconds": 0.05,
    "outbox_retry_max_seconds": 0.2,
    "outbox_lease_seconds": 5,
    "prune_interval_seconds": 0,
    **PATIENT_DATABASE,
}


class Listening(ThreadingHTTPServer):
    # Two servers' deliverers connect at once: a backlog of 5 (the default) resets some.
    request_queue_size = 128


class Receiver:
    """A webhook receiver on loopback. `answer(event_id, try_number)` gives each request's
    status (`try_number` counts this receiver's requests for that event id, from 1)."""

    def __init__(
        self, answer: Callable[[str, int], int], *, port: int = 0, pause: float = 0.0
    ) -> None:
        self.requests: list[tuple[dict[str, str], str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append((headers, body))
                    seen = sum(1 for h, _ in receiver.requests if h[EVENT_ID] == headers[EVENT_ID])
                if pause:
                    time.sleep(pause)
                self.send_response(answer(headers[EVENT_ID], seen))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = Listening(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/hooks"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def ids(self) -> Counter[str]:
        with self._lock:
            return Counter(headers[EVENT_ID] for headers, _ in self.requests)

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def on_loop(server: LiveServer, work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the server's own event loop (its engines live there)."""
    assert server._loop is not None
    return asyncio.run_coroutine_threadsafe(work, server._loop).result(timeout=30)


def row(server: LiveServer, event_id: str) -> OutboxRow:
    async def work(db: Db) -> OutboxRow:
        found = await store.get(db, event_id)
        assert found is not None
        return found

    return server.run(work)


def with_webhook(server: LiveServer, url: str) -> tuple[Tenant, str]:
    """A tenant whose push webhook goes to `url`; and its webhook secret."""
    tenant = server.create_tenant()

    async def work(db: Db) -> str:
        configured = await push_settings.configure(db, tenant.id, webhook_url=url)
        assert configured.webhook_secret is not None
        return configured.webhook_secret

    return tenant, server.run(work)


def webhook_event(db: Db, tenant: Tenant, url: str, wake: Callable[[], None] | None) -> Any:
    """Enqueue a webhook event in `db`'s transaction, as `push.created` is enqueued."""
    event_id = str(uuid.uuid4())
    event = {"version": 1, "type": "test.event", "id": event_id, "tenantId": tenant.id}

    async def work() -> str:
        await service.enqueue(
            db,
            id=event_id,
            tenant_id=tenant.id,
            kind=service.WEBHOOK,
            destination=url,
            payload=json.dumps(event),
            wake=wake,
        )
        return event_id

    return work()


def enqueue(server: LiveServer, tenant: Tenant, url: str, *, wake: bool = True) -> str:
    """A webhook event in the outbox, in its own transaction; the server's deliverer is woken
    after the commit as it is for push.created (or, `wake=False`, finds it at its next poll)."""
    outbox = server.app.state.push_hub.deliverer.outbox

    async def work(db: Db) -> str:
        event_id: str = await webhook_event(db, tenant, url, outbox.wake if wake else None)
        return event_id

    return server.run(work)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own for the test's servers: the session's server would deliver the
    test's messages too, and the test could not tell which process did."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.db'}"
        return
    with fresh_postgres_database("passgate_outbox") as url:
        yield url


@pytest.fixture
def servers(own_database: str) -> Iterator[Callable[..., LiveServer]]:
    """Start servers over the test's database; every one still running is stopped after."""
    started: list[LiveServer] = []

    def start(**settings: Any) -> LiveServer:
        server = LiveServer(own_database, **{**FAST, **settings}).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_push_created_goes_through_the_outbox_with_one_event_id(
    make_device: Device,
    enroll: Callable[[Any, str], str],
    authsignal: AuthsignalClient,
    configure: Any,
    server: LiveServer,
) -> None:
    """End to end: track's push challenge enqueues push.created; the receiver refuses twice,
    then accepts; every try carries the same event id, in the body and in the header."""
    receiver = Receiver(lambda _id, tries: 200 if tries > 2 else 500 + tries)
    try:
        settings = configure(webhook_url=receiver.url)
        enroll(make_device(), "olga")
        tracked = authsignal.track("olga", "payment", {})
        eventually(lambda: len(receiver.requests) >= 3)
        requests = list(receiver.requests)
        assert [headers[ATTEMPT] for headers, _ in requests] == ["1", "2", "3"]
        event_ids = {headers[EVENT_ID] for headers, _ in requests}
        assert len(event_ids) == 1
        (event_id,) = event_ids
        for headers, body in requests:
            event = construct_event(settings.webhook_secret, body, headers["x-signature-v2"])
            assert event["id"] == event_id
            assert event["type"] == "push.created"
            assert event["data"]["challengeId"] == tracked["challenge_id"]
        eventually(lambda: row(server, event_id).delivered_at is not None)
        delivered = row(server, event_id)
        assert delivered.attempts == 3
        assert delivered.last_error is None
        time.sleep(0.3)
        assert len(receiver.requests) == 3  # nothing after the 2xx
    finally:
        receiver.close()


def test_a_message_enqueued_while_the_receiver_is_down_is_delivered_after_a_restart(
    servers: Callable[..., LiveServer],
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks"
    first = servers(outbox_retry_base_seconds=0.3, outbox_retry_max_seconds=0.3)
    tenant, secret = with_webhook(first, url)
    event_id = enqueue(first, tenant, url)
    # Nobody listens: the first server tries, fails and keeps the message for later.
    eventually(lambda: row(first, event_id).attempts >= 1)
    eventually(lambda: (row(first, event_id).last_error or "").startswith("unreachable"))
    first.stop()
    assert row_after_stop(first, event_id).delivered_at is None

    receiver = Receiver(lambda _id, _tries: 204, port=port)
    try:
        second = servers()
        eventually(lambda: row(second, event_id).delivered_at is not None)
        assert receiver.ids() == Counter({event_id: 1})
        headers, body = receiver.requests[0]
        assert construct_event(secret, body, headers["x-signature-v2"])["id"] == event_id
        assert int(headers[ATTEMPT]) == row(second, event_id).attempts >= 2
    finally:
        receiver.close()


def row_after_stop(server: LiveServer, event_id: str) -> OutboxRow:
    """A stopped server's loop is gone: read with a fresh engine on this thread's own loop."""

    async def read() -> OutboxRow:
        engine = create_engine(server.database_url)
        try:
            async with Engines(engine).transaction() as db:
                found = await store.get(db, event_id)
        finally:
            await engine.dispose()
        assert found is not None
        return found

    return asyncio.run(read())


def test_a_lease_holds_off_other_processes_until_it_runs_out(
    servers: Callable[..., LiveServer],
) -> None:
    """A process claims a message and dies before sending it: while its lease holds nobody
    sends it; once the lease has run out another process does, with the same event id."""
    receiver = Receiver(lambda _id, _tries: 200)
    try:
        server = servers()
        tenant, _ = with_webhook(server, receiver.url)

        async def enqueue_claim_and_die(db: Db) -> tuple[str, list[str]]:
            # In one transaction, so the server's own poll cannot take it first.
            event_id: str = await webhook_event(db, tenant, receiver.url, None)
            now = utcnow()
            claimed = await store.claim(
                db, owner="dead", now=now, lease_until=now + timedelta(seconds=3), limit=10
            )
            return event_id, [message.id for message in claimed]

        event_id, claimed = server.run(enqueue_claim_and_die)
        assert claimed == [event_id]
        time.sleep(1.5)
        assert receiver.ids() == Counter()  # the lease holds (3 s)
        eventually(lambda: row(server, event_id).delivered_at is not None)
        assert receiver.ids() == Counter({event_id: 1})
        assert receiver.requests[0][0][ATTEMPT] == "2"  # the dead process's try counts
    finally:
        receiver.close()


def test_two_processes_send_each_try_of_each_message_once(
    servers: Callable[..., LiveServer],
) -> None:
    """Two servers deliver from one outbox at once; the receiver refuses each event's first
    try. Each event arrives exactly twice (one refused try, one accepted), never more."""
    receiver = Receiver(lambda _id, tries: 200 if tries > 1 else 503, pause=0.01)
    try:
        one, two = servers(), servers()
        tenant, _ = with_webhook(one, receiver.url)
        event_ids = [enqueue(random.choice((one, two)), tenant, receiver.url) for _ in range(40)]

        def all_delivered() -> bool:
            return all(row(one, event_id).delivered_at is not None for event_id in event_ids)

        eventually(all_delivered, timeout=60)
        assert receiver.ids() == Counter({event_id: 2 for event_id in event_ids})
        for event_id in event_ids:
            assert row(one, event_id).attempts == 2
            tries = [h[ATTEMPT] for h, _ in receiver.requests if h[EVENT_ID] == event_id]
            assert tries == ["1", "2"]
    finally:
        receiver.close()


def test_a_message_is_given_up_after_the_last_try(servers: Callable[..., LiveServer]) -> None:
    receiver = Receiver(lambda _id, _tries: 500)
    try:
        server = servers(outbox_max_attempts=3)
        tenant, _ = with_webhook(server, receiver.url)
        event_id = enqueue(server, tenant, receiver.url)
        eventually(lambda: row(server, event_id).failed_at is not None)
        failed = row(server, event_id)
        assert failed.attempts == 3
        assert failed.delivered_at is None
        assert failed.last_error == "answered HTTP 500"
        time.sleep(0.5)
        assert receiver.ids() == Counter({event_id: 3})

        async def events(db: Db) -> list[Any]:
            page = await audit.list_events(db, tenant_id=tenant.id, action_prefix=service.FAILED)
            return list(page.events)

        (recorded,) = server.run(events)
        assert recorded.target_id == event_id
        assert recorded.details == {"kind": "webhook", "attempts": 3, "error": "answered HTTP 500"}
    finally:
        receiver.close()


def test_pruning_takes_finished_messages_and_runs_once_per_interval(
    servers: Callable[..., LiveServer],
) -> None:
    receiver = Receiver(lambda _id, _tries: 200)
    try:
        server = servers()
        tenant, _ = with_webhook(server, receiver.url)
        delivered = enqueue(server, tenant, receiver.url)
        eventually(lambda: row(server, delivered).delivered_at is not None)
        # Nobody listens here, and it is not due for a while: still to send.

        async def not_due(db: Db) -> str:
            # In one transaction, so the server's own poll cannot take it first.
            url = f"http://127.0.0.1:{free_port()}/"
            pending: str = await webhook_event(db, tenant, url, None)
            claimed = await store.claim(
                db, owner="test", now=utcnow(), lease_until=utcnow(), limit=10
            )
            assert [message.id for message in claimed] == [pending]
            await store.reschedule(
                db,
                pending,
                owner="test",
                next_attempt_at=utcnow() + timedelta(days=30),
                error="test",
            )
            return pending

        pending = server.run(not_due)
        engines = server.app.state.engines
        later = utcnow() + timedelta(days=8)
        counts = on_loop(server, prune(engines, action_retention_days=0, now=later))
        assert counts["outboxMessages"] == 1
        assert row(server, pending).delivered_at is None  # kept, however old

        async def gone(db: Db) -> bool:
            return await store.get(db, delivered) is None

        assert server.run(gone)

        # Two processes' pruners: one pass per interval between them.
        settings = Settings(database_url=server.database_url, prune_interval_seconds=60)
        first = Pruner(engines, settings, owner="first")
        second = Pruner(engines, settings, owner="second")
        assert on_loop(server, first.run_once()) is not None
        assert on_loop(server, second.run_once()) is None
        assert on_loop(server, first.run_once()) is None
    finally:
        receiver.close()


def test_retries_back_off_exponentially_with_jitter() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (9, 100.0), (40, 100.0)]:
        delays = [
            service.retry_delay(attempts, base=2.0, maximum=100.0, rng=rng) for _ in range(200)
        ]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not one fixed value


async def _in_database(database_url: str, work: Callable[[Db], Coroutine[Any, Any, T]]) -> T:
    """`work` in one transaction on an engine of the test's own (no server in this process)."""
    engine = create_engine(database_url)
    try:
        async with Engines(engine).transaction() as db:
            return await work(db)
    finally:
        await engine.dispose()


def test_a_killed_process_leaves_its_message_to_another(
    own_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real `passgate serve` processes: the first is killed (SIGKILL) while its try hangs at
    the receiver, holding the message's lease; a second process sends the message once the
    lease has run out: the same event id, the next try's number, delivered once accepted."""
    from tests.server.test_crash import ServerProcess

    for name, value in {
        "PASSGATE_OUTBOX_POLL_SECONDS": "0.2",
        "PASSGATE_OUTBOX_LEASE_SECONDS": "2",
        "PASSGATE_OUTBOX_RETRY_BASE_SECONDS": "0.05",
        "PASSGATE_PRUNE_INTERVAL_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    hang = threading.Event()
    arrived: list[float] = []

    def answer(_event_id: str, tries: int) -> int:
        arrived.append(time.monotonic())
        if tries == 1:
            hang.wait(30)  # the first try never gets its answer before the kill
        return 200

    receiver = Receiver(answer)
    processes: list[ServerProcess] = []
    try:
        for name in ("first", "second"):
            (tmp_path / name).mkdir()
            processes.append(ServerProcess(own_database, tmp_path / name))
        first, second = processes
        first.start()

        async def setup(db: Db) -> str:
            tenant, _ = await tenants.create_tenant(db, name="outbox", rp_id="localhost")
            await push_settings.configure(db, tenant.id, webhook_url=receiver.url)
            event_id: str = await webhook_event(
                db, Tenant(tenant.id, "", "localhost"), receiver.url, None
            )
            return event_id

        event_id = asyncio.run(_in_database(own_database, setup))
        eventually(lambda: len(arrived) == 1)
        first.kill()
        second.start()

        async def read(db: Db) -> OutboxRow | None:
            return await store.get(db, event_id)

        def delivered() -> bool:
            found = asyncio.run(_in_database(own_database, read))
            return found is not None and found.delivered_at is not None

        eventually(delivered, timeout=30)
        assert receiver.ids() == Counter({event_id: 2})
        assert [headers[ATTEMPT] for headers, _ in receiver.requests] == ["1", "2"]
        assert arrived[1] - arrived[0] > 1.0  # not before the 2 s lease had run out
        found = asyncio.run(_in_database(own_database, read))
        assert found is not None and found.attempts == 2
    finally:
        hang.set()
        for process in processes:
            process.close()
        receiver.close()
