"""Wake-ups across worker processes and hosts (docs/push.md#wake-ups-across-processes).

A committed push challenge wakes the long-polls of its user in this process directly (the
hub); every other process hears of it through one of these channels and wakes its own:

- `RedisWakeups`: Redis pub/sub, when `PASSGATE_REDIS_URL` is set.
- `PostgresWakeups`: PostgreSQL's LISTEN/NOTIFY, on PostgreSQL, through one dedicated
  connection per process (not a pooled one: a pooled connection is given back, and LISTEN
  lives on the connection).
- `FallbackWakeups`: both on PostgreSQL with Redis: published to Redis, and to PostgreSQL
  when Redis cannot be reached, so a Redis outage slows nothing down.

SQLite has neither (one host): a long-poll in another process on the same host notices a new
challenge at its next database recheck (`PASSGATE_PUSH_RECHECK_SECONDS`).

The message is sent *after* the challenge's transaction has committed (the hub publishes from
`Db.after_commit`), on the channel's own connection, not as `pg_notify` inside the request's
transaction: the request then runs no extra statement and holds its connection no longer, and
PostgreSQL serialises the commits of transactions that NOTIFY (one global lock on the
notification queue), which would queue every track behind every other. The cost: a process
that dies between its commit and its NOTIFY wakes no one, and the waiters find the challenge
at their next recheck. A lost subscription wakes every waiter of the process once it is back
(`wake_all`), since it may have missed messages meanwhile; they look in the database again."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = structlog.get_logger("passgate.push.wakeups")

CHANNEL = "passgate:push:wake"
# PostgreSQL channel names are identifiers: no colons.
PG_CHANNEL = "passgate_push_wake"
# The listening connection's name in pg_stat_activity (unless the URL names one).
APPLICATION_NAME = "passgate wake-ups"
# How long a lost connection waits before it tries again, and how often an idle PostgreSQL
# listener checks that its connection still answers (a peer that vanished without closing
# the connection is noticed within this time, not at TCP's keepalive hours later).
RETRY_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
# How long a Redis publish may take before the message goes to the fallback instead, and for
# how long after a failed one the fallback takes every message without trying Redis first.
PUBLISH_SECONDS = 0.5
FAILING_SECONDS = 5.0
CONNECT_SECONDS = 3.0

# What a lost or failing PostgreSQL connection raises.
PG_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

Wake = Callable[[str, str], None]
WakeAll = Callable[[], None]


class Wakeups(Protocol):
    async def start(self, wake: Wake, wake_all: WakeAll) -> None:
        """Listen (subscribed before this returns, so nothing published afterwards is
        missed) and call `wake(tenant_id, user_id)` for each message, in the background."""

    async def publish(self, tenant_id: str, user_id: str) -> bool:
        """Tell every process; False when the message could not be sent."""

    async def aclose(self) -> None: ...


def _encode(tenant_id: str, user_id: str) -> str:
    return json.dumps({"tenantId": tenant_id, "userId": user_id})


def _deliver(data: str | bytes, wake: Wake) -> None:
    try:
        event = json.loads(data)
        wake(str(event["tenantId"]), str(event["userId"]))
    except (ValueError, KeyError, TypeError):
        log.warning("malformed wake-up ignored")


class RedisWakeups:
    """Every process subscribes to one Redis channel (`CHANNEL`)."""

    def __init__(self, url: str) -> None:
        self._redis: Redis = Redis.from_url(url, socket_connect_timeout=CONNECT_SECONDS)
        self._listener: asyncio.Task[None] | None = None
        self._failing_until = 0.0

    async def start(self, wake: Wake, wake_all: WakeAll, *, required: bool = True) -> None:
        """Subscribe and keep listening, resubscribing after a lost connection. Not
        `required` (Redis beside PostgreSQL), a Redis that cannot be reached now is tried
        again in the background instead of stopping the start."""
        pubsub: PubSub | None = None
        try:
            pubsub = await self._subscribe()
        except (RedisError, OSError, TimeoutError) as exc:
            if required:
                raise
            log.warning("redis wake-ups not listening yet", error=str(exc))
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(pubsub, wake, wake_all)
        )

    async def _subscribe(self) -> PubSub:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await asyncio.wait_for(pubsub.subscribe(CHANNEL), CONNECT_SECONDS)
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        return pubsub

    async def _listen(self, pubsub: PubSub | None, wake: Wake, wake_all: WakeAll) -> None:
        while True:
            if pubsub is not None:
                try:
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            _deliver(message["data"], wake)
                except (RedisError, OSError) as exc:
                    log.warning("redis wake-ups interrupted", error=str(exc))
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                pubsub = None
            # The subscription ended (connection lost): subscribe again after a pause, and
            # have every waiter look again for what it may have missed meanwhile.
            await asyncio.sleep(RETRY_SECONDS)
            try:
                pubsub = await self._subscribe()
            except (RedisError, OSError, TimeoutError):
                continue
            wake_all()

    async def publish(self, tenant_id: str, user_id: str) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() < self._failing_until:
            return False  # failed moments ago: the fallback takes it without waiting
        try:
            # Bounded: a Redis that stopped answering (not one that refuses connections) would
            # otherwise hold the message, and PostgreSQL's fallback would never get it.
            await asyncio.wait_for(
                self._redis.publish(CHANNEL, _encode(tenant_id, user_id)), PUBLISH_SECONDS
            )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("redis wake-up not published", error=str(exc) or type(exc).__name__)
            self._failing_until = loop.time() + FAILING_SECONDS
            return False
        return True

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()


class PostgresWakeups:
    """LISTEN on `PG_CHANNEL` over one asyncpg connection of this process's own, reconnected
    when it is lost. Messages to send are queued and sent by one task, a burst of them in one
    statement (`pg_notify` over an array): the connection runs one statement at a time."""

    def __init__(self, connect_args: Mapping[str, Any]) -> None:
        self._connect_args = dict(connect_args)
        self._connection: Any = None
        self._lost = asyncio.Event()
        self._outbox: dict[str, None] = {}  # insertion-ordered set of payloads
        self._queued = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: Wake | None = None

    @classmethod
    def from_url(cls, database_url: str) -> PostgresWakeups:
        """Connect as the engine does (store/database.py): the same host, credentials and
        driver options from the URL."""
        from passgate.server.store.database import async_url

        url = async_url(database_url)
        return cls({**url.translate_connect_args(username="user"), **url.query})

    async def start(self, wake: Wake, wake_all: WakeAll) -> None:
        self._wake = wake
        try:
            await self._connect()
        except PG_ERRORS as exc:
            # Still start: the supervisor keeps trying, and waiters recheck meanwhile.
            log.warning("postgresql wake-ups not listening yet", error=str(exc))
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._supervise(wake_all)),
            loop.create_task(self._send()),
        ]

    async def _connect(self) -> None:
        options = dict(self._connect_args)
        named = options.pop("application_name", APPLICATION_NAME)
        settings = {"application_name": named, **options.pop("server_settings", {})}
        connection = await asyncpg.connect(**options, server_settings=settings, timeout=10)
        try:
            await connection.add_listener(PG_CHANNEL, self._notified)
        except BaseException:
            await connection.close()
            raise
        self._lost.clear()
        connection.add_termination_listener(lambda _connection: self._lost.set())
        self._connection = connection

    def _notified(self, connection: Any, pid: int, _channel: str, payload: str) -> None:
        # Our own messages come back too (sent on this connection): this process has woken
        # its waiters already.
        if self._wake is not None and pid != connection.get_server_pid():
            _deliver(payload, self._wake)

    async def _supervise(self, wake_all: WakeAll) -> None:
        """Watch the connection (a heartbeat while idle) and connect again when it is lost."""
        while True:
            if self._connection is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), HEARTBEAT_SECONDS)
                if not self._lost.is_set() and await self._alive():
                    continue
                log.warning("postgresql wake-ups interrupted; reconnecting")
                await self._drop()
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self._connect()
            except PG_ERRORS as exc:
                log.warning("postgresql wake-ups still not listening", error=str(exc))
                continue
            wake_all()  # messages sent while we were away are lost: everyone looks again
            if self._outbox:
                self._queued.set()

    async def _alive(self) -> bool:
        try:
            await asyncio.wait_for(self._connection.execute("SELECT 1"), 5)
        except PG_ERRORS:
            return False
        return True

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def publish(self, tenant_id: str, user_id: str) -> bool:
        """Queue the message; the sender sends it (and any others queued meanwhile) next."""
        if self._connection is None:
            return False
        self._outbox[_encode(tenant_id, user_id)] = None
        self._queued.set()
        return True

    async def _send(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            connection = self._connection
            if connection is None or not self._outbox:
                continue
            payloads, self._outbox = list(self._outbox), {}
            try:
                await connection.execute(
                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", PG_CHANNEL, payloads
                )
            except PG_ERRORS as exc:
                # Waiters elsewhere find these challenges at their next recheck.
                log.warning("postgresql wake-ups not sent", error=str(exc), count=len(payloads))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)


class FallbackWakeups:
    """Listen on both; publish to `primary` (Redis), and to `fallback` (PostgreSQL) when the
    primary cannot take the message."""

    def __init__(self, primary: RedisWakeups, fallback: PostgresWakeups) -> None:
        self.primary = primary
        self.fallback = fallback

    async def start(self, wake: Wake, wake_all: WakeAll) -> None:
        await self.fallback.start(wake, wake_all)
        await self.primary.start(wake, wake_all, required=False)

    async def publish(self, tenant_id: str, user_id: str) -> bool:
        if await self.primary.publish(tenant_id, user_id):
            return True
        return await self.fallback.publish(tenant_id, user_id)

    async def aclose(self) -> None:
        await self.primary.aclose()
        await self.fallback.aclose()
