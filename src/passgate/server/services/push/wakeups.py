"""Wake-ups across worker processes through Redis pub/sub (optional: `PASSGATE_REDIS_URL`).

Every process subscribes to one channel; a committed challenge is published there, and each
process wakes its own long-polls for that user. Without Redis, a long-poll in another process
notices the challenge at its next database recheck instead."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = structlog.get_logger("passgate.push.wakeups")

CHANNEL = "passgate:push:wake"

Wake = Callable[[str, str], None]


class RedisWakeups:
    def __init__(self, url: str) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._listener: asyncio.Task[None] | None = None

    async def start(self, wake: Wake) -> None:
        """Subscribe (before returning, so nothing published afterwards is missed) and keep
        listening in the background, resubscribing after a lost connection."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(CHANNEL)
        self._listener = asyncio.get_running_loop().create_task(self._listen(pubsub, wake))

    async def _listen(self, pubsub: PubSub, wake: Wake) -> None:
        while True:
            try:
                async for message in pubsub.listen():
                    self._deliver(message, wake)
            except (RedisError, OSError) as exc:
                log.warning("redis wake-ups interrupted", error=str(exc))
            # The subscription ended (connection lost): resubscribe after a pause.
            await asyncio.sleep(1)
            with contextlib.suppress(RedisError, OSError):
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(CHANNEL)

    @staticmethod
    def _deliver(message: dict[str, Any], wake: Wake) -> None:
        if message.get("type") != "message":
            return
        try:
            event = json.loads(message["data"])
            wake(str(event["tenantId"]), str(event["userId"]))
        except (ValueError, KeyError, TypeError):
            log.warning("malformed wake-up ignored")

    async def publish(self, tenant_id: str, user_id: str) -> None:
        try:
            await self._redis.publish(
                CHANNEL, json.dumps({"tenantId": tenant_id, "userId": user_id})
            )
        except (RedisError, OSError) as exc:
            log.warning("redis wake-up not published", error=str(exc))

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()
