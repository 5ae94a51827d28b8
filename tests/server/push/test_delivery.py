"""Telling the device: `push.created` webhooks to a receiver on loopback, checked the way
Authsignal's SDK checks them, and the FCM HTTP v1 exchange against loopback stand-ins."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from aioapns.connection import JWTAuthorizationHeaderProvider
from authsignal.client import AuthsignalClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore
from passgate.server.services.push.senders import Senders, apns_payload, fcm_message
from passgate.server.store.db import Db
from passgate.server.store.tables import Action, PushChallenge, utcnow
from tests.live_server import LiveServer, Tenant
from tests.server.push.conftest import Device

Enroll = Callable[[AuthsignalSync, str], str]


class InvalidSignatureError(Exception):
    pass


def construct_event(secret: str, payload: str, header: str, tolerance: int = 5) -> Any:
    """The webhook signature of docs/wire.md#webhooks, as Authsignal's Python SDK
    (`authsignal.webhook`, newer than the 4.1.0 pinned here, which has no webhook module)
    verifies an event: `t` and every `v2` from the header,
    the timestamp within `tolerance` minutes, base64 HMAC-SHA256 of "t.payload" without "="."""
    parts = [item.split("=", 1) for item in header.split(",")]
    timestamps = [int(value) for name, value in parts if name == "t"]
    signatures = [value for name, value in parts if name == "v2"]
    if not timestamps or not signatures:
        raise InvalidSignatureError("Signature format is invalid.")
    if tolerance > 0 and timestamps[0] < int(time.time()) - tolerance * 60:
        raise InvalidSignatureError("Timestamp is outside the tolerance zone.")
    digest = hmac.new(secret.encode(), f"{timestamps[0]}.{payload}".encode(), hashlib.sha256)
    expected = base64.b64encode(digest.digest()).decode().replace("=", "")
    if expected not in signatures:
        raise InvalidSignatureError("Signature mismatch.")
    return json.loads(payload)


class Receiver:
    """An HTTP endpoint on loopback answering with `statuses` in turn (then 200)."""

    def __init__(self, statuses: list[int], reply: Callable[[str, bytes], Any] | None = None):
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.received = threading.Event()
        statuses_left = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                status = statuses_left.pop(0) if statuses_left else 200
                answer = json.dumps(reply(self.path, body) if reply else {}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                if status == 200:
                    receiver.received.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver([503])
    yield made
    made.close()


def test_push_created_webhook_is_signed_and_retried(
    receiver: Receiver,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
    configure: Any,
    tenant: Tenant,
    node_sdk: Path,
) -> None:
    settings = configure(webhook_url=f"{receiver.url}/hooks/push")
    assert settings.webhook_secret and settings.webhook_secret.startswith("pg_whsec_")
    device = make_device()
    enroll(device, "uma")
    started = time.monotonic()
    tracked = authsignal.track("uma", "payment", {"custom": {"amount": 5}})
    assert time.monotonic() - started < 1  # the request does not wait for the receiver

    assert receiver.received.wait(timeout=15)
    assert len(receiver.requests) == 2  # 503 first, then retried
    path, headers, body = receiver.requests[-1]
    assert path == "/hooks/push"
    assert headers["Content-Type"] == "application/json"
    event = construct_event(settings.webhook_secret, body.decode(), headers["x-signature-v2"])
    assert event["type"] == "push.created"
    assert event["tenantId"] == tenant.id
    assert {"version", "id", "source", "time"} <= set(event)
    data = event["data"]
    assert data["challengeId"] == tracked["challenge_id"]
    assert data["idempotencyKey"] == tracked["idempotency_key"]
    assert data["userId"] == "uma"
    assert "verificationCode" not in body.decode()
    with pytest.raises(InvalidSignatureError):
        construct_event("pg_whsec_wrong", body.decode(), headers["x-signature-v2"])
    with pytest.raises(InvalidSignatureError):
        construct_event(settings.webhook_secret, body.decode() + " ", headers["x-signature-v2"])

    # And as Authsignal's own Node SDK checks it (`webhook.constructEvent`).
    def node_construct_event(secret: str, payload: bytes) -> dict[str, Any]:
        result = subprocess.run(
            ["node", "webhook.mjs"],
            cwd=node_sdk,
            input=payload,
            capture_output=True,
            timeout=60,
            env={
                **os.environ,
                "WEBHOOK_SECRET": secret,
                "WEBHOOK_SIGNATURE": headers["x-signature-v2"],
            },
        )
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    assert node_construct_event(settings.webhook_secret, body)["event"] == event
    assert node_construct_event("pg_whsec_wrong", body) == {"error": "Signature mismatch."}
    assert node_construct_event(settings.webhook_secret, body + b" ") == {
        "error": "Signature mismatch."
    }


def _challenge() -> tuple[PushChallenge, Action]:
    now = utcnow()
    action = Action(
        id="a1",
        user_id="vic",
        action_code="payment",
        idempotency_key="k1",
        ip_address="203.0.113.4",
        created_at=now,
    )
    challenge = PushChallenge(id="c1", verification_code="42", created_at=now, expires_at=now)
    return challenge, action


def test_payloads_carry_ids_but_never_the_number() -> None:
    challenge, action = _challenge()
    apns = apns_payload(challenge, action)
    assert apns["aps"]["alert"]["body"] == "Approve payment from 203.0.113.4"
    assert (apns["challengeId"], apns["idempotencyKey"]) == ("c1", "k1")
    fcm = fcm_message("token-1", challenge, action)["message"]
    assert fcm["token"] == "token-1"
    assert fcm["data"] == {"challengeId": "c1", "actionCode": "payment", "idempotencyKey": "k1"}
    assert all(isinstance(value, str) for value in fcm["data"].values())
    assert "42" not in json.dumps([apns, fcm])


async def test_apns_token_auth_is_an_es256_provider_token() -> None:
    """aioapns signs the provider token from the tenant's .p8 key; Apple's servers are not
    reachable here, so the token is checked instead of a delivery."""
    import httpx

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    config = {"teamId": "TEAM123456", "keyId": "KEY1234567", "privateKey": pem, "bundleId": "a.b"}
    async with httpx.AsyncClient() as http:
        senders = Senders(http, "https://fcm.example")
        client = senders.apns_client(config)
        assert senders.apns_client(config) is client  # made once per configuration
        pool: Any = client.pool
        assert (pool.key_id, pool.team_id) == ("KEY1234567", "TEAM123456")
        # The provider each of the pool's connections signs its requests with.
        header = JWTAuthorizationHeaderProvider(pool.key, pool.key_id, pool.team_id).get_header()
    scheme, token = header.split(" ")
    assert scheme == "bearer"
    assert jwt.get_unverified_header(token)["kid"] == "KEY1234567"
    claims = jwt.decode(token, key.public_key(), algorithms=["ES256"])
    assert claims["iss"] == "TEAM123456"


def test_fcm_delivery_end_to_end_on_loopback(tmp_path: Path) -> None:
    """A device with an FCM token: the server gets an OAuth token with the service account
    (google-auth, JWT bearer grant) and calls `messages:send` with it."""
    service_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def reply(path: str, body: bytes) -> Any:
        if path == "/token":
            return {"access_token": "ya29.test", "expires_in": 3600, "token_type": "Bearer"}
        return {"name": "projects/demo/messages/1"}

    google = Receiver([], reply)
    account = {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "k1",
        "private_key": service_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "client_email": "push@demo.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{google.url}/token",
    }
    live = LiveServer(f"sqlite:///{tmp_path / 'fcm.db'}", push_fcm_url=google.url).start()
    try:
        tenant = live.create_tenant()

        async def configure(db: Db) -> None:
            from passgate.server.services.push.settings import configure

            await configure(db, tenant.id, fcm=account)

        live.run(configure)
        backend = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=live.api_url)
        device = AuthsignalSync(
            tenant.id, live.api_url, device_keys=DeviceKeyStore(tmp_path / "k.pem")
        )
        token = backend.track("wes", "enroll", {"scope": "add:authenticators"})["token"]
        assert device.push.add_credential(token, push_token="fcm-device-token").ok
        tracked = backend.track("wes", "signIn")
        deadline = time.monotonic() + 10
        while len(google.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        device.close()
        backend.session.close()
    finally:
        live.stop()
        google.close()
    (token_path, _, grant), (send_path, send_headers, send_body) = google.requests
    assert token_path == "/token"
    form = urllib.parse.parse_qs(grant.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = jwt.decode(
        form["assertion"][0],
        service_key.public_key(),
        algorithms=["RS256"],
        # google-auth always names Google's token endpoint as the audience.
        audience="https://oauth2.googleapis.com/token",
    )
    assert claims["iss"] == account["client_email"]
    assert "firebase.messaging" in claims["scope"]
    assert send_path == "/v1/projects/demo/messages:send"
    assert send_headers["Authorization"] == "Bearer ya29.test"
    message = json.loads(send_body)["message"]
    assert message["token"] == "fcm-device-token"
    assert message["data"]["challengeId"] == tracked["challenge_id"]
