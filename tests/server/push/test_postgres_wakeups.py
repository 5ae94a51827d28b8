"""Two servers (each its own app, hub, engines and event loop, as two worker processes have)
on one PostgreSQL database: a challenge created through one wakes a long-poll waiting in the
other, and a device's answer given through one wakes the requesting page waiting in the other
(W2 with `wait`), through PostgreSQL's LISTEN/NOTIFY, without Redis and with a Redis that is
down; the
database recheck is set to 30 s, so an answer within a second can only come from the
notification."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore
from passgate.server.services.push.wakeups import APPLICATION_NAME, PUBLISH_SECONDS
from tests.live_server import LiveServer
from tests.tenant_client import TenantClient, new_device_key

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["no redis", "redis down"])
def workers(database_url: str, request: pytest.FixtureRequest) -> Iterator[list[LiveServer]]:
    settings: dict[str, Any] = {"push_recheck_seconds": 30}
    if request.param == "redis down":
        settings["redis_url"] = f"redis://127.0.0.1:{closed_port()}/0"
    servers = [LiveServer(database_url, **settings).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def long_poll_woken_by_other_worker(
    first: LiveServer, second: LiveServer, key_file: Path, user_id: str
) -> float:
    """Seconds from a track through `second` to the answer of a long-poll on `first`."""
    tenant = first.create_tenant()
    backend = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=second.api_url)
    device = AuthsignalSync(tenant.id, first.api_url, device_keys=DeviceKeyStore(key_file))
    try:
        token = backend.track(user_id, "enroll", {"scope": "add:authenticators"})["token"]
        assert device.push.add_credential(token).ok
        seen: list[Any] = []
        waiter = threading.Thread(target=lambda: seen.append(device.push.get_challenge(wait=25)))
        waiter.start()
        time.sleep(0.5)  # the long-poll is waiting in the first server
        started = time.monotonic()
        tracked = backend.track(user_id, "signIn")
        waiter.join(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        device.close()
        backend.session.close()
    assert seen and seen[0].data is not None
    assert seen[0].data.challenge_id == tracked["challenge_id"]
    return elapsed


def test_a_track_on_one_worker_wakes_a_long_poll_in_the_other(
    workers: list[LiveServer], tmp_path: Path
) -> None:
    first, second = workers
    assert long_poll_woken_by_other_worker(first, second, tmp_path / "k", "zoe") < 1


def test_the_listener_comes_back_after_its_connection_is_killed(
    workers: list[LiveServer], database_url: str, tmp_path: Path
) -> None:
    """PostgreSQL ends every listening connection (a restart, a failover, an idle timeout):
    each server connects again and is woken as before."""

    async def terminate_listeners() -> int:
        connection = await asyncpg.connect(database_url)
        try:
            listeners = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = $1",
                APPLICATION_NAME,
            )
            for row in listeners:
                await connection.execute("SELECT pg_terminate_backend($1)", row["pid"])
            return len(listeners)
        finally:
            await connection.close()

    assert asyncio.run(terminate_listeners()) >= 2
    time.sleep(2.5)  # RETRY_SECONDS, and a margin for a busy machine
    first, second = workers
    assert long_poll_woken_by_other_worker(second, first, tmp_path / "k", "yan") < 1


def test_a_waiting_page_on_one_worker_hears_an_answer_given_through_the_other(
    workers: list[LiveServer],
) -> None:
    """W2 with `wait`: the requesting page waits in the first server; the device answers
    through the second; the page has its answer (and the token for /validate) at once."""
    first, second = workers
    tenant = first.create_tenant()
    key = new_device_key()
    with TenantClient(first.api_url, tenant) as page, TenantClient(second.api_url, tenant) as app:
        app.add_device(key, "wes")
        tracked = page.track("wes", "signIn").json()
        answers: list[httpx.Response] = []

        def wait() -> None:
            answers.append(page.wait_for_verdict(tracked))

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)  # the page is waiting in the first server
        started = time.monotonic()
        answered = app.answer(key, tracked["challengeId"], code=tracked["verificationCode"])
        waiter.join(timeout=40)
        elapsed = time.monotonic() - started
        assert answered.json() == {"isVerified": True}
        assert answers[0].status_code == 200, answers[0].text
        body = answers[0].json()
        assert (body["isVerified"], body["isConsumed"]) == (True, True)
        assert page.validate(body["accessToken"]).json()["isValid"] is True
    assert elapsed < 1


def test_a_waiting_page_hears_nothing_until_its_wait_runs_out(workers: list[LiveServer]) -> None:
    first, _ = workers
    tenant = first.create_tenant()
    with TenantClient(first.api_url, tenant) as page:
        page.add_device(new_device_key(), "xia")
        tracked = page.track("xia", "signIn").json()
        started = time.monotonic()
        pending = page.client(
            "POST",
            "/verify/push",
            token=tracked["token"],
            params={"wait": 1},
            json={"challengeId": tracked["challengeId"]},
        )
    assert 1 <= time.monotonic() - started < 5
    assert pending.json() == {"isVerified": False, "isConsumed": False}


def test_a_redis_that_stopped_answering_hands_wake_ups_to_postgresql(
    database_url: str, tmp_path: Path
) -> None:
    """A Redis that accepts connections and never answers (hung, or its packets dropped):
    the first wake-up waits for its publish at most PUBLISH_SECONDS, then goes through
    PostgreSQL; the next ones go there at once."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel completes connections; nobody reads them
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        servers = [
            LiveServer(database_url, push_recheck_seconds=30, redis_url=url).start()
            for _ in range(2)
        ]
        try:
            first, second = servers
            slowest = PUBLISH_SECONDS + 0.5
            assert long_poll_woken_by_other_worker(first, second, tmp_path / "1", "ann") < slowest
            assert long_poll_woken_by_other_worker(first, second, tmp_path / "2", "ben") < 1
        finally:
            for server in servers:
                server.stop()
