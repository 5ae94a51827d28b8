"""`push.created` webhooks, signed as Authsignal signs them (docs/wire.md#webhooks), so
Authsignal's `Webhook(secret).construct_event(body, header)` verifies them unchanged."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import structlog

from passgate.server.store.actions import ActionRow as Action
from passgate.server.store.push import PushChallengeRow as PushChallenge
from passgate.server.store.push import PushDeviceRow as PushDevice
from passgate.server.store.tables import utcnow

log = structlog.get_logger("passgate.push.webhook")

SIGNATURE_HEADER = "x-signature-v2"


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


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    secrets: str | Sequence[str],
    event: dict[str, Any],
    retry_delays: Sequence[float],
) -> bool:
    """POST the event until the receiver answers 2xx, waiting `retry_delays` between tries.
    Each try is signed afresh, so a late retry is not refused as stale."""
    body = json.dumps(event, separators=(",", ":"))
    for attempt, delay in enumerate([0.0, *retry_delays], start=1):
        await asyncio.sleep(delay)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secrets, body),
        }
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("webhook unreachable", url=url, attempt=attempt, error=str(exc))
            continue
        if response.is_success:
            return True
        log.warning("webhook refused", url=url, attempt=attempt, status=response.status_code)
    log.error("webhook given up", url=url, event_id=event["id"])
    return False
