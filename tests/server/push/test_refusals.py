"""Push refusals: one decision per challenge under a race, and nothing for a wrong key, a
forged or replayed signature, or a user over the push-bombing limit."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from authsignal.client import AuthsignalClient
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from passgate import AuthsignalSync
from passgate.sdk._protocol import basic_auth
from passgate.sdk._push_protocol import public_key_base64, removal_message, sign
from passgate.server.store.db import Db
from passgate.server.store.tables import PushChallenge
from tests.live_server import LiveServer, Tenant
from tests.server.push.conftest import Device

Enroll = Callable[[AuthsignalSync, str], str]
PUSH = "/client/user-authenticators/push"


def device_key(device: AuthsignalSync) -> ec.EllipticCurvePrivateKey:
    key = device.push.device_keys.load()
    assert key is not None
    return key


def basic(server: LiveServer, tenant: Tenant) -> httpx.Client:
    return httpx.Client(
        base_url=server.api_url, headers={"Authorization": basic_auth(tenant.id)}, timeout=30
    )


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errorCode"] == code


def test_fifty_concurrent_answers_one_wins(
    server: LiveServer,
    tenant: Tenant,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
) -> None:
    device = make_device()
    enroll(device, "race")
    tracked = authsignal.track("race", "signIn")
    key = device_key(device)
    body = {
        "publicKey": public_key_base64(key),
        "challengeId": tracked["challenge_id"],
        "signature": sign(key, tracked["challenge_id"]),
        "approved": True,
        "verificationCode": tracked["verification_code"],
    }
    limits = httpx.Limits(max_connections=50)
    with (
        httpx.Client(
            base_url=server.api_url,
            headers={"Authorization": basic_auth(tenant.id)},
            limits=limits,
            timeout=60,
        ) as http,
        ThreadPoolExecutor(max_workers=50) as pool,
    ):
        responses = list(pool.map(lambda _: http.post(f"{PUSH}/challenge", json=body), range(50)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * 49
    [winner] = [r for r in responses if r.status_code == 200]
    assert winner.json() == {"isVerified": True}
    for loser in responses:
        if loser.status_code == 409:
            assert loser.json()["errorCode"] == "challenge_already_answered"
    assert authsignal.validate_challenge({"token": tracked["token"]})["is_valid"] is True


def test_another_devices_key_cannot_answer(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    victim, attacker = make_device("victim"), make_device("attacker")
    enroll(victim, "victim")
    enroll(attacker, "attacker")
    tracked = authsignal.track("victim", "signIn")
    answer = attacker.push.update_challenge(
        tracked["challenge_id"], True, tracked["verification_code"]
    )
    assert answer.error_code == "challenge_not_found"
    assert attacker.push.get_challenge().data is None
    assert authsignal.get_action("victim", "signIn", tracked["idempotency_key"])["state"] == (
        "CHALLENGE_REQUIRED"
    )


def test_forged_signatures_are_refused(
    server: LiveServer,
    tenant: Tenant,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
) -> None:
    device = make_device()
    enroll(device, "pat")
    tracked = authsignal.track("pat", "signIn")
    key, forger = device_key(device), ec.generate_private_key(ec.SECP256R1())
    public_key = public_key_base64(key)
    with basic(server, tenant) as http:
        for signature in (
            sign(forger, tracked["challenge_id"]),
            sign(key, "another-challenge-id"),
            base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode(),
            "not base64!",
        ):
            response = http.post(
                f"{PUSH}/challenge",
                json={
                    "publicKey": public_key,
                    "challengeId": tracked["challenge_id"],
                    "signature": signature,
                    "approved": True,
                    "verificationCode": tracked["verification_code"],
                },
            )
            assert_error(response, 401, "invalid_signature")

        param = {"publicKey": base64.b64encode(public_key.encode()).decode()}
        # P5 needs the signed one-time message from P4; unsigned, forged or replayed: refused.
        assert_error(http.get(f"{PUSH}/challenge", params=param), 401, "invalid_signature")
        message = http.post(f"{PUSH}/challenge/sign", params=param).json()["message"]
        forged = {"X-Authsignal-Signature": sign(forger, message)}
        assert_error(
            http.get(f"{PUSH}/challenge", params=param, headers=forged), 401, "invalid_signature"
        )
        signed = {"X-Authsignal-Signature": sign(key, message)}
        seen = http.get(f"{PUSH}/challenge", params=param, headers=signed)
        assert seen.json()["challengeId"] == tracked["challenge_id"]
        assert "verificationCode" not in seen.json()
        assert_error(
            http.get(f"{PUSH}/challenge", params=param, headers=signed), 401, "invalid_signature"
        )
    assert authsignal.get_action("pat", "signIn", tracked["idempotency_key"])["state"] == (
        "CHALLENGE_REQUIRED"
    )


def test_removal_needs_a_fresh_signature_from_the_device(
    server: LiveServer,
    tenant: Tenant,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
) -> None:
    device = make_device()
    enroll(device, "quinn")
    key = device_key(device)
    public_key = public_key_base64(key)
    stale = removal_message(time.time() - 1200)  # two windows ago
    forger = ec.generate_private_key(ec.SECP256R1())
    with basic(server, tenant) as http:
        for signature in (sign(key, stale), sign(forger, removal_message())):
            response = http.post(
                f"{PUSH}/remove", json={"publicKey": public_key, "signature": signature}
            )
            assert_error(response, 401, "invalid_signature")
        assert len(authsignal.get_authenticators("quinn")) == 1
        # The previous window still works (a clock a little behind, a boundary just passed).
        previous = removal_message(time.time() - 600)
        removed = http.post(
            f"{PUSH}/remove", json={"publicKey": public_key, "signature": sign(key, previous)}
        )
        assert removed.status_code == 200, removed.text
        assert removed.json()["removedAuthenticatorId"]
        replay = http.post(
            f"{PUSH}/remove", json={"publicKey": public_key, "signature": sign(key, previous)}
        )
        assert_error(replay, 404, "invalid_credential")
    assert authsignal.get_authenticators("quinn") == []


def test_enrolment_needs_the_token_and_the_scope(
    server: LiveServer,
    tenant: Tenant,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
) -> None:
    first, second = make_device("first"), make_device("second")
    assert first.push.add_credential().error_code == "token_not_set"
    enroll(first, "ray")
    # A sign-in token (no add:authenticators scope) cannot add a device to an enrolled user.
    tracked = authsignal.track("ray", "signIn")
    refused = second.push.add_credential(tracked["token"])
    assert refused.error_code == "forbidden"  # the one enrolment refusal (docs/wire.md#scopes)
    assert len(authsignal.get_authenticators("ray")) == 1
    # Another user cannot claim an enrolled key.
    other = authsignal.track("sam", "enrollPush", {"scope": "add:authenticators"})
    stolen = first.push.add_credential(other["token"])
    assert stolen.error_code == "conflict"


@pytest.mark.parametrize("limit", [2])
def test_push_bombing_limit(
    server: LiveServer,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
    configure: Any,
    limit: int,
) -> None:
    configure(rate_limit=limit, challenge_on_track=False)
    device = make_device()
    enroll(device, "tom")
    responses = []
    for _ in range(limit + 2):
        token = authsignal.track("tom", "signIn")["token"]
        with httpx.Client(
            base_url=server.api_url, headers={"Authorization": f"Bearer {token}"}
        ) as page:
            responses.append(page.post("/client/challenge/push", json={}))
    assert [r.status_code for r in responses] == [200] * limit + [429, 429]
    assert_error(responses[-1], 429, "too_many_requests")

    async def refused(db: Db) -> int:
        query = select(func.count()).where(
            PushChallenge.user_id == "tom", PushChallenge.state == "refused"
        )
        return int(await db.scalar(query) or 0)

    assert server.run(refused) == 2
    # Track over the limit still tracks the action; it just sends no push.
    configure(challenge_on_track=True)
    tracked = authsignal.track("tom", "signIn")
    assert tracked["state"] == "CHALLENGE_REQUIRED"
    assert "challenge_id" not in tracked


def test_the_backends_decision_stands(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    """An action the backend settled (update_action) is not changed by a late approval."""
    device = make_device()
    enroll(device, "uri")
    tracked = authsignal.track("uri", "signIn")
    authsignal.update_action("uri", "signIn", tracked["idempotency_key"], {"state": "BLOCK"})
    answer = device.push.update_challenge(
        tracked["challenge_id"], True, tracked["verification_code"]
    )
    assert (answer.data, answer.error) == (False, None)
    assert authsignal.get_action("uri", "signIn", tracked["idempotency_key"])["state"] == "BLOCK"
    assert authsignal.validate_challenge({"token": tracked["token"]})["is_valid"] is False


def test_removing_the_authenticator_or_the_user_removes_the_device(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    first, second = make_device("first"), make_device("second")
    credential_id = enroll(first, "val")
    authsignal.delete_authenticator("val", credential_id)
    assert first.push.get_credential().error_code == "invalid_credential"
    enroll(second, "wyn")
    authsignal.track("wyn", "signIn")
    authsignal.delete_user("wyn")
    assert second.push.get_challenge().error_code == "invalid_credential"


def test_an_expired_credential_is_refused_until_enrolled_again(
    server: LiveServer, make_device: Device, enroll: Enroll, configure: Any
) -> None:
    configure(credential_lifetime_minutes=60)
    device = make_device()
    credential_id = enroll(device, "xan")

    async def expire(db: Db) -> None:
        from datetime import timedelta

        from sqlalchemy import update

        from passgate.server.store.tables import PushDevice, utcnow

        await db.execute(
            update(PushDevice)
            .where(PushDevice.id == credential_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    server.run(expire)
    assert device.push.get_challenge().error_code == "expired_credential"
    assert device.push.update_credential("t").error_code == "expired_credential"
    assert enroll(device, "xan") == credential_id  # the same key, renewed
    assert device.push.get_challenge().ok
