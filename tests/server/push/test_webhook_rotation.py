"""Rotating a tenant's webhook secret with a grace period: during it, each `push.created`
carries two signatures (`t=...,v2=<new>,v2=<old>`), so a receiver still holding the old
secret accepts events, as does one holding the new; afterwards only the new one signs.

Authsignal's Python SDK 4.1.0 has no webhook module, so each `v2` is checked on its own the
way its newer `construct_event` does, and the whole header by Authsignal's Node SDK."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from authsignal.client import AuthsignalClient

from passgate.server.services.push import settings as push_settings
from passgate.server.services.push.webhooks import signature_header
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant
from tests.server.push.conftest import Device
from tests.server.push.test_delivery import InvalidSignatureError, Receiver, construct_event

Enroll = Callable[[Any, str], str]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver([])
    yield made
    made.close()


def rotate(server: LiveServer, tenant_id: str, grace_seconds: int) -> push_settings.PushSettings:
    async def work(db: Db) -> push_settings.PushSettings:
        return await push_settings.rotate_webhook_secret(db, tenant_id, grace_seconds=grace_seconds)

    return server.run(work)


def signatures(header: str) -> list[str]:
    return [part.split("=", 1)[1] for part in header.split(",") if part.startswith("v2=")]


def node_accepts(node_sdk: Path, secret: str, body: bytes, header: str) -> bool:
    result = subprocess.run(
        ["node", "webhook.mjs"],
        cwd=node_sdk,
        input=body,
        capture_output=True,
        timeout=60,
        env={**os.environ, "WEBHOOK_SECRET": secret, "WEBHOOK_SIGNATURE": header},
    )
    assert result.returncode == 0, result.stderr
    return "event" in json.loads(result.stdout)


def test_each_signature_is_checked_on_its_own() -> None:
    body = '{"type":"push.created"}'
    header = signature_header(["pg_whsec_new", "pg_whsec_old"], body)
    first, second = signatures(header)
    assert first != second
    timestamp = header.split(",")[0]
    for secret, signature in (("pg_whsec_new", first), ("pg_whsec_old", second)):
        construct_event(secret, body, f"{timestamp},v2={signature}")
    with pytest.raises(InvalidSignatureError):
        construct_event("pg_whsec_new", body, f"{timestamp},v2={second}")
    assert signature_header("pg_whsec_new", body, 5) == signature_header(["pg_whsec_new"], body, 5)


def test_old_and_new_secrets_verify_during_the_grace_period(
    server: LiveServer,
    tenant: Tenant,
    receiver: Receiver,
    configure: Any,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
    node_sdk: Path,
) -> None:
    old = configure(webhook_url=f"{receiver.url}/hook").webhook_secret
    assert old
    enroll(make_device(), "rita")
    rotated = rotate(server, tenant.id, grace_seconds=3600)
    new = rotated.webhook_secret
    assert new and new != old
    assert rotated.signing_secrets() == [new, old]

    authsignal.track("rita", "payment")
    assert receiver.received.wait(timeout=15)
    _, headers, body = receiver.requests[-1]
    header = headers["x-signature-v2"]
    new_signature, old_signature = signatures(header)
    timestamp = header.split(",")[0]
    # Each v2 on its own: the first is the new secret's, the second the old one's.
    construct_event(new, body.decode(), f"{timestamp},v2={new_signature}")
    construct_event(old, body.decode(), f"{timestamp},v2={old_signature}")
    assert node_accepts(node_sdk, new, body, header)
    assert node_accepts(node_sdk, old, body, header)
    assert not node_accepts(node_sdk, "pg_whsec_other", body, header)

    # The grace period over (as seen from an hour later), only the new secret signs.
    assert rotated.signing_secrets(now=time.time() + 3601) == [new]


def test_rotation_without_grace_signs_with_the_new_secret_only(
    server: LiveServer,
    tenant: Tenant,
    receiver: Receiver,
    configure: Any,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
) -> None:
    old = configure(webhook_url=f"{receiver.url}/hook").webhook_secret
    enroll(make_device(), "ravi")
    new = rotate(server, tenant.id, grace_seconds=0).webhook_secret
    assert new and new != old
    authsignal.track("ravi", "payment")
    assert receiver.received.wait(timeout=15)
    _, headers, body = receiver.requests[-1]
    assert len(signatures(headers["x-signature-v2"])) == 1
    construct_event(new, body.decode(), headers["x-signature-v2"])
    with pytest.raises(InvalidSignatureError):
        construct_event(str(old), body.decode(), headers["x-signature-v2"])
