"""`push.created` webhooks, signed as Authsignal signs them (docs/wire.md#webhooks), so
Authsignal's `Webhook(secret).construct_event(body, header)` verifies them unchanged. They go
through the outbox (services/outbox.py): enqueued with the challenge, sent at least once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from passgate.server.services import metrics
from passgate.server.services.outbox import DeliveryFailed
from passgate.server.services.push.settings import push_settings
from passgate.server.store import tenants
from passgate.server.store.actions import ActionRow as Action
from passgate.server.store.db import Engines
from passgate.server.store.outbox import OutboxRow
from passgate.server.store.push import PushChallengeRow as PushChallenge
from passgate.server.store.push import PushDeviceRow as PushDevice
from passgate.server.store.tables import utcnow

SIGNATURE_HEADER = "x-signature-v2"
# The event id (the body's `id`), the same on every try: receivers deduplicate on it.
EVENT_ID_HEADER = "x-passgate-event-id"
# Which try this is, from 1.
ATTEMPT_HEADER = "x-passgate-attempt"


def signature_header(secrets: str | Sequence[str], body: str, timestamp: int | None = None) -> str:
    """`t=<unix seconds>,v2=<base64 HMAC-SHA256(secret, "<t>.<body>") without "=">`, with one
    `v2` per secret (the current one first; the previous one during a rotation's grace
    period). Authsignal's verifiers accept an event when any `v2` matches their secret."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    signing = [secrets] if isinstance(secrets, str) else list(secrets)
    signatures = []
    for secret in signing:
        message = f"{signed_at}.{body}".encode()
        digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
        signatures.append(f"v2={base64.b64encode(digest).decode().rstrip('=')}")
    return ",".join([f"t={signed_at}", *signatures])


def push_created(
    tenant_id: str,
    challenge: PushChallenge,
    action: Action,
    devices: Sequence[PushDevice],
    source: str,
) -> dict[str, Any]:
    """The event: Authsignal's envelope, and enough in `data` to send the push yourself."""
    return {
        "version": 1,
        "type": "push.created",
        "id": str(uuid.uuid4()),
        "source": source,
        "time": utcnow().isoformat().replace("+00:00", "Z"),
        "tenantId": tenant_id,
        "data": {
            "challengeId": challenge.id,
            "userId": action.user_id,
            "actionCode": action.action_code,
            "idempotencyKey": action.idempotency_key,
            "verificationMethod": "PUSH",
            "expiresAt": int(challenge.expires_at.timestamp()),
            "devices": [
                {
                    "userAuthenticatorId": device.id,
                    "devicePlatform": device.device_platform,
                    "pushToken": device.push_token,
                }
                for device in devices
            ],
        },
    }


class WebhookSender:
    """Sends one `webhook` outbox message (services/outbox.py): the stored body as it is,
    signed afresh with the tenant's current secrets at each try (so a late retry is not
    refused as stale, and a rotated secret is used at once), with the event id in
    `X-Passgate-Event-Id` (it is the body's `id` too) and the try's number."""

    def __init__(self, engines: Engines, http: httpx.AsyncClient) -> None:
        self._engines = engines
        self._http = http

    async def __call__(self, message: OutboxRow) -> None:
        async with self._engines.transaction(read_only=True) as db:
            tenant = await tenants.get_tenant(db, message.tenant_id)
        if tenant is None:
            metrics.webhook_failed("tenant_gone")
            raise DeliveryFailed("the tenant no longer exists", permanent=True)
        secrets = push_settings(tenant).signing_secrets()
        if not secrets:
            metrics.webhook_failed("no_secret")
            raise DeliveryFailed("the tenant has no webhook secret any more", permanent=True)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secrets, message.payload),
            EVENT_ID_HEADER: message.id,
            ATTEMPT_HEADER: str(message.attempts),
        }
        try:
            response = await self._http.post(
                message.destination, content=message.payload, headers=headers
            )
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            metrics.webhook_failed("unreachable")
            raise DeliveryFailed(f"unreachable: {reason}") from exc
        if not response.is_success:
            metrics.webhook_failed(f"http_{response.status_code // 100}xx")
            raise DeliveryFailed(f"answered HTTP {response.status_code}")
        metrics.delivery("webhook", True)
