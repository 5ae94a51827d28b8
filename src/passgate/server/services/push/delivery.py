"""Choosing how to tell a user's devices about a new challenge: the tenant's webhook, and APNs
or FCM for each device that registered a push token. The webhook goes into the outbox in the
challenge's transaction (services/outbox.py: sent at least once, retries survive a restart);
APNs and FCM calls become background tasks."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from passgate.server.services import metrics
from passgate.server.services.outbox import WEBHOOK, Outbox, enqueue
from passgate.server.services.push import webhooks
from passgate.server.services.push.hub import Delivery
from passgate.server.services.push.senders import Senders
from passgate.server.services.push.settings import PushSettings
from passgate.server.store.actions import ActionRow as Action
from passgate.server.store.db import Db
from passgate.server.store.push import PushChallengeRow as PushChallenge
from passgate.server.store.push import PushDeviceRow as PushDevice

Send = Callable[[dict[str, Any], PushDevice, PushChallenge, Action], Awaitable[bool]]


@dataclass(kw_only=True)
class Deliverer:
    """The app-wide means of delivery, made once at start-up."""

    http: httpx.AsyncClient
    senders: Senders
    # Unused since webhooks go through the outbox (its retry settings); still accepted.
    webhook_retry_delays: Sequence[float] = ()
    source: str = "passgate"
    # This process's outbox deliverer (set at start-up), woken when a webhook commits.
    outbox: Outbox | None = None

    async def plan(
        self,
        db: Db,
        tenant_id: str,
        settings: PushSettings,
        challenge: PushChallenge,
        action: Action,
        devices: Sequence[PushDevice],
    ) -> list[Delivery]:
        """Enqueue the webhook in `db`'s transaction; the APNs and FCM calls to start once it
        has committed."""
        planned: list[Delivery] = []
        if settings.webhook_url and settings.webhook_secret:
            event = webhooks.push_created(tenant_id, challenge, action, devices, self.source)
            await enqueue(
                db,
                id=event["id"],
                tenant_id=tenant_id,
                kind=WEBHOOK,
                destination=settings.webhook_url,
                payload=json.dumps(event, separators=(",", ":")),
                wake=self.outbox.wake if self.outbox is not None else None,
            )
        for device in devices:
            if not device.push_token:
                continue
            if device.device_platform == "ios" and settings.apns:
                apns = settings.apns
                planned.append(self._bind(self.senders.send_apns, apns, device, challenge, action))
            elif device.device_platform != "ios" and settings.fcm:
                fcm = settings.fcm
                planned.append(self._bind(self.senders.send_fcm, fcm, device, challenge, action))
        return planned

    @staticmethod
    def _bind(
        send: Send,
        config: dict[str, Any],
        device: PushDevice,
        challenge: PushChallenge,
        action: Action,
    ) -> Delivery:
        channel = "apns" if device.device_platform == "ios" else "fcm"

        async def run() -> None:
            ok = False
            try:
                ok = await send(config, device, challenge, action)
            finally:
                metrics.delivery(channel, ok)

        return run
