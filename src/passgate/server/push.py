"""The app's one `PushHub` (long-poll wake-ups, deliveries), made at start-up, as a dependency."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request

from passgate.server.services.push.delivery import Deliverer
from passgate.server.services.push.hub import PushHub
from passgate.server.services.push.senders import Senders
from passgate.server.services.push.wakeups import (
    FallbackWakeups,
    PostgresWakeups,
    RedisWakeups,
    Wakeups,
)
from passgate.server.settings import Settings
from passgate.server.store.database import async_url, is_sqlite


def create_hub(settings: Settings) -> tuple[PushHub, httpx.AsyncClient]:
    http = httpx.AsyncClient(timeout=settings.push_delivery_timeout_seconds)
    deliverer = Deliverer(
        http=http,
        senders=Senders(http, settings.push_fcm_url),
        webhook_retry_delays=tuple(settings.push_webhook_retry_delays),
        source=settings.public_url or "passgate",
    )
    hub = PushHub(
        deliverer, wakeups=create_wakeups(settings), recheck_seconds=settings.push_recheck_seconds
    )
    return hub, http


def create_wakeups(settings: Settings) -> Wakeups | None:
    """Redis when it is configured; on PostgreSQL also LISTEN/NOTIFY, alone without Redis and
    as the fallback with it; on SQLite without Redis none (one host: waiters recheck)."""
    redis = RedisWakeups(settings.redis_url) if settings.redis_url else None
    postgres = (
        PostgresWakeups.from_url(settings.database_url)
        if not is_sqlite(async_url(settings.database_url))
        else None
    )
    if redis is not None and postgres is not None:
        return FallbackWakeups(redis, postgres)
    return redis or postgres


async def _hub(request: Request) -> PushHub:
    hub: PushHub = request.app.state.push_hub
    return hub


Hub = Annotated[PushHub, Depends(_hub)]
