"""The app's one `PushHub` (long-poll wake-ups, deliveries), made at start-up, as a dependency."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request

from passgate.server.services.push.delivery import Deliverer
from passgate.server.services.push.hub import PushHub
from passgate.server.services.push.senders import Senders
from passgate.server.settings import Settings


def create_hub(settings: Settings) -> tuple[PushHub, httpx.AsyncClient]:
    http = httpx.AsyncClient(timeout=settings.push_delivery_timeout_seconds)
    deliverer = Deliverer(
        http=http,
        senders=Senders(http, settings.push_fcm_url),
        webhook_retry_delays=tuple(settings.push_webhook_retry_delays),
        source=settings.public_url or "passgate",
    )
    wakeups = None
    if settings.redis_url:
        from passgate.server.services.push.wakeups import RedisWakeups

        wakeups = RedisWakeups(settings.redis_url)
    hub = PushHub(deliverer, wakeups=wakeups, recheck_seconds=settings.push_recheck_seconds)
    return hub, http


async def _hub(request: Request) -> PushHub:
    hub: PushHub = request.app.state.push_hub
    return hub


Hub = Annotated[PushHub, Depends(_hub)]
