"""Races: concurrent requests never both win, and never 500.

Each race sends its requests from as many threads, each with its own keep-alive connection
opened beforehand, released together by a barrier, so they reach the server at once. What
could be computed ahead (signatures, passkey assertions) is, so that the requests race and
the crypto does not.

The races run on a server of their own that lets a request wait for a database connection
longer than production does: a hundred writes at once queue for SQLite's single writer, and
with the default wait (well under Authsignal's 2 s client timeout) the last of them are
answered 503 by design (tests/server/test_overload.py). Here the question is who wins."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services.push.settings import PushSettings
from passgate.server.store.db import Db
from passgate.server.store.push import REFUSED
from passgate.server.store.tables import PushChallenge
from tests.live_server import LiveServer, Tenant
from tests.tenant_client import TenantClient, new_device_key

RACERS = 100
# Generous: a hundred requests at once on two shared cores.
TIMEOUT = 60


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    """This module's server (and so its `tenant` and `http`): connection waits of up to
    TIMEOUT seconds instead of 503s."""
    live = LiveServer(database_url, database_pool_timeout_seconds=TIMEOUT).start()
    assert live.settings.database_pool_timeout_seconds == TIMEOUT
    yield live
    live.stop()


def race(
    server: LiveServer, tenant: Tenant, attempt: Callable[[TenantClient, int], httpx.Response]
) -> list[httpx.Response]:
    """`attempt(client, i)` for i in range(RACERS) at once, each on its own warm connection;
    the responses, none of them a 5xx."""
    clients = [TenantClient(server.api_url, tenant, timeout=TIMEOUT) for _ in range(RACERS)]
    start = threading.Barrier(RACERS, timeout=TIMEOUT)

    def run(i: int) -> httpx.Response:
        assert clients[i].http.get(f"{server.url}/health").status_code == 200
        start.wait()
        return attempt(clients[i], i)

    try:
        with ThreadPoolExecutor(max_workers=RACERS) as pool:
            responses = list(pool.map(run, range(RACERS)))
    finally:
        for client in clients:
            client.close()
    server_errors = [r for r in responses if r.status_code >= 500]
    assert not server_errors, f"{len(server_errors)} 5xx, e.g. {server_errors[0].text}"
    return responses


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def test_one_of_100_answers_to_a_push_challenge_decides(server: LiveServer, tenant: Tenant) -> None:
    """Half approve with the right number, half reject: one answer is taken, and the action
    ends as that answer said."""
    key = new_device_key()
    with TenantClient(server.api_url, tenant) as backend:
        backend.add_device(key, "tapper")
        tracked = backend.track("tapper", "payment").json()
    challenge_id, code = tracked["challengeId"], tracked["verificationCode"]

    def answer(client: TenantClient, i: int) -> httpx.Response:
        return client.answer(key, challenge_id, approved=i % 2 == 0, code=code)

    responses = race(server, tenant, answer)
    [winner] = [r for r in responses if r.status_code == 200]
    assert all(400 <= r.status_code < 500 for r in responses if r is not winner), statuses(
        responses
    )
    approved = winner.json()["isVerified"]
    with TenantClient(server.api_url, tenant) as backend:
        action = backend.server(
            "GET", f"/users/tapper/actions/payment/{tracked['idempotencyKey']}"
        ).json()
        assert action["state"] == ("CHALLENGE_SUCCEEDED" if approved else "CHALLENGE_FAILED")
        assert backend.validate(tracked["token"]).json()["isValid"] is approved


def test_a_result_validates_once_under_concurrency(
    server: LiveServer, tenant: Tenant, http: httpx.Client
) -> None:
    tracked = http.post("/users/racer/actions/signIn", json={}).json()
    http.patch(
        f"/users/racer/actions/signIn/{tracked['idempotencyKey']}",
        json={"state": "CHALLENGE_SUCCEEDED"},
    )
    responses = race(server, tenant, lambda client, _: client.validate(tracked["token"]))
    assert statuses(responses) == {200: RACERS}, [r.text for r in responses if r.status_code != 200]
    assert sum(r.json()["isValid"] for r in responses) == 1


def test_one_of_100_passkey_verifies_of_one_challenge_succeeds(
    server: LiveServer, tenant: Tenant, tmp_path: Path
) -> None:
    """A hundred assertions (a synced passkey: no sign count to refuse the late ones) over one
    challenge: it is used once."""
    passkey = SoftwareAuthenticator(tmp_path / "passkeys.bin", synced=True)
    with TenantClient(server.api_url, tenant) as app:
        app.register_passkey(passkey, "quick")
        options = app.authentication_options().json()
    assertions = [passkey.get(options["options"]) for _ in range(RACERS)]

    def verify(client: TenantClient, i: int) -> httpx.Response:
        return client.verify_passkey(options["challengeId"], assertions[i])

    responses = race(server, tenant, verify)
    counted = statuses(responses)
    assert counted[200] == 1, counted
    assert sum(n for status, n in counted.items() if 400 <= status < 500) == RACERS - 1, counted
    [winner] = [r for r in responses if r.status_code == 200]
    assert winner.json()["userId"] == "quick"


def test_concurrent_tracks_start_exactly_the_push_limit(server: LiveServer, tenant: Tenant) -> None:
    """The push-bombing limit under a burst: of 100 tracks for one user with a push device,
    exactly `rate_limit` start a push challenge; every one is tracked."""
    limit = PushSettings().rate_limit
    with TenantClient(server.api_url, tenant) as backend:
        backend.add_device(new_device_key(), "bombed")

    responses = race(server, tenant, lambda client, _: client.track("bombed", "signIn"))
    assert statuses(responses) == {200: RACERS}, [r.text for r in responses if r.status_code != 200]
    started = [r for r in responses if r.json().get("challengeId")]
    assert len(started) == limit, f"{len(started)} push challenges started, limit {limit}"

    async def stored(db: Db) -> int:
        count = select(func.count()).where(
            PushChallenge.tenant_id == tenant.id, PushChallenge.state != REFUSED
        )
        return int(await db.scalar(count) or 0)

    assert server.run(stored) == limit


def test_concurrent_tracks_with_one_idempotency_key_make_one_action(
    server: LiveServer, tenant: Tenant, http: httpx.Client
) -> None:
    def track(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.api_url, auth=(tenant.secret_key, "")) as client:
            return client.post(
                "/users/twin/actions/payment", json={"idempotencyKey": "order-7"}, timeout=30
            )

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(track, range(10)))
    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    assert {r.json()["idempotencyKey"] for r in responses} == {"order-7"}
    assert len(http.get("/users/twin/actions").json()) == 1
