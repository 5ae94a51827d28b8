"""Races: concurrent requests never both win, and never 500."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.live_server import LiveServer, Tenant


def test_a_result_validates_once_under_concurrency(
    server: LiveServer, tenant: Tenant, http: httpx.Client
) -> None:
    tracked = http.post("/users/racer/actions/signIn", json={}).json()
    http.patch(
        f"/users/racer/actions/signIn/{tracked['idempotencyKey']}",
        json={"state": "CHALLENGE_SUCCEEDED"},
    )

    def validate(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.api_url, auth=(tenant.secret_key, "")) as client:
            return client.post("/validate", json={"token": tracked["token"]}, timeout=30)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(validate, range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert sum(r.json()["isValid"] for r in responses) == 1


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
