"""The audit log gets the API's events (authenticators added and removed, by the user's app or
the tenant's backend; keys rotated; tenant settings changed) and is readable through the
Server API (`GET /v1/audit-events`, the tenant's own events) and `passgate audit list`.

Every change here is made as it is in production (real requests to a real server, real
`passgate` processes), and every event is read back through both read paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.authenticators import SoftwareAuthenticator
from passgate.sdk._push_protocol import removal_message, sign
from passgate.server.services import audit, tenant_admin
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant
from tests.raw_database import fresh_database_url
from tests.tenant_client import PUSH_PATH, TenantClient, device_public_key, new_device_key

PASSGATE = [sys.executable, "-m", "passgate.cli"]
__all__ = ["fresh_database_url"]


def passgate(server: LiveServer, *args: str) -> str:
    done = subprocess.run(
        [*PASSGATE, *args, "--database-url", server.database_url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},  # a table's cells unwrapped
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def api_events(client: TenantClient, **params: Any) -> dict[str, Any]:
    response = client.server("GET", "/audit-events", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def cli_events(server: LiveServer, tenant_id: str, *args: str) -> dict[str, Any]:
    return dict(json.loads(passgate(server, "audit", "list", tenant_id, "--json", *args)))


def newest(client: TenantClient, action: str) -> dict[str, Any]:
    """The newest event with this action, as the Server API shows it."""
    events = api_events(client, limit=200)["events"]
    found = [event for event in events if event["action"] == action]
    assert found, f"no {action} in {[event['action'] for event in events]}"
    return dict(found[0])


def remove_device(client: TenantClient, key: ec.EllipticCurvePrivateKey) -> None:
    body = {"publicKey": device_public_key(key), "signature": sign(key, removal_message())}
    removed = client.client("POST", f"{PUSH_PATH}/remove", json=body)
    assert removed.status_code == 200, removed.text


def test_authenticators_added_and_removed_through_the_apis(
    server: LiveServer, tenant: Tenant, tmp_path: Path
) -> None:
    with TenantClient(server.api_url, tenant) as client:
        passkey = client.register_passkey(SoftwareAuthenticator(tmp_path / "pat.bin"), "pat")
        event = newest(client, "user.passkey.added")
        assert event["actorType"] == "user" and event["actorId"] == "pat"
        assert event["targetType"] == "user" and event["targetId"] == "pat"
        assert event["details"] == {
            "authenticatorId": passkey.authenticator_id,
            "verificationMethod": "PASSKEY",
        }

        key = new_device_key()
        device = client.add_device(key, "dev")
        event = newest(client, "user.authenticator.added")
        assert (event["actorType"], event["actorId"], event["targetId"]) == ("user", "dev", "dev")
        assert event["details"] == {
            "authenticatorId": device.authenticator_id,
            "verificationMethod": "PUSH",
        }
        remove_device(client, key)
        event = newest(client, "user.authenticator.deleted")
        assert (event["actorType"], event["actorId"]) == ("user", "dev")
        assert event["details"]["authenticatorId"] == device.authenticator_id

        # The backend: an email authenticator it verified itself, then removed; a passkey
        # removed; a user deleted.
        enrolled = client.server(
            "POST",
            "/users/bea/authenticators",
            json={"verificationMethod": "EMAIL_OTP", "email": "bea@example.com"},
        )
        assert enrolled.status_code == 200, enrolled.text
        email_id = enrolled.json()["authenticator"]["userAuthenticatorId"]
        event = newest(client, "user.authenticator.added")
        assert event["actorType"] == "api" and "actorId" not in event
        assert event["details"] == {"authenticatorId": email_id, "verificationMethod": "EMAIL_OTP"}
        deleted = client.server("DELETE", f"/users/bea/authenticators/{email_id}")
        assert deleted.status_code == 200, deleted.text
        event = newest(client, "user.authenticator.deleted")
        assert event["actorType"] == "api"
        assert event["details"] == {"authenticatorId": email_id, "verificationMethod": "EMAIL_OTP"}
        gone = client.server("DELETE", f"/users/pat/authenticators/{passkey.authenticator_id}")
        assert gone.status_code == 200, gone.text
        assert newest(client, "user.passkey.deleted")["details"] == {
            "authenticatorId": passkey.authenticator_id,
            "verificationMethod": "PASSKEY",
        }
        # A refused removal records nothing.
        refused = client.server("DELETE", f"/users/pat/authenticators/{passkey.authenticator_id}")
        assert refused.status_code == 404
        assert client.server("DELETE", "/users/bea").status_code == 200
        assert newest(client, "user.deleted")["targetId"] == "bea"

        actions = [event["action"] for event in api_events(client, limit=200)["events"]]
        assert actions.count("user.passkey.deleted") == 1
        assert actions.count("user.deleted") == 1
        # The same events, in the same order, through the command.
        assert (
            cli_events(server, tenant.id, "--limit", "200")["events"]
            == (api_events(client, limit=200)["events"])
        )


def test_keys_rotated_and_settings_changed(server: LiveServer, tenant: Tenant) -> None:
    passgate(server, "keys", "rotate-signing", tenant.id)
    passgate(server, "tenant", "origins", tenant.id, "--add", "http://localhost:5173")
    passgate(server, "tenant", "set-action", tenant.id, "pay", "--outcome", "REVIEW_REQUIRED")
    passgate(server, "tenant", "update", tenant.id, "--webhook-url", "https://hooks.example/p")
    passgate(server, "tenant", "update", tenant.id, "--rotate-webhook-secret")

    async def rotate_secret(db: Db) -> str:
        actor = audit.Actor(type="admin", id="ops@example.com", source="127.0.0.1")
        return await tenant_admin.rotate_secret_key(db, actor, tenant.id, timedelta(hours=1))

    server.run(rotate_secret)  # the console's rotation (tests/console covers its form)
    with TenantClient(server.api_url, tenant) as client:
        page = api_events(client)
    by_action = {event["action"]: event for event in page["events"]}
    assert list(by_action) == [
        "tenant.secret_key.rotated",
        "tenant.webhook_secret.rotated",
        "tenant.push.changed",
        "tenant.action_outcome.changed",
        "tenant.updated",
        "tenant.signing_key.rotated",
    ]
    assert by_action["tenant.secret_key.rotated"]["details"] == {"graceSeconds": 3600}
    assert by_action["tenant.webhook_secret.rotated"]["details"] == {"graceSeconds": 0}
    assert by_action["tenant.updated"]["details"]["origins"]["to"][-1] == "http://localhost:5173"
    assert by_action["tenant.action_outcome.changed"]["details"] == {
        "pay": {"from": None, "to": "REVIEW_REQUIRED"}
    }
    for action in list(by_action)[1:]:
        assert by_action[action]["actorType"] == "admin"
        assert by_action[action]["source"] == "cli"
    # No secret in any event.
    shown = json.dumps(page)
    assert "pg_whsec_" not in shown and "pg_sk_" not in shown and "PRIVATE KEY" not in shown


def test_master_key_rotation_is_in_the_operators_log(
    fresh_database_url: str, tmp_path: Path
) -> None:
    """A master key rotation concerns every tenant and belongs to none: `passgate audit list`
    without a tenant shows it; a tenant's Server API feed does not. On a database and data
    directory of its own (rotating the session's key would change it under every test)."""
    env = {
        **os.environ,
        "PASSGATE_DATABASE_URL": fresh_database_url,
        "PASSGATE_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "250",
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [*PASSGATE, *args], capture_output=True, text=True, timeout=60, env=env
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = json.loads(run("tenant", "create", "--name", "t", "--rp-id", "localhost", "--json"))
    before = json.loads(run("keys", "status", "--json"))["keyId"]
    run("keys", "rotate-master")
    after = json.loads(run("keys", "status", "--json"))["keyId"]
    events = json.loads(run("audit", "list", "--json"))["events"]
    assert [event["action"] for event in events] == ["master_key.rotated", "tenant.created"]
    assert events[0]["details"]["from"] == before and events[0]["details"]["to"] == after
    assert events[0]["actorType"] == "admin" and events[0]["source"] == "cli"
    own = json.loads(run("audit", "list", created["tenantId"], "--json"))["events"]
    assert [event["action"] for event in own] == ["tenant.created"]


def test_pages_and_refusals(server: LiveServer, tenant: Tenant, other_tenant: Tenant) -> None:
    with TenantClient(server.api_url, tenant) as client:
        for n in range(5):
            client.server(
                "POST",
                f"/users/u{n}/authenticators",
                json={"verificationMethod": "SMS", "phoneNumber": f"+1555000000{n}"},
            )
        everything = api_events(client, limit=200)["events"]
        assert len(everything) == 5
        first = api_events(client, limit=2)
        second = api_events(client, limit=2, before=first["nextCursor"])
        third = api_events(client, limit=2, before=second["nextCursor"])
        assert "nextCursor" not in third
        assert first["events"] + second["events"] + third["events"] == everything
        via_cli = cli_events(server, tenant.id, "--limit", "2", "--before", first["nextCursor"])
        assert via_cli == second

        for params in (
            {"before": "not a cursor"},
            {"before": "0001-01-01T00:00:00+14:00|" + everything[0]["id"]},
            {"before": everything[0]["occurredAt"] + "|\x00"},
            {"limit": 0},
            {"limit": audit.MAX_PAGE + 1},
        ):
            refused = client.server("GET", "/audit-events", params=params)
            assert refused.status_code == 400, (params, refused.text)
            assert set(refused.json()) >= {"error", "errorDescription"}

    # Another tenant sees none of these, and a wrong key sees nothing at all.
    with TenantClient(server.api_url, other_tenant) as other:
        assert api_events(other)["events"] == []
    anonymous = httpx.get(f"{server.api_url}/audit-events", auth=("pg_sk_wrong", ""))
    assert anonymous.status_code == 401


def test_the_command_prints_a_table(server: LiveServer, tenant: Tenant) -> None:
    passgate(server, "tenant", "set-action", tenant.id, "signIn", "--outcome", "ALLOW")
    shown = passgate(server, "audit", "list", tenant.id)
    assert "tenant.action_outcome.changed" in shown and "admin" in shown
    done = subprocess.run(
        [*PASSGATE, "audit", "list", "--before", "nope", "--database-url", server.database_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "not a cursor" in done.stderr
    assert "Traceback" not in done.stderr
