"""Actions a client recorded without a backend's token (a passkey sign-in under an action code
and idempotency key the client chose) are the client's: a backend's track with that key is
refused with 409 instead of returning them already succeeded (docs/wire.md#server-api-endpoints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.store.db import Db
from passgate.server.store.tables import Action
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony, basic, bearer
from tests.server.test_refusals import assert_error


def client_sign_in(
    ceremony: Ceremony, device: SoftwareAuthenticator, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    """C1 with the client's own `action` and `idempotencyKey`, then C4 and C5 with the passkey."""
    started = ceremony.http.post("/client/challenge", headers=headers, json=body)
    assert started.status_code == 200, started.text
    challenge_id = started.json()["challengeId"]
    options = ceremony.http.post(
        "/client/user-authenticators/passkey/authentication-options",
        headers=headers,
        json={"challengeId": challenge_id},
    )
    assert options.status_code == 200, options.text
    verified = ceremony.http.post(
        "/client/verify/passkey",
        headers=headers,
        json={
            "challengeId": challenge_id,
            "authenticationCredential": device.get(options.json()["options"]),
        },
    )
    assert verified.status_code == 200, verified.text
    return dict(verified.json())


def origin_of(server: LiveServer, tenant: Tenant, idempotency_key: str) -> str:
    async def work(db: Db) -> str:
        query = select(Action.origin).where(
            Action.tenant_id == tenant.id, Action.idempotency_key == idempotency_key
        )
        return str(await db.scalar(query))

    return server.run(work)


def test_track_refuses_the_key_of_an_action_a_client_made(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, http: httpx.Client, tmp_path: Path
) -> None:
    device = SoftwareAuthenticator(tmp_path / "device.bin")
    ceremony.register(device, "payer")
    signed_in = client_sign_in(
        ceremony, device, basic(tenant.id), action="transfer", idempotencyKey="transfer-77"
    )
    assert origin_of(server, tenant, "transfer-77") == "client"

    tracked = http.post(
        "/users/payer/actions/transfer",
        json={"idempotencyKey": "transfer-77", "custom": {"amount": "9000.00"}},
    )
    body = assert_error(tracked, 409, "conflict")
    assert "transfer-77" in body["errorDescription"]

    # The client's action is still there to read (and to redeem once: it is a sign-in).
    path = "/users/payer/actions/transfer/transfer-77"
    read = http.get(path)
    assert read.status_code == 200 and read.json()["state"] == "CHALLENGE_SUCCEEDED"
    assert read.json().get("custom") is None  # the refused track changed nothing
    redeemed = http.post("/validate", json={"token": signed_in["accessToken"]})
    assert redeemed.json()["isValid"] is True
    # The backend may still decide it by hand.
    patched = http.patch(path, json={"state": "REVIEW_FAILED"})
    assert patched.status_code == 200 and patched.json()["state"] == "REVIEW_FAILED"

    # Its own key gives the backend its own action, waiting for a challenge.
    own = http.post("/users/payer/actions/transfer", json={"idempotencyKey": "transfer-78"})
    assert own.status_code == 200 and own.json()["state"] == "CHALLENGE_REQUIRED"
    assert origin_of(server, tenant, "transfer-78") == "server"


def test_another_action_than_the_tokens_is_the_clients_too(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, http: httpx.Client, tmp_path: Path
) -> None:
    """C1 with a token but another action in the body records an action no backend tracked."""
    device = SoftwareAuthenticator(tmp_path / "device.bin")
    ceremony.register(device, "swapper")
    token = ceremony.authsignal.track("swapper", "signIn")["token"]
    client_sign_in(ceremony, device, bearer(token), action="withdraw", idempotencyKey="w-1")
    assert origin_of(server, tenant, "w-1") == "client"
    refused = http.post("/users/swapper/actions/withdraw", json={"idempotencyKey": "w-1"})
    assert_error(refused, 409, "conflict")


def test_tracked_actions_stay_the_backends(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, http: httpx.Client, tmp_path: Path
) -> None:
    """A sign-in for the token's own action settles the tracked action; track returns it."""
    device = SoftwareAuthenticator(tmp_path / "device.bin")
    ceremony.register(device, "tracked")
    tracked = http.post("/users/tracked/actions/signIn", json={"idempotencyKey": "s-1"}).json()
    client_sign_in(ceremony, device, bearer(tracked["token"]))
    assert origin_of(server, tenant, "s-1") == "server"
    again = http.post("/users/tracked/actions/signIn", json={"idempotencyKey": "s-1"})
    assert again.status_code == 200 and again.json()["state"] == "CHALLENGE_SUCCEEDED"


def test_a_client_cannot_answer_an_action_its_backend_tracked(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, http: httpx.Client, tmp_path: Path
) -> None:
    """Naming a tracked action's key in C1, without that action's token (Basic, or a token
    for another action), settles nothing: 409, and the action still waits for its challenge."""
    device = SoftwareAuthenticator(tmp_path / "device.bin")
    ceremony.register(device, "victim")
    http.post("/users/victim/actions/transfer", json={"idempotencyKey": "t-1"})

    started = ceremony.http.post(
        "/client/challenge",
        headers=basic(tenant.id),
        json={"action": "transfer", "idempotencyKey": "t-1"},
    )
    challenge_id = started.json()["challengeId"]
    options = ceremony.http.post(
        "/client/user-authenticators/passkey/authentication-options",
        headers=basic(tenant.id),
        json={"challengeId": challenge_id},
    ).json()["options"]
    verified = ceremony.http.post(
        "/client/verify/passkey",
        headers=basic(tenant.id),
        json={"challengeId": challenge_id, "authenticationCredential": device.get(options)},
    )
    assert_error(verified, 409, "conflict")

    other_token = ceremony.authsignal.track("victim", "signIn")["token"]
    refused = ceremony.http.post(
        "/client/challenge",
        headers=bearer(other_token),
        json={"action": "transfer", "idempotencyKey": "t-1"},
    )
    assert_error(refused, 409, "conflict")

    action = http.get("/users/victim/actions/transfer/t-1").json()
    assert action["state"] == "CHALLENGE_REQUIRED"
    assert origin_of(server, tenant, "t-1") == "server"
