"""Push end to end through a real server: a Python device (Passgate's SDK) and an app backend
(Authsignal's own Python server SDK), as the README describes them."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
from authsignal.client import AuthsignalClient
from sqlalchemy import update

from passgate import AppChallenge, AuthsignalSync
from passgate.server.store.db import Db
from passgate.server.store.tables import PushChallenge, utcnow
from tests.live_server import LiveServer, Tenant
from tests.server.push.conftest import Device

Enroll = Callable[[AuthsignalSync, str], str]


def pending(device: AuthsignalSync, wait: float | None = None) -> AppChallenge:
    response = device.push.get_challenge(wait=wait)
    assert response.ok, response
    assert response.data is not None
    return response.data


def test_enroll_then_read_the_credential(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    device = make_device()
    credential_id = enroll(device, "dora")

    credential = device.push.get_credential()
    assert credential.ok
    assert credential.data is not None
    assert credential.data.credential_id == credential_id
    assert credential.data.user_id == "dora"
    assert credential.data.created_at.endswith("Z")

    assert authsignal.get_user("dora")["enrolled_verification_methods"] == ["PUSH"]
    [authenticator] = authsignal.get_authenticators("dora")
    assert authenticator["user_authenticator_id"] == credential_id
    assert authenticator["verification_method"] == "PUSH"
    # Nothing pending yet: data is None, no error.
    assert device.push.get_challenge().data is None


def test_approve_with_the_right_number(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    device = make_device()
    enroll(device, "erin")
    tracked = authsignal.track(
        "erin",
        "payment",
        {
            "ipAddress": "203.0.113.7",
            "userAgent": "Firefox/140",
            "deviceId": "web-1",
            "custom": {"amount": "120.00"},
        },
    )
    assert tracked["state"] == "CHALLENGE_REQUIRED"
    assert re.fullmatch(r"\d\d", tracked["verification_code"])

    challenge = pending(device)
    assert challenge.challenge_id == tracked["challenge_id"]
    assert challenge.action_code == "payment"
    assert challenge.idempotency_key == tracked["idempotency_key"]
    assert (challenge.ip_address, challenge.user_agent) == ("203.0.113.7", "Firefox/140")
    assert challenge.device_id == "web-1"
    assert challenge.custom == {"amount": "120.00"}
    assert challenge.expires_at and challenge.expires_at > time.time()

    action = authsignal.get_action("erin", "payment", tracked["idempotency_key"])
    assert action["verification_code"] == tracked["verification_code"]

    answer = device.push.update_challenge(
        challenge.challenge_id, True, tracked["verification_code"]
    )
    assert (answer.data, answer.error) == (True, None)

    action = authsignal.get_action("erin", "payment", tracked["idempotency_key"])
    assert action["state"] == "CHALLENGE_SUCCEEDED"
    assert action["verification_method"] == "PUSH"
    valid = authsignal.validate_challenge({"token": tracked["token"]})
    assert valid["is_valid"] is True
    assert device.push.get_challenge().data is None


def test_reject(make_device: Device, enroll: Enroll, authsignal: AuthsignalClient) -> None:
    device = make_device()
    enroll(device, "fay")
    tracked = authsignal.track("fay", "signIn")
    challenge = pending(device)

    answer = device.push.update_challenge(challenge.challenge_id, False)
    assert (answer.data, answer.error) == (False, None)
    assert authsignal.get_action("fay", "signIn", tracked["idempotency_key"])["state"] == (
        "CHALLENGE_FAILED"
    )
    assert authsignal.validate_challenge({"token": tracked["token"]})["is_valid"] is False


def test_a_wrong_number_fails_the_challenge_for_good(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    device = make_device()
    enroll(device, "gus")
    tracked = authsignal.track("gus", "signIn")
    wrong = f"{(int(tracked['verification_code']) + 1) % 100:02d}"
    challenge = pending(device)

    assert device.push.update_challenge(challenge.challenge_id, True, wrong).data is False
    assert device.push.update_challenge(challenge.challenge_id, True).data is None
    again = device.push.update_challenge(challenge.challenge_id, True, tracked["verification_code"])
    assert again.error_code == "challenge_already_answered"
    action = authsignal.get_action("gus", "signIn", tracked["idempotency_key"])
    assert action["state"] == "CHALLENGE_FAILED"
    assert authsignal.validate_challenge({"token": tracked["token"]})["is_valid"] is False


def test_the_backends_decision_stands(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    """The one rule for challenge results (services/actions.settle), shared with passkeys:
    once the backend has decided the action, a late approval changes nothing."""
    device = make_device()
    enroll(device, "ivy")
    tracked = authsignal.track("ivy", "payment")
    challenge = pending(device)
    authsignal.update_action("ivy", "payment", tracked["idempotency_key"], {"state": "BLOCK"})

    answer = device.push.update_challenge(
        challenge.challenge_id, True, tracked["verification_code"]
    )
    assert (answer.data, answer.error) == (False, None)
    action = authsignal.get_action("ivy", "payment", tracked["idempotency_key"])
    assert action["state"] == "BLOCK"
    assert authsignal.validate_challenge({"token": tracked["token"]})["is_valid"] is False


def test_number_matching_off(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient, configure: Any
) -> None:
    configure(number_matching=False)
    device = make_device()
    enroll(device, "hal")
    tracked = authsignal.track("hal", "signIn")
    assert "verification_code" not in tracked
    assert device.push.update_challenge(pending(device).challenge_id, True).data is True


def test_page_starts_the_challenge_and_polls_the_outcome(
    server: LiveServer,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
    configure: Any,
) -> None:
    """The browser's W1 and W2, with the token the backend got from track."""
    configure(challenge_on_track=False)
    device = make_device()
    device_id = enroll(device, "ivy")
    tracked = authsignal.track("ivy", "signIn")
    assert "challenge_id" not in tracked
    assert device.push.get_challenge().data is None

    page = httpx.Client(
        base_url=server.api_url, headers={"Authorization": f"Bearer {tracked['token']}"}
    )
    started = page.post(
        "/client/challenge/push", json={"action": "signIn", "userAuthenticatorId": device_id}
    ).json()
    # Asking again gives the same open challenge, and the same number.
    assert page.post("/client/challenge/push", json={"action": "signIn"}).json() == started
    code = started["verificationCode"]
    assert (
        authsignal.get_action("ivy", "signIn", tracked["idempotency_key"])["verification_code"]
        == code
    )

    poll = {"challengeId": started["challengeId"]}
    assert page.post("/client/verify/push", json=poll).json() == {
        "isVerified": False,
        "isConsumed": False,
    }
    assert device.push.update_challenge(pending(device).challenge_id, True, code).data is True

    outcome = page.post("/client/verify/push", json=poll).json()
    assert outcome["isVerified"] is outcome["isConsumed"] is True
    valid = authsignal.validate_challenge({"token": outcome["accessToken"]})
    assert (valid["is_valid"], valid["user_id"], valid["state"]) == (
        True,
        "ivy",
        "CHALLENGE_SUCCEEDED",
    )
    page.close()


def test_long_poll_wakes_up_when_a_challenge_is_created(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    device = make_device()
    enroll(device, "jay")
    seen: list[AppChallenge | None] = []
    waiter = threading.Thread(target=lambda: seen.append(device.push.get_challenge(wait=30).data))
    started = time.monotonic()
    waiter.start()
    time.sleep(0.5)
    tracked = authsignal.track("jay", "signIn")
    waiter.join(timeout=30)
    assert seen and seen[0] is not None
    assert seen[0].challenge_id == tracked["challenge_id"]
    assert time.monotonic() - started < 4  # well before the 5 s database recheck


async def open_transactions(database_url: str) -> int:
    """Server connections to this PostgreSQL database sitting inside a transaction."""
    connection = await asyncpg.connect(database_url)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
        )
    finally:
        await connection.close()
    return int(count)


def test_long_polls_hold_no_database_connection(
    server: LiveServer, make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    """Devices waiting in long-polls leave the database free: on SQLite a held transaction
    would block every write (BEGIN IMMEDIATE) until the wait ended; on PostgreSQL no server
    connection sits idle in a transaction meanwhile."""
    devices = [make_device(f"d{index}") for index in range(3)]
    for index, device in enumerate(devices):
        enroll(device, f"kim{index}")
    results: list[Any] = []
    waiters = [
        threading.Thread(target=lambda d=d: results.append(d.push.get_challenge(wait=8)))
        for d in devices
    ]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.5)
    started = time.monotonic()
    for _ in range(5):
        authsignal.track("someone-else", "signIn")
    assert time.monotonic() - started < 2
    if server.database_url.startswith("postgresql"):
        assert asyncio.run(open_transactions(server.database_url)) == 0
    authsignal.track("kim0", "signIn")
    for waiter in waiters:
        waiter.join(timeout=20)
    assert sorted(r.data is not None for r in results) == [False, False, True]


def test_an_expired_challenge_cannot_be_answered(
    server: LiveServer, make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    device = make_device()
    enroll(device, "lou")
    tracked = authsignal.track("lou", "signIn")
    challenge = pending(device)

    async def expire(db: Db) -> None:
        await db.execute(
            update(PushChallenge)
            .where(PushChallenge.id == challenge.challenge_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    server.run(expire)
    assert device.push.get_challenge().data is None
    late = device.push.update_challenge(challenge.challenge_id, True, tracked["verification_code"])
    assert late.error_code == "challenge_expired"
    action = authsignal.get_action("lou", "signIn", tracked["idempotency_key"])
    assert action["state"] == "CHALLENGE_REQUIRED"
    # A new track of the same action starts a fresh challenge.
    again = authsignal.track("lou", "signIn", {"idempotencyKey": tracked["idempotency_key"]})
    assert again["challenge_id"] not in (None, challenge.challenge_id)


def test_remove_credential(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    device = make_device()
    enroll(device, "max")
    removed = device.push.remove_credential()
    assert (removed.data, removed.error) == (True, None)
    assert device.push.device_keys.load() is None
    assert authsignal.get_authenticators("max") == []
    assert device.push.get_credential().data is None
    assert device.push.remove_credential().error_code == "no_credential"


def test_remove_deletes_the_local_key_even_when_the_server_is_unreachable(
    make_device: Device, enroll: Enroll, tenant: Tenant, tmp_path: Any
) -> None:
    device = make_device()
    enroll(device, "ned")
    offline = AuthsignalSync(
        tenant.id, "http://127.0.0.1:9/v1", device_keys=device.push.device_keys, timeout=2
    )
    response = offline.push.remove_credential()
    offline.close()
    assert response.error_code == "network_error"
    assert device.push.device_keys.load() is None


def test_update_credential(
    make_device: Device, enroll: Enroll, authsignal: AuthsignalClient, configure: Any
) -> None:
    configure(credential_lifetime_minutes=60)
    device = make_device()
    credential_id = enroll(device, "oli")
    updated = device.push.update_credential("fcm-token-123")
    assert updated.ok, updated
    assert updated.data is not None
    assert updated.data.user_authenticator_id == credential_id
    assert updated.data.push_token == "fcm-token-123"
    assert updated.data.last_verified_at.endswith("Z")


async def test_the_async_client_approves_too(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Any
) -> None:
    """`Authsignal` (the async source of the SDK) over real loopback HTTP."""
    import asyncio

    from passgate import Authsignal
    from passgate.authenticators import DeviceKeyStore

    async with Authsignal(
        tenant.id, server.api_url, device_keys=DeviceKeyStore(tmp_path / "async.pem")
    ) as device:
        token = authsignal.track("ada", "enroll", {"scope": "add:authenticators"})["token"]
        device.set_token(token)
        assert (await device.push.add_credential()).ok  # the cached token
        waiting = asyncio.create_task(device.push.get_challenge(wait=20))
        await asyncio.sleep(0.3)
        tracked = await asyncio.to_thread(authsignal.track, "ada", "signIn")
        challenge = (await waiting).data
        assert challenge is not None
        answer = await device.push.update_challenge(
            challenge.challenge_id, approved=True, verification_code=tracked["verification_code"]
        )
        assert answer.data is True
