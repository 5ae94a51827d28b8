"""Choosing how to tell a user's devices about a new challenge: the tenant's webhook, and APNs
or FCM for each device that registered a push token. Each becomes a background task."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from passgate.server.services.push import webhooks
from passgate.server.services.push.hub import Delivery
from passgate.server.services.push.senders import Senders
from passgate.server.services.push.settings import PushSettings
from passgate.server.store.actions import ActionRow as Action
from passgate.server.store.push import PushChallengeRow as PushChallenge
from passgate.server.store.push import PushDeviceRow as PushDevice

Send = Callable[[dict[str, Any], PushDevice, PushChallenge, Action], Awaitable[bool]]


@dataclass(kw_only=True)
class Deliverer:
    """The app-wide means of delivery, made once at start-up."""

    http: httpx.AsyncClient
    senders: Senders
    webhook_retry_delays: Sequence[float] = (1.0, 5.0, 30.0, 120.0)
    source: str = "passgate"

    def plan(
        self,
        tenant_id: str,
        settings: PushSettings,
        challenge: PushChallenge,
        action: Action,
        devices: Sequence[PushDevice],
    ) -> list[Delivery]:
        planned: list[Delivery] = []
        if settings.webhook_url and settings.webhook_secret:
            url, secrets = settings.webhook_url, settings.signing_secrets()
            event = webhooks.push_created(tenant_id, challenge, action, devices, self.source)

            async def webhook() -> None:
                await webhooks.deliver(self.http, url, secrets, event, self.webhook_retry_delays)

            planned.append(webhook)
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
        async def run() -> None:
            await send(config, device, challenge, action)

        return run
