"""Deleting what nobody can use any more, on a schedule (docs/operator-guide.md#pruning).

Anyone with a tenant id can make challenges, and every sign-in leaves rows behind, so without
pruning the database grows for ever. What goes, and when:

- passkey and console challenges, rate-limit windows, console enrolment links and console
  sessions: `GRACE` after they expire (or a session is revoked), so a late caller still hears
  "expired" rather than "unknown";
- one-time code challenges and email magic links `GRACE` after they expire;
- spent challenges (`spent_challenges`: the digests of passkey challenges and push messages
  an answer used up) `GRACE` after the message expires: it is refused for its age from then
  on, and the grace covers processes whose clocks differ a little;
- spent push messages of the old table (`push_used_nonces`, no longer written) as soon as
  they expire;
- actions a client made with nothing but the tenant id (`Action.origin == "client"`) that are
  still waiting for a challenge `CLIENT_ACTION_LIFETIME` after they were made, longer than any
  challenge lives;
- every other action once its state has not changed for the retention period
  (`PASSGATE_ACTION_RETENTION_DAYS`, 90 days by default; 0 keeps them), with its push
  challenges; REVIEW_REQUIRED actions wait for their reviewer however old;
- outbox messages delivered or given up, `PASSGATE_OUTBOX_RETENTION_DAYS` after they were made;
- audit events: never.

Every server process has a `Pruner`, but of all of them only one prunes per
`PASSGATE_PRUNE_INTERVAL_SECONDS`: the one that takes the job's lease row (store/jobs.py); the
others wake again when it is next due (jittered, so they do not all ask at once). `passgate db
prune` runs it once, lease or not. Rows go in batches, each its own short transaction; two
passes at once would still be harmless (a row deleted twice is deleted once). A run that
deleted anything records a "system.pruned" audit event with its counts."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import datetime, timedelta

import structlog

from passgate.server.services import audit
from passgate.server.services.enums import ActionState
from passgate.server.services.outbox import process_name
from passgate.server.settings import Settings
from passgate.server.store import jobs
from passgate.server.store import pruning as store
from passgate.server.store.db import Engines
from passgate.server.store.tables import utcnow

# Its own generator: the module-level one is shared with everything else in the process (a
# test's data generator, for one, notices when another thread moves it).
_JITTER = random.Random()
log = structlog.get_logger("passgate.pruning")

GRACE = timedelta(minutes=5)
# Push challenges live at most an hour (a tenant setting), passkey challenges five minutes.
CLIENT_ACTION_LIFETIME = timedelta(hours=2)
BATCH_SIZE = 500
# At most this many batches of one kind per run; the next run carries on.
MAX_BATCHES = 200


async def prune(
    engines: Engines,
    *,
    action_retention_days: int,
    outbox_retention_days: int = 7,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> dict[str, int]:
    """Delete every kind of dead row once; returns how many of each kind went."""
    now = now or utcnow()
    cutoffs = store.Cutoffs(
        expired=now - GRACE,
        client_action=now - CLIENT_ACTION_LIFETIME,
        action=now - timedelta(days=action_retention_days) if action_retention_days else None,
        outbox=now - timedelta(days=outbox_retention_days),
    )
    kinds = store.targets(
        cutoffs, pending=ActionState.CHALLENGE_REQUIRED, review=ActionState.REVIEW_REQUIRED
    )
    counts = {target.name: await _prune(engines, target, batch_size) for target in kinds}
    # Only a valid device signature adds one, so there are never many: one DELETE.
    async with engines.transaction() as db:
        counts["pushUsedNonces"] = await store.delete_used_nonces(db, now)
    deleted = {name: count for name, count in counts.items() if count}
    if deleted:
        async with engines.transaction() as db:
            actor = audit.Actor(type="system", id=audit.SYSTEM)
            await audit.record(db, actor, audit.PRUNED, details=deleted)
    return counts


async def _prune(engines: Engines, target: store.Target, batch_size: int) -> int:
    total = 0
    for _ in range(MAX_BATCHES):
        async with engines.transaction() as db:
            deleted = await store.delete_batch(db, target, batch_size)
        total += deleted
        if deleted < batch_size:
            break
    return total


JOB = "prune"


class Pruner:
    """The background task of one server process: `prune` each interval that this process
    takes the job's lease (see the module docstring), until closed. A failed run is logged and
    tried again at the next interval; it never stops the server."""

    def __init__(self, engines: Engines, settings: Settings, *, owner: str | None = None) -> None:
        self._engines = engines
        self._interval = settings.prune_interval_seconds
        self._retention_days = settings.action_retention_days
        self._outbox_retention_days = settings.outbox_retention_days
        self._owner = (owner or process_name())[:64]
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Pruner:
        if self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="passgate-pruning")
        return self

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        # Half to one and a half intervals: processes started together drift apart.
        pause = self._interval * _JITTER.uniform(0.5, 1.5)
        while True:
            await asyncio.sleep(pause)
            pause = self._interval * _JITTER.uniform(0.9, 1.1)
            try:
                ran = await self.run_once()
            except Exception:
                log.exception("pruning failed; trying again at the next interval")
                continue
            if ran is None:
                # Another process took this interval's pass: look again once it is due.
                pause = await self._until_due() + self._interval * _JITTER.uniform(0.0, 0.1)
            elif any(ran.values()):
                log.info("pruned", **ran)

    async def run_once(self) -> dict[str, int] | None:
        """Prune if this process takes the job (its counts), or None if it was not due."""
        now = utcnow()
        async with self._engines.transaction() as db:
            taken = await jobs.take(
                db,
                JOB,
                owner=self._owner,
                now=now,
                next_due_at=now + timedelta(seconds=self._interval),
            )
        if not taken:
            return None
        return await prune(
            self._engines,
            action_retention_days=self._retention_days,
            outbox_retention_days=self._outbox_retention_days,
        )

    async def _until_due(self) -> float:
        async with self._engines.transaction(read_only=True) as db:
            due_at = await jobs.due_at(db, JOB)
        if due_at is None:
            return self._interval
        return min(max((due_at - utcnow()).total_seconds(), 0.0), self._interval * 2)
