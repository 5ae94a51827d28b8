"""Two servers on one database, as two processes of one deployment: a secret key rotated
through one fails at once through the other, and an action outcome changed through one
applies at once through the other (no per-process cache delays either)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from passgate.server.services import tenants
from passgate.server.services.enums import ActionOutcome
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant


@pytest.fixture
def other_process(database_url: str, server: LiveServer) -> Iterator[LiveServer]:
    """A second server on the fixture server's database."""
    live = LiveServer(database_url).start()
    yield live
    live.stop()


def track(server: LiveServer, secret_key: str, user_id: str, action: str) -> httpx.Response:
    return httpx.post(
        f"{server.api_url}/users/{user_id}/actions/{action}",
        json={},
        auth=(secret_key, ""),
        timeout=10,
    )


def validate(server: LiveServer, secret_key: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.api_url}/validate", json={"token": token}, auth=(secret_key, ""), timeout=10
    )


def test_a_rotated_key_fails_at_once_in_every_process(
    server: LiveServer, other_process: LiveServer, tenant: Tenant
) -> None:
    # The other process has seen the key work (and remembers the tenant).
    tracked = track(other_process, tenant.secret_key, "rita", "signIn")
    assert tracked.status_code == 200, tracked.text
    token = tracked.json()["token"]
    assert validate(other_process, tenant.secret_key, token).status_code == 200

    async def rotate(db: Db) -> str:
        return await tenants.rotate_secret_key(db, tenant.id)

    new_key = server.run(rotate)

    assert track(other_process, tenant.secret_key, "rita", "signIn").status_code == 401
    assert validate(other_process, tenant.secret_key, token).status_code == 401
    old_get = httpx.get(
        f"{other_process.api_url}/users/rita", auth=(tenant.secret_key, ""), timeout=10
    )
    assert old_get.status_code == 401
    assert track(other_process, new_key, "rita", "signIn").status_code == 200
    assert validate(other_process, new_key, token).status_code == 200


def test_a_changed_action_outcome_applies_at_once_in_every_process(
    server: LiveServer, other_process: LiveServer, tenant: Tenant
) -> None:
    before = track(other_process, tenant.secret_key, "omar", "viewBalance")
    assert before.json()["state"] == "CHALLENGE_REQUIRED"

    async def allow(db: Db) -> None:
        await tenants.set_action_outcome(db, tenant.id, "viewBalance", ActionOutcome.ALLOW)

    server.run(allow)

    after = track(other_process, tenant.secret_key, "omar", "viewBalance")
    assert after.status_code == 200, after.text
    assert after.json()["state"] == "ALLOW"


def test_a_user_deleted_through_one_process_is_tracked_anew_through_the_other(
    server: LiveServer, other_process: LiveServer, tenant: Tenant
) -> None:
    """The other process remembers the user (it tracked them) and tries the action's insert
    alone; the statement finds the user gone, and track makes them again."""
    assert track(other_process, tenant.secret_key, "uma", "signIn").status_code == 200
    deleted = httpx.delete(f"{server.api_url}/users/uma", auth=(tenant.secret_key, ""), timeout=10)
    assert deleted.status_code == 200, deleted.text
    again = track(other_process, tenant.secret_key, "uma", "signIn")
    assert again.status_code == 200, again.text
    user = httpx.get(f"{server.api_url}/users/uma", auth=(tenant.secret_key, ""), timeout=10)
    assert user.status_code == 200, user.text


def test_a_retried_track_of_a_known_user_returns_the_same_action(
    server: LiveServer, tenant: Tenant
) -> None:
    assert track(server, tenant.secret_key, "vic", "signIn").status_code == 200
    body = {"idempotencyKey": "retry-1", "email": None}
    first = httpx.post(
        f"{server.api_url}/users/vic/actions/signIn", json=body, auth=(tenant.secret_key, "")
    )
    second = httpx.post(
        f"{server.api_url}/users/vic/actions/signIn", json=body, auth=(tenant.secret_key, "")
    )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["idempotencyKey"] == second.json()["idempotencyKey"] == "retry-1"
    assert first.json()["state"] == second.json()["state"]
    # A known user's attributes still reach the user (that track takes the upsert's way).
    named = httpx.post(
        f"{server.api_url}/users/vic/actions/signIn",
        json={"email": "vic@example.com"},
        auth=(tenant.secret_key, ""),
    )
    assert named.status_code == 200, named.text
    user = httpx.get(f"{server.api_url}/users/vic", auth=(tenant.secret_key, ""))
    assert user.json()["email"] == "vic@example.com"
