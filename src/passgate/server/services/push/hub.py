"""What happens after a challenge is committed: waiting long-polls wake up, and the device is
told (webhook, APNs, FCM) in background tasks that never hold up the request.

Wake-ups reach this process's long-polls directly, and other processes' through `wakeups`
(services/push/wakeups.py: Redis pub/sub, PostgreSQL LISTEN/NOTIFY, or both); without them
(SQLite) a long-poll served by another process notices a new challenge at its next database
recheck (every `recheck_seconds`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import structlog

from passgate.server.store.db import Db

if TYPE_CHECKING:
    from passgate.server.services.push.delivery import Deliverer
    from passgate.server.services.push.wakeups import Wakeups

log = structlog.get_logger("passgate.push")

Delivery = Callable[[], Awaitable[None]]
T = TypeVar("T")


class PushHub:
    """One per app: the long-poll waiters of this process and the delivery tasks in flight."""

    def __init__(
        self,
        deliverer: Deliverer | None = None,
        *,
        wakeups: Wakeups | None = None,
        recheck_seconds: float = 5.0,
    ) -> None:
        self.deliverer = deliverer
        self.wakeups = wakeups
        self.recheck_seconds = recheck_seconds
        self._waiters: defaultdict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @contextlib.contextmanager
    def listen(self, tenant_id: str, user_id: str) -> Iterator[asyncio.Event]:
        """An event set when a challenge for this user is committed. Listen *before* looking
        in the database, so a challenge created in between is not missed."""
        key = (tenant_id, user_id)
        wake = asyncio.Event()
        self._waiters[key].add(wake)
        try:
            yield wake
        finally:
            self._waiters[key].discard(wake)
            if not self._waiters[key]:
                del self._waiters[key]

    async def wait_for(
        self,
        db: Db,
        tenant_id: str,
        user_id: str,
        look: Callable[[], Awaitable[T | None]],
        wait: float,
    ) -> T | None:
        """`look()` now and, while it finds nothing, again when woken for this user or every
        `recheck_seconds`, until `wait` seconds have passed. Before each pause the session
        commits what the request did so far and gives its connection back to the pool: a
        waiting long-poll holds no connection (and, on SQLite, no lock). The looks after the
        first are read-only transactions."""
        with self.listen(tenant_id, user_id) as wake:
            found = await look()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while found is None and not self._closing and (remaining := deadline - loop.time()) > 0:
                await db.commit()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        wake.wait(), timeout=min(remaining, self.recheck_seconds)
                    )
                wake.clear()
                db.read_only()
                found = await look()
        return found

    def close_waiters(self) -> None:
        """The server is shutting down: every waiting long-poll looks once more and answers
        what it finds (usually nothing pending) now, and later ones do not wait, so devices poll
        again, at another process, instead of being cut off."""
        self._closing = True
        for waiters in self._waiters.values():
            for wake in waiters:
                wake.set()

    def wake(self, tenant_id: str, user_id: str) -> None:
        for wake in self._waiters.get((tenant_id, user_id), ()):
            wake.set()

    def wake_all(self) -> None:
        """Every waiter looks in the database again (wake-ups may have been missed)."""
        for waiters in self._waiters.values():
            for wake in waiters:
                wake.set()

    def after_commit(
        self, db: Db, tenant_id: str, user_id: str, deliveries: list[Delivery]
    ) -> None:
        """Once the session's transaction commits (and only then), wake the user's long-polls
        and start the deliveries. A rolled-back challenge is never announced."""

        def committed() -> None:
            self.wake(tenant_id, user_id)
            if self.wakeups is not None:
                self.spawn(lambda: self._publish(tenant_id, user_id))
            for delivery in deliveries:
                self.spawn(delivery)

        db.after_commit(committed)

    async def _publish(self, tenant_id: str, user_id: str) -> None:
        if self.wakeups is not None:
            await self.wakeups.publish(tenant_id, user_id)

    def spawn(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._run(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, delivery: Delivery) -> None:
        try:
            await delivery()
        except Exception:
            log.exception("push delivery failed")

    async def start(self) -> None:
        if self.wakeups is not None:
            await self.wakeups.start(self.wake, self.wake_all)

    async def aclose(self) -> None:
        await self.drain()
        if self.wakeups is not None:
            await self.wakeups.aclose()

    async def drain(self, timeout: float = 5.0) -> None:
        """Let deliveries in flight finish (tests, shutdown); cancel what is left after that."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
