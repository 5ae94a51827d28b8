"""Rotating a tenant's token signing key (`passgate keys rotate-signing`): new tokens carry the
new `kid` at once, on every server process sharing the database; tokens the old key signed stay
valid, and its public key stays in the JWKS, until its retire time; after that both are gone.

Two real server processes share each database: the test's own (in-process) and a forked
`passgate serve`; the rotation is the `passgate` command, a third process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from passgate.server.services import tenant_admin, tenants, tokens
from passgate.server.services.audit import Actor
from passgate.server.services.enums import ActionOutcome
from passgate.server.store import tenants as tenant_store
from passgate.server.store.db import Db
from tests.console.helpers import Console, audit_events, enrolled_console
from tests.live_server import LiveServer, Tenant
from tests.server.test_crash import ServerProcess
from tests.tenant_client import TenantClient

PASSGATE = [sys.executable, "-m", "passgate.cli"]


@pytest.fixture
def other_process(server: LiveServer, tmp_path: Path) -> Iterator[ServerProcess]:
    """`passgate serve` in a process of its own, on the session's database."""
    process = ServerProcess(server.database_url, tmp_path)
    try:
        process.start()
        yield process
    finally:
        process.close()


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def jwks_kids(client: TenantClient) -> list[str]:
    response = client.client("GET", f"/public/{client.tenant.id}/.well-known/jwks")
    assert response.status_code == 200, response.text
    keys = response.json()["keys"]
    assert all(set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"} for key in keys)
    return [key["kid"] for key in keys]


def valid(client: TenantClient, token: str) -> bool:
    """Redeems the token (an ALLOW action's): True when /v1/validate accepts it."""
    response = client.validate(token)
    if response.status_code == 200:
        assert response.json()["isValid"] is True, response.text
        return True
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == "invalid_token", response.text
    return False


def client_accepts(client: TenantClient, token: str) -> bool:
    """Whether the Client API takes the token as a Bearer token (without redeeming it)."""
    response = client.client("GET", "/user-authenticators", token=token)
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def rotate_with_cli(database_url: str, tenant_id: str) -> dict[str, Any]:
    done = subprocess.run(
        [*PASSGATE, "keys", "rotate-signing", tenant_id, "--database-url", database_url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def allow_sign_in(server: LiveServer, tenant_id: str) -> None:
    async def work(db: Db) -> None:
        await tenants.set_action_outcome(db, tenant_id, "signIn", ActionOutcome.ALLOW)

    server.run(work)


def retire_time_passes(server: LiveServer, tenant_id: str) -> None:
    """What the passing of time does: every retired key's time is now behind us."""

    async def work(db: Db) -> None:
        tenant = await tenants.get_tenant(db, tenant_id)
        past = int(time.time()) - 1
        retired = [{**key, "retireAfter": past} for key in tenant.retired_signing_keys or ()]
        await tenant_store.update_tenant(db, tenant_id, {"retired_signing_keys": retired})

    server.run(work)


def test_rotation_through_the_cli_is_seen_by_both_processes(
    server: LiveServer, other_process: ServerProcess, tenant: Tenant
) -> None:
    allow_sign_in(server, tenant.id)
    with (
        TenantClient(server.api_url, tenant) as a,
        TenantClient(other_process.api_url, tenant) as b,
    ):
        old = [a.token(f"old-{n}") for n in range(4)] + [b.token("old-b")]
        old_kid = kid(old[0])
        assert {kid(token) for token in old} == {old_kid}
        # Both processes hold the tenant as it is before the rotation.
        assert valid(a, old[0]) and valid(b, old[1])
        assert jwks_kids(a) == jwks_kids(b) == [old_kid]

        rotated = rotate_with_cli(server.database_url, tenant.id)
        new_kid = rotated["keyId"]
        assert new_kid != old_kid
        assert [key["keyId"] for key in rotated["retiredKeys"]] == [old_kid]

        # A token the new key signed, redeemed by the other process before it read the tenant.
        from_a = a.token("new-a")
        assert kid(from_a) == new_kid
        assert valid(b, from_a)
        from_b = b.token("new-b")
        assert kid(from_b) == new_kid
        assert client_accepts(a, from_b) and valid(a, from_b)
        assert jwks_kids(a) == jwks_kids(b) == [new_kid, old_kid]

        # The old key's tokens stay valid everywhere until its time.
        assert client_accepts(a, old[2]) and client_accepts(b, old[3])
        assert valid(b, old[2]) and valid(a, old[4])

        retire_time_passes(server, tenant.id)
        assert jwks_kids(a) == jwks_kids(b) == [new_kid]
        # old[3] has not expired (its exp is minutes away): only the retired key refuses it.
        assert jwt.decode(old[3], options={"verify_signature": False})["exp"] > time.time() + 60
        assert not client_accepts(a, old[3]) and not client_accepts(b, old[3])
        assert not valid(a, old[3]) and not valid(b, old[3])
        newest = b.token("after")
        assert kid(newest) == new_kid and valid(a, newest)


def test_retire_time_follows_the_token_lifetime(server: LiveServer, tenant: Tenant) -> None:
    server.update_tenant(tenant.id, token_lifetime_seconds=60)

    async def rotate(db: Db) -> tenants.TenantRow:
        return await tenant_admin.rotate_signing_key(db, Actor(type="admin", id="t"), tenant.id)

    before = int(time.time())
    first = server.run(rotate)
    (retired,) = tokens.retired_keys(first)
    # Every token the old key signed expires within the lifetime; a minute's margin on top.
    assert before + 60 + tokens.RETIRE_MARGIN <= retired.retire_after
    assert retired.retire_after <= int(time.time()) + 60 + tokens.RETIRE_MARGIN

    # A second rotation keeps the first one's retired key and retires the one in between.
    second = server.run(rotate)
    assert [key.key_id for key in tokens.retired_keys(second)] == [
        first.signing_key_id,
        retired.key_id,
    ]
    details = [event.details for event in audit_events(server, tenant_id=tenant.id)]
    assert details[0] == {
        "from": first.signing_key_id,
        "to": second.signing_key_id,
        "oldKeyRetireAfter": tokens.retired_keys(second)[0].retire_after,
    }


def test_a_token_past_its_expiry_is_refused_after_a_rotation(
    server: LiveServer, tenant: Tenant
) -> None:
    """A retired key does not make its expired tokens valid again."""
    expired = server.expired_token(tenant.id, "late")
    rotate_with_cli(server.database_url, tenant.id)
    with TenantClient(server.api_url, tenant) as client:
        refused = client.validate(expired)
        assert refused.status_code in (400, 401)
        assert refused.json()["error"] == "expired_token"


def test_the_console_rotates_the_signing_key(
    server: LiveServer, tenant: Tenant, tmp_path: Path
) -> None:
    console: Console = enrolled_console(server, tmp_path, "keys@example.com")
    path = f"/admin/tenants/{tenant.id}/keys"
    with TenantClient(server.api_url, tenant) as client:
        old_kid = jwks_kids(client)[0]
        page = console.post(path + "/signing")
        assert page.status_code == 200, page.text
        new_kid = jwks_kids(client)[0]
        assert new_kid != old_kid and jwks_kids(client) == [new_kid, old_kid]
    assert f'<code id="signing-kid">{new_kid}</code>' in page.text
    assert f"Replaced key <code>{old_kid}</code>" in page.text
    (event,) = audit_events(server, tenant_id=tenant.id, action_prefix="tenant.signing_key.")
    assert event.actor_id == "keys@example.com" and event.details is not None
    assert event.details["from"] == old_kid and event.details["to"] == new_kid


def test_an_unknown_tenant_is_one_line(server: LiveServer) -> None:
    done = subprocess.run(
        [*PASSGATE, "keys", "rotate-signing", "nope", "--database-url", server.database_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "no tenant with id 'nope'" in done.stderr and "Traceback" not in done.stderr
