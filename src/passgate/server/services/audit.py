"""The one audit log: who (an admin, the API, a user or the system) changed what, when and
from where. Every change an operator makes, in the console or with the `passgate` command, is
recorded here in the same transaction as the change, so a change and its record commit (or
roll back) together. Events are never updated or deleted by Passgate.

Details hold what changed (old and new values of settings), never a secret: keys and webhook
secrets are recorded as "rotated", not by value."""

from __future__ import annotations

import getpass
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from passgate.server.services.errors import InvalidRequest
from passgate.server.store import audit as store
from passgate.server.store.audit import AuditEventRow
from passgate.server.store.db import Db, Engines
from passgate.server.store.tables import utcnow

ActorType = Literal["admin", "api", "user", "system"]
MAX_PAGE = 200

# Security events: what Passgate itself noticed, recorded with actor type "system". Their
# actions all start with "security.", so `action_prefix="security."` lists them.
SIGN_COUNT_REGRESSED = "security.passkey.sign_count_regressed"
CHALLENGE_BURNT = "security.passkey.challenge_burnt"
ORIGIN_REFUSED = "security.origin_refused"
RATE_LIMITED = "security.rate_limited"
# A pruning run that deleted something (services/pruning.py): how many rows of each kind.
PRUNED = "system.pruned"
SYSTEM = "passgate"
# Authenticators added and removed, by anyone: the user's app (Client API), the tenant's
# backend (Server API) or an admin (console). Details: authenticatorId, verificationMethod.
PASSKEY_ADDED = "user.passkey.added"
AUTHENTICATOR_ADDED = "user.authenticator.added"
PASSKEY_DELETED = "user.passkey.deleted"
AUTHENTICATOR_DELETED = "user.authenticator.deleted"
PASSKEY = "PASSKEY"
_EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Actor:
    """Who is acting, and from where: an IP address, or "cli" for the `passgate` command."""

    type: ActorType
    id: str | None
    source: str | None = None


def cli_actor() -> Actor:
    """The operator running a `passgate` command: an admin, named by their login name."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        login = None
    return Actor(type="admin", id=login, source="cli")


def api_actor() -> Actor:
    """The tenant's backend, calling the Server API with its secret key."""
    return Actor(type="api", id=None)


def user_actor(user_id: str) -> Actor:
    """A user, through their app or browser (the Client API, with a token or a device key)."""
    return Actor(type="user", id=user_id)


async def record(
    db: Db,
    actor: Actor,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    tenant_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEventRow:
    """Add one event to the current transaction. `action` is a dotted verb such as
    `tenant.origins.changed`; `details` must be JSON. (An ORM session is accepted while callers
    move to the Db: the event joins the session's transaction.)"""
    event = AuditEventRow(
        id=str(uuid.uuid4()),
        occurred_at=utcnow(),
        actor_type=actor.type,
        actor_id=actor.id[:320] if actor.id else None,
        action=action,
        target_type=target_type,
        target_id=target_id[:255] if target_id else None,
        tenant_id=tenant_id,
        source=actor.source[:255] if actor.source else None,
        details=dict(details) if details else None,
    )
    await store.insert_event(db, event)
    return event


async def security_event(
    db: Db | AsyncEngine,
    tenant_id: str | None,
    action: str,
    details: Mapping[str, Any] | None = None,
    *,
    source: str | None = None,
) -> None:
    """Record something Passgate noticed (`SIGN_COUNT_REGRESSED`, `CHALLENGE_BURNT`,
    `ORIGIN_REFUSED`, `RATE_LIMITED`, ...) with actor type "system".

    Given the request's Db, the event joins its transaction: it commits with a 200, and
    with an error whose `keep_changes` is set (a refused sign-in that still burns its
    challenge); a plain rollback drops it. Given an engine, it commits on its own at once: for
    code outside any request's transaction. Never call that from inside a request that has
    already written: on SQLite the second transaction would wait for the request's own lock.
    (An ORM session, while callers move to the Db, counts as the request's.)"""
    actor = Actor(type="system", id=SYSTEM, source=source)
    if not isinstance(db, AsyncEngine):
        await record(db, actor, action, tenant_id=tenant_id, details=details)
        return
    engines = Engines(db)
    async with engines.transaction() as own:
        await record(own, actor, action, tenant_id=tenant_id, details=details)


async def authenticator_changed(
    db: Db,
    actor: Actor,
    *,
    added: bool,
    tenant_id: str,
    user_id: str,
    authenticator_id: str,
    verification_method: str | None,
) -> None:
    """An authenticator added to or removed from a user (`PASSKEY_ADDED`, ...), in the
    change's transaction."""
    passkey = verification_method == PASSKEY
    if added:
        action = PASSKEY_ADDED if passkey else AUTHENTICATOR_ADDED
    else:
        action = PASSKEY_DELETED if passkey else AUTHENTICATOR_DELETED
    await record(
        db,
        actor,
        action,
        target_type="user",
        target_id=user_id,
        tenant_id=tenant_id,
        details={"authenticatorId": authenticator_id, "verificationMethod": verification_method},
    )


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """`{name: {"from": old, "to": new}}` for each value that differs: what an event's details
    say about a settings change."""
    return {
        name: {"from": before.get(name), "to": value}
        for name, value in after.items()
        if before.get(name) != value
    }


async def tenant_events(
    db: Db, tenant_id: str, *, before: str | None = None, limit: int = 50
) -> EventPage:
    """A page of one tenant's events, newest first: what the Server API and
    `passgate audit list` show."""
    if not tenant_id:
        raise InvalidRequest("a tenant id is needed")
    return await list_events(db, tenant_id=tenant_id, before=before, limit=limit)


@dataclass(frozen=True, kw_only=True, slots=True)
class EventPage:
    events: Sequence[AuditEventRow]
    # Pass as `before` for the next (older) page; None on the last page.
    next_cursor: str | None


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    occurred, _, event_id = cursor.partition("|")
    refusal = InvalidRequest("not a cursor of the audit log: pass a nextCursor as it was returned")
    try:
        when = datetime.fromisoformat(occurred)
        if when.tzinfo is None:
            raise refusal
        when = when.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise refusal from exc
    if not _EVENT_ID.fullmatch(event_id):
        raise refusal
    return when, event_id


async def list_events(
    db: Db,
    *,
    tenant_id: str | None = None,
    actor_id: str | None = None,
    action_prefix: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> EventPage:
    """A page of events, newest first, matching every given filter. `action_prefix` matches
    dotted verbs from their start (`tenant.` finds every tenant change)."""
    limit = max(1, min(limit, MAX_PAGE))
    found = await store.find_events(
        db,
        tenant_id=tenant_id or None,
        actor_id=actor_id or None,
        action_prefix=action_prefix or None,
        before=_parse_cursor(before) if before else None,
        limit=limit + 1,
    )
    if len(found) <= limit:
        return EventPage(events=found, next_cursor=None)
    last = found[limit - 1]
    # UTC written as "Z": no "+" for a hand-built URL to turn into a space.
    occurred = last.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return EventPage(events=found[:limit], next_cursor=f"{occurred}|{last.id}")
