"""Delivering outbox messages (webhooks, email and SMS) at least once, from any
process (docs/architecture.md#the-outbox).

A message is written by `enqueue` in the same transaction as the event that causes it, so the
event and its delivery commit (or roll back) together, and a restart loses nothing. Every
server process runs an `Outbox`: it sends what this process enqueued as soon as the
transaction commits (`wake`), and every `PASSGATE_OUTBOX_POLL_SECONDS` it looks for messages
that are due: retries, and messages another process enqueued or left behind when it died
(their lease has run out). Sending claims the message under a lease first, so while the lease
holds no other process sends it; a process that dies mid-send leaves it to be sent again, so a
receiver may see a message twice and deduplicates on its id (the event id).

A try that fails is retried after `PASSGATE_OUTBOX_RETRY_BASE_SECONDS`, twice as long after
each further failure (up to `PASSGATE_OUTBOX_RETRY_MAX_SECONDS`), each wait between half and
all of that (jitter, so receivers coming back are not hit by every message at once). After
`PASSGATE_OUTBOX_MAX_ATTEMPTS` tries the message is given up: marked failed with the last
error, logged, and recorded in the audit log ("system.outbox.failed")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import structlog

from passgate.server.services import audit
from passgate.server.settings import Settings
from passgate.server.store import outbox as store
from passgate.server.store.db import Db, Engines
from passgate.server.store.outbox import OutboxRow
from passgate.server.store.tables import utcnow

log = structlog.get_logger("passgate.outbox")

WEBHOOK = "webhook"
FAILED = "system.outbox.failed"
# At most this many sends in flight per process, and claimed by one statement.
BATCH_SIZE = 50
_JITTER = random.Random()

Sender = Callable[[OutboxRow], Awaitable[None]]


class DeliveryFailed(Exception):
    """One try that did not go through, and why (kept as the message's `last_error`). A
    `permanent` failure (nowhere left to send it) is not retried."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


async def enqueue(
    db: Db,
    *,
    id: str,
    tenant_id: str,
    kind: str,
    destination: str,
    payload: str,
    wake: Callable[[], None] | None = None,
) -> None:
    """Add a message to `db`'s transaction. `id` is what the receiver deduplicates on (a
    webhook's event id). `wake` (an `Outbox.wake`) runs once the transaction has committed."""
    await store.enqueue(
        db,
        id=id,
        tenant_id=tenant_id,
        kind=kind,
        payload=payload,
        destination=destination,
        now=utcnow(),
    )
    if wake is not None:
        db.after_commit(wake)


def retry_delay(
    attempts: int, *, base: float, maximum: float, rng: random.Random = _JITTER
) -> float:
    """Seconds before the next try, after `attempts` tries failed: base x 2^(attempts-1),
    at most `maximum`, times a random factor between 0.5 and 1."""
    exponent = min(max(attempts - 1, 0), 32)
    return min(base * 2.0**exponent, maximum) * rng.uniform(0.5, 1.0)


def process_name() -> str:
    """Who holds a lease: host, process id and a random part (process ids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Outbox:
    """The outbox deliverer of one server process (see the module docstring). `senders` maps a
    message kind to what sends one message (raising `DeliveryFailed` when it does not)."""

    def __init__(
        self,
        engines: Engines,
        settings: Settings,
        senders: Mapping[str, Sender],
        *,
        owner: str | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._engines = engines
        self._senders = dict(senders)
        self._poll = settings.outbox_poll_seconds
        self._base = settings.outbox_retry_base_seconds
        self._max_delay = settings.outbox_retry_max_seconds
        self._max_attempts = settings.outbox_max_attempts
        self._lease = timedelta(seconds=settings.outbox_lease_seconds)
        self._batch_size = batch_size
        self.owner = (owner or process_name())[:64]
        self._task: asyncio.Task[None] | None = None
        self._woken: asyncio.Event | None = None
        # The earliest retry this process scheduled: it looks again then, not a poll later.
        self._next_due: datetime | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def start(self) -> Outbox:
        if self._poll > 0:
            self._woken = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="passgate-outbox")
        return self

    def wake(self) -> None:
        """Something was enqueued (and committed) in this process: look now."""
        if self._woken is not None:
            self._woken.set()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop: let sends in flight finish for up to `timeout` seconds, cancel the rest, and
        give back the leases of messages not finished, so another process can send them at
        once (a message cut off mid-send may then reach its receiver twice)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._sending:
            _, pending = await asyncio.wait(set(self._sending), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            async with self._engines.transaction() as db:
                await store.release(db, owner=self.owner, now=utcnow())
        except Exception:
            log.exception("could not give back outbox leases; they run out by themselves")

    async def _run(self) -> None:
        assert self._woken is not None
        while True:
            self._woken.clear()
            try:
                claimed, room = await self._claim()
            except Exception:
                log.exception("outbox pass failed; trying again at the next poll")
                claimed, room = 0, 1
            if room and claimed >= room:
                continue  # a full batch: more may be due
            timeout = self._poll
            if self._next_due is not None:
                until = (self._next_due - utcnow()).total_seconds()
                timeout = min(timeout, max(until, 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout)

    async def _claim(self) -> tuple[int, int]:
        """Claim what is due, as many as there is room for beside the sends in flight, and
        start sending each in its own task (a slow receiver holds up nobody else's messages).
        Returns how many were claimed and how many there was room for."""
        room = self._batch_size - len(self._sending)
        if room <= 0:
            return 0, 0  # a send that finishes wakes the loop
        now = utcnow()
        if self._next_due is not None and self._next_due <= now:
            self._next_due = None
        # A read first: an idle poll takes no lock (nor, on SQLite, the write lock).
        async with self._engines.transaction(read_only=True) as db:
            if not await store.any_due(db, now):
                return 0, room
        async with self._engines.transaction() as db:
            claimed = await store.claim(
                db, owner=self.owner, now=now, lease_until=now + self._lease, limit=room
            )
        for message in claimed:
            task = asyncio.get_running_loop().create_task(self._send(message))
            self._sending.add(task)
            task.add_done_callback(self._sent)
        return len(claimed), room

    def _sent(self, task: asyncio.Task[None]) -> None:
        full = len(self._sending) >= self._batch_size
        self._sending.discard(task)
        if full:
            self.wake()

    async def _send(self, message: OutboxRow) -> None:
        try:
            await self._deliver(message)
        except Exception as exc:
            # The database failed us: the lease runs out and the message is sent again.
            log.error("outbox message left to its lease", id=message.id, error=repr(exc))

    async def _deliver(self, message: OutboxRow) -> None:
        sender = self._senders.get(message.kind)
        try:
            if sender is None:
                raise DeliveryFailed(f"no sender for {message.kind!r} messages", permanent=True)
            await sender(message)
        except DeliveryFailed as exc:
            error, permanent = exc.reason, exc.permanent
        except Exception as exc:
            log.exception("outbox sender failed", id=message.id, kind=message.kind)
            error, permanent = f"{type(exc).__name__}: {exc}", False
        else:
            async with self._engines.transaction() as db:
                await store.mark_delivered(db, message.id, utcnow())
            log.info("outbox delivered", id=message.id, kind=message.kind, attempt=message.attempts)
            return
        context = {"id": message.id, "kind": message.kind, "attempt": message.attempts}
        if permanent or message.attempts >= self._max_attempts:
            await self._give_up(message, error)
            log.error("outbox message given up", **context, error=error)
            return
        delay = retry_delay(message.attempts, base=self._base, maximum=self._max_delay)
        at = utcnow() + timedelta(seconds=delay)
        async with self._engines.transaction() as db:
            kept = await store.reschedule(
                db, message.id, owner=self.owner, next_attempt_at=at, error=error
            )
        if kept and (self._next_due is None or at < self._next_due):
            self._next_due = at
        log.warning("outbox delivery failed", **context, error=error, retry_in=round(delay, 3))

    async def _give_up(self, message: OutboxRow, error: str) -> None:
        async with self._engines.transaction() as db:
            if await store.mark_failed(db, message.id, owner=self.owner, now=utcnow(), error=error):
                await audit.record(
                    db,
                    audit.Actor(type="system", id=audit.SYSTEM),
                    FAILED,
                    target_type="outbox",
                    target_id=message.id,
                    tenant_id=message.tenant_id,
                    details={"kind": message.kind, "attempts": message.attempts, "error": error},
                )
