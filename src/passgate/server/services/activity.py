"""Activity over the last days, hour by hour, for the whole server or one tenant: sign-ins
(actions a passkey completed, a passkey sign-up's included), and push approvals and
rejections (challenges decided on a device)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from passgate.server.services.enums import ActionState, VerificationMethod
from passgate.server.store import activity as store
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow

DAYS = 7
APPROVED, REJECTED = "approved", "rejected"


@dataclass(frozen=True, kw_only=True, slots=True)
class Activity:
    """Counts per hour, oldest first; `hours[i]` is the start of the hour counted at i."""

    hours: list[datetime]
    sign_ins: list[int]
    approvals: list[int]
    rejections: list[int]

    @property
    def peak(self) -> int:
        return max([*self.sign_ins, *self.approvals, *self.rejections, 0])


async def hourly(
    db: Db,
    tenant_id: str | None = None,
    *,
    days: int = DAYS,
    now: datetime | None = None,
) -> Activity:
    """The last `days` days up to the current hour (included): `days * 24` hours."""
    current = (now or utcnow()).replace(minute=0, second=0, microsecond=0)
    hours = [current - timedelta(hours=back) for back in range(days * 24 - 1, -1, -1)]
    since = hours[0]
    sign_ins = await store.settled_actions_per_hour(
        db,
        since=since,
        state=ActionState.CHALLENGE_SUCCEEDED.value,
        verification_method=VerificationMethod.PASSKEY.value,
        tenant_id=tenant_id,
    )
    decided = await store.decided_challenges_per_hour(db, since=since, tenant_id=tenant_id)
    keys = [hour.strftime("%Y-%m-%d %H") for hour in hours]
    return Activity(
        hours=hours,
        sign_ins=[sign_ins.get(key, 0) for key in keys],
        approvals=[decided.get((APPROVED, key), 0) for key in keys],
        rejections=[decided.get((REJECTED, key), 0) for key in keys],
    )
