"""The one-time messages a device signs (P4 for P5, P7 for P8): asking for one, which anyone
with the tenant id and the device's public key can do, invalidates nothing and stores nothing;
each message is single use, expires, and is refused for another device, purpose or when
altered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from authsignal.client import AuthsignalClient
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from passgate import AuthsignalSync
from passgate.sdk._protocol import basic_auth
from passgate.sdk._push_protocol import public_key_base64, public_key_param, sign
from passgate.server.services import tenants
from passgate.server.services.push import nonces
from passgate.server.store import push as push_store
from passgate.server.store.db import Db
from passgate.server.store.tables import SpentChallenge, utcnow
from tests.live_server import LiveServer, Tenant
from tests.server.push.conftest import Device
from tests.server.push.test_refusals import PUSH, assert_error, device_key

Enroll = Callable[[AuthsignalSync, str], str]


@dataclass
class Phone:
    """A device driven by hand over HTTP, so that each step can be replayed or altered."""

    http: httpx.Client
    key: ec.EllipticCurvePrivateKey
    device_id: str

    @property
    def param(self) -> dict[str, str]:
        return {"publicKey": public_key_param(self.key)}

    def p4(self) -> str:
        response = self.http.post(f"{PUSH}/challenge/sign", params=self.param)
        assert response.status_code == 200, response.text
        message: str = response.json()["message"]
        return message

    def p5(self, signature: str) -> httpx.Response:
        headers = {"X-Authsignal-Signature": signature}
        return self.http.get(f"{PUSH}/challenge", params=self.param, headers=headers)

    def p7(self) -> str:
        response = self.http.post(f"{PUSH}/sign", params=self.param)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["challengeId"] == body["message"]
        message: str = body["message"]
        return message

    def p8(self, challenge_id: str, signature: str) -> httpx.Response:
        body = {
            "publicKey": public_key_base64(self.key),
            "challengeId": challenge_id,
            "signature": signature,
        }
        return self.http.patch(PUSH, json=body)


@pytest.fixture
def http(server: LiveServer, tenant: Tenant) -> Iterator[httpx.Client]:
    """Basic auth with the public tenant id only: what the device, or anyone, has."""
    limits = httpx.Limits(max_connections=20)
    headers = {"Authorization": basic_auth(tenant.id)}
    with httpx.Client(base_url=server.api_url, headers=headers, limits=limits, timeout=30) as c:
        yield c


@pytest.fixture
def make_phone(make_device: Device, enroll: Enroll, http: httpx.Client) -> Callable[..., Phone]:
    def make(user_id: str, name: str = "phone") -> Phone:
        device = make_device(name)
        device_id = enroll(device, user_id)
        return Phone(http, device_key(device), device_id)

    return make


def issued_at(server: LiveServer, tenant: Tenant, phone: Phone, purpose: str, ago: float) -> str:
    """The message Passgate would have handed this device `ago` seconds ago."""

    async def work(db: Db) -> str:
        row = await tenants.get_tenant(db, tenant.id)
        when = utcnow() - timedelta(seconds=ago)
        async with server.app.state.engines.transaction(read_only=True) as db:
            return await nonces.issue(db, row, phone.device_id, purpose, when)

    return server.run(work)


def spent_rows(server: LiveServer, tenant: Tenant) -> int:
    async def work(db: Db) -> int:
        query = select(func.count()).where(
            SpentChallenge.tenant_id == tenant.id, SpentChallenge.kind == push_store.SPENT_KIND
        )
        return int(await db.scalar(query) or 0)

    return server.run(work)


def test_a_third_party_asking_for_messages_does_not_break_the_device(
    server: LiveServer,
    tenant: Tenant,
    make_phone: Callable[..., Phone],
    authsignal: AuthsignalClient,
) -> None:
    phone = make_phone("ada")
    tracked = authsignal.track("ada", "signIn")
    message, update_message = phone.p4(), phone.p7()
    # Someone else who knows the tenant id and the public key asks again and again.
    with httpx.Client(
        base_url=server.api_url, headers={"Authorization": basic_auth(tenant.id)}, timeout=30
    ) as stranger:
        for _ in range(20):
            assert stranger.post(f"{PUSH}/challenge/sign", params=phone.param).status_code == 200
            assert stranger.post(f"{PUSH}/sign", params=phone.param).status_code == 200
    seen = phone.p5(sign(phone.key, message))
    assert seen.status_code == 200, seen.text
    assert seen.json()["challengeId"] == tracked["challenge_id"]
    updated = phone.p8(update_message, sign(phone.key, update_message))
    assert updated.status_code == 200, updated.text


def test_a_message_is_used_once(make_phone: Callable[..., Phone]) -> None:
    phone = make_phone("bea")
    message = phone.p4()
    signature = sign(phone.key, message)
    assert phone.p5(signature).status_code == 200
    assert_error(phone.p5(signature), 401, "invalid_signature")
    following = phone.p4()
    assert following != message
    assert phone.p5(sign(phone.key, following)).status_code == 200

    update_message = phone.p7()
    signature = sign(phone.key, update_message)
    assert phone.p8(update_message, signature).status_code == 200
    assert_error(phone.p8(update_message, signature), 401, "invalid_signature")
    assert phone.p7() != update_message


def test_concurrent_replays_of_one_signed_message_one_wins(
    make_phone: Callable[..., Phone],
) -> None:
    phone = make_phone("cyd")
    message = phone.p4()
    signature = sign(phone.key, message)
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: phone.p5(signature), range(20)))
    assert sorted(r.status_code for r in responses) == [200] + [401] * 19

    update_message = phone.p7()
    signature = sign(phone.key, update_message)
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: phone.p8(update_message, signature), range(20)))
    assert sorted(r.status_code for r in responses) == [200] + [401] * 19


def test_an_expired_message_is_refused(
    server: LiveServer, tenant: Tenant, make_phone: Callable[..., Phone]
) -> None:
    phone = make_phone("dee")
    lifetime = nonces.LIFETIME_SECONDS
    for purpose, send in ((nonces.CHALLENGE, phone.p5), (nonces.CREDENTIAL, None)):
        stale = issued_at(server, tenant, phone, purpose, lifetime + 1)
        if send is None:
            assert_error(phone.p8(stale, sign(phone.key, stale)), 401, "invalid_signature")
        else:
            assert_error(send(sign(phone.key, stale)), 401, "invalid_signature")
    # A message lives at least half its lifetime: one handed out just before is still good.
    recent = issued_at(server, tenant, phone, nonces.CHALLENGE, lifetime / 2 - 10)
    assert phone.p5(sign(phone.key, recent)).status_code == 200
    recent = issued_at(server, tenant, phone, nonces.CREDENTIAL, lifetime / 2 - 10)
    assert phone.p8(recent, sign(phone.key, recent)).status_code == 200


def test_another_devices_or_purposes_message_is_refused(
    make_phone: Callable[..., Phone],
) -> None:
    mine, theirs = make_phone("eve", "mine"), make_phone("fay", "theirs")
    message, update_message = theirs.p4(), theirs.p7()
    # Signed with my key, sent for my device: not a message made for my device.
    assert_error(mine.p5(sign(mine.key, message)), 401, "invalid_signature")
    refused = mine.p8(update_message, sign(mine.key, update_message))
    assert_error(refused, 401, "invalid_signature")
    # P4's message is not P7's, and the other way round.
    assert_error(theirs.p8(message, sign(theirs.key, message)), 401, "invalid_signature")
    assert_error(theirs.p5(sign(theirs.key, update_message)), 401, "invalid_signature")
    # None of that used them up.
    assert theirs.p5(sign(theirs.key, message)).status_code == 200
    assert theirs.p8(update_message, sign(theirs.key, update_message)).status_code == 200


def test_a_forged_or_altered_message_is_refused(
    server: LiveServer, tenant: Tenant, make_phone: Callable[..., Phone]
) -> None:
    phone = make_phone("gil")
    message = phone.p7()
    version, expiry, serial, mac = message.split(".")
    flipped = ("A" if mac[-1] != "A" else "B") + mac[1:]
    for altered in (
        f"{version}.{int(expiry) + nonces.SLOT_SECONDS}.{serial}.{mac}",
        f"{version}.{expiry}.{int(serial) + 1}.{mac}",
        f"{version}.{expiry}.0{serial}.{mac}",
        f"{version}.{expiry}.{serial}.{flipped}",
        f"v2.{expiry}.{serial}.{mac}",
        f"{version}.{expiry}.{serial}.{mac}.",
        "v1.9999999999.0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "hello",
        "v1.\u00e9.0.x",
    ):
        assert_error(phone.p8(altered, sign(phone.key, altered)), 401, "invalid_signature")
    # P5 signs a message it does not send: one Passgate did not make is refused.
    p4_message = phone.p4()
    assert_error(phone.p5(sign(phone.key, p4_message + "x")), 401, "invalid_signature")
    assert_error(phone.p5("not base64!"), 401, "invalid_signature")
    assert_error(
        phone.p5(sign(ec.generate_private_key(ec.SECP256R1()), p4_message)),
        401,
        "invalid_signature",
    )
    # The genuine ones still work.
    assert phone.p8(message, sign(phone.key, message)).status_code == 200
    assert phone.p5(sign(phone.key, p4_message)).status_code == 200


def test_unsigned_requests_store_nothing(
    server: LiveServer, tenant: Tenant, make_phone: Callable[..., Phone], http: httpx.Client
) -> None:
    phone = make_phone("hal")
    before = spent_rows(server, tenant)
    forger = ec.generate_private_key(ec.SECP256R1())
    for _ in range(30):
        message, update_message = phone.p4(), phone.p7()
        assert_error(phone.p5(sign(forger, message)), 401, "invalid_signature")
        refused = phone.p8(update_message, sign(forger, update_message))
        assert_error(refused, 401, "invalid_signature")
    assert spent_rows(server, tenant) == before
    # Only the device's own signature spends a message (one row, until it would expire).
    message = phone.p4()
    assert phone.p5(sign(phone.key, message)).status_code == 200
    assert spent_rows(server, tenant) == before + 1

    async def prune(db: Db) -> int:
        later = utcnow() + timedelta(seconds=nonces.LIFETIME_SECONDS + 1)
        async with server.app.state.engines.transaction() as db:
            return await push_store.prune_spent_messages(db, later)

    assert server.run(prune) >= 1
    assert spent_rows(server, tenant) == 0
