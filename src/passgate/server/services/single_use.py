"""A refused answer uses its challenge up (docs/wire.md#passkey-routes).

Ceremonies spend their challenge before they check the answer: passkey and push challenges
are signed messages (services/challenges.py) spent by inserting their digest into
`spent_challenges`, the console's by one conditional UPDATE. When the check then refuses, the
request's rollback would undo the spend with everything else, and the same challenge could be
answered again (a bad assertion, then a good one). So the checks run inside
`refusal_burns_challenge`: a savepoint undoes whatever they wrote, and the error is marked
`keep_changes`, so the request commits the spend (and nothing of the refused attempt) before
the error goes out (see database.py).

A request refused before the checks (the challenge is another browser's or another user's)
does not come here: its rollback leaves the challenge to its rightful owner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from passgate.server.services import audit
from passgate.server.services.errors import PassgateError
from passgate.server.store.db import Db

# Refusals that mean the answer came from a page the tenant does not list (or a frame of
# one): a phishing site relaying a ceremony looks like this.
ORIGIN_REFUSALS = frozenset({"origin_mismatch", "cross_origin_refused"})


async def security_event(
    db: Db,
    tenant_id: str | None,
    event: str,
    details: Mapping[str, Any],
    *,
    source: str | None = None,
) -> None:
    """An audit security event in the request's transaction (services/audit.py)."""
    await audit.security_event(db, tenant_id, event, details, source=source)


@asynccontextmanager
async def refusal_burns_challenge(
    db: Db, challenge_id: str, tenant_id: str | None
) -> AsyncIterator[None]:
    """Run an answer's checks and writes; if they refuse, undo the writes, keep the consume,
    and note the burnt challenge in the audit log (actor "system"; no tenant for the
    console's own ceremonies), and a refused origin as well."""
    try:
        async with db.savepoint():
            yield
    except PassgateError as exc:
        exc.keep_changes = True
        details = {"challengeId": challenge_id, "errorCode": exc.error_code}
        await security_event(db, tenant_id, audit.CHALLENGE_BURNT, details)
        if exc.error_code in ORIGIN_REFUSALS:
            details = {**details, "reason": exc.description}
            await security_event(db, tenant_id, audit.ORIGIN_REFUSED, details)
        raise
