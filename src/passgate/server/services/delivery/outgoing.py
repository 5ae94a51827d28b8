"""Email and SMS messages in the outbox: how one is written, and what every sender does
around the sending itself.

The payload holds the finished message (the code or link in it), so it is sealed under the
master key (services/secrets_box.py) with the message's id in the associated data: a copy of
the database without the master key shows no code, and a payload moved to another row does
not open. The row's `destination` is masked (`u***@example.com`, `+64***67`): enough for an
operator to tell messages apart, not a list of addresses. Delivered rows are deleted by the
pruner after `PASSGATE_OUTBOX_RETENTION_DAYS`; by then the code in them has long expired.

A message carries when it stops being useful (`expiresAt`, the code's or link's expiry): a
retry after that gives it up instead of sending a dead code. A message given up (refused for
good, expired, or out of tries) is recorded in the audit log as `delivery.email.failed` or
`delivery.sms.failed` with the masked destination and the reason, beside the outbox's own
`system.outbox.failed`.

A tenant set to the development-only log transport has its messages written to the server's
log at the point where they would be sent (dev_log.py): everything before that is the same."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from passgate.server.services import audit, secrets_box
from passgate.server.services.delivery import config, dev_log
from passgate.server.services.outbox import DeliveryFailed, enqueue
from passgate.server.store import tenants
from passgate.server.store.db import Db, Engines
from passgate.server.store.outbox import OutboxRow
from passgate.server.store.tenants import TenantRow

log = structlog.get_logger("passgate.delivery")

EMAIL = "email"
SMS = "sms"


def _field(kind: str, message_id: str) -> str:
    return f"outbox.{kind}.{message_id}"


async def put(
    db: Db,
    tenant: TenantRow,
    *,
    kind: str,
    masked_destination: str,
    data: Mapping[str, Any],
    wake: Callable[[], None] | None,
) -> str:
    """Add one message to `db`'s transaction, sealed; returns its id."""
    message_id = str(uuid.uuid4())
    sealed = secrets_box.seal(
        json.dumps(data, separators=(",", ":")), tenant_id=tenant.id, field=_field(kind, message_id)
    )
    await enqueue(
        db,
        id=message_id,
        tenant_id=tenant.id,
        kind=kind,
        destination=masked_destination,
        payload=sealed,
        wake=wake,
    )
    return message_id


class Sender:
    """The part every kind shares: open the payload, find the tenant, refuse an expired
    message, call `send`, and audit a message given up. Subclasses implement `send`."""

    kind = ""

    def __init__(self, engines: Engines, *, max_attempts: int) -> None:
        self._engines = engines
        self._max_attempts = max_attempts

    async def send(self, tenant: TenantRow, data: Mapping[str, Any], message: OutboxRow) -> None:
        raise NotImplementedError

    async def __call__(self, message: OutboxRow) -> None:
        try:
            await self._attempt(message)
        except DeliveryFailed as exc:
            if exc.permanent or message.attempts >= self._max_attempts:
                await self._given_up(message, exc.reason)
            raise

    async def _attempt(self, message: OutboxRow) -> None:
        try:
            data = self._open(message)
            async with self._engines.transaction(read_only=True) as db:
                tenant = await tenants.get_tenant(db, message.tenant_id)
            if tenant is None:
                raise DeliveryFailed("the tenant no longer exists", permanent=True)
            expires_at = data.get("expiresAt")
            if isinstance(expires_at, int | float) and time.time() > expires_at:
                raise DeliveryFailed("it expired before it could be sent", permanent=True)
            if config.logs(tenant, self.kind):
                dev_log.write(self.kind, data, tenant_id=tenant.id, message_id=message.id)
            else:
                await self.send(tenant, data, message)
        except DeliveryFailed:
            raise
        except Exception as exc:
            # Unforeseen (a bug, the database): tried again like any failure, and audited
            # like any failure when it is the last try.
            log.exception("delivery failed unexpectedly", id=message.id, kind=self.kind)
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc

    def _open(self, message: OutboxRow) -> dict[str, Any]:
        try:
            opened = secrets_box.open_sealed(
                message.payload, tenant_id=message.tenant_id, field=_field(self.kind, message.id)
            )
        except secrets_box.MasterKeyError as exc:
            raise DeliveryFailed(
                f"cannot open the message: {exc.description}", permanent=True
            ) from exc
        data = json.loads(opened)
        assert isinstance(data, dict)
        return data

    async def _given_up(self, message: OutboxRow, reason: str) -> None:
        try:
            async with self._engines.transaction() as db:
                tenant_exists = await tenants.get_tenant(db, message.tenant_id) is not None
                await audit.record(
                    db,
                    audit.Actor(type="system", id=audit.SYSTEM),
                    f"delivery.{self.kind}.failed",
                    target_type="outbox",
                    target_id=message.id,
                    tenant_id=message.tenant_id if tenant_exists else None,
                    details={
                        "destination": message.destination,
                        "attempts": message.attempts,
                        "error": reason[:500],
                    },
                )
        except Exception:
            log.exception("could not audit a message given up", id=message.id)
