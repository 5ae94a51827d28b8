"""Codes a user types that an attacker could guess (an authenticator app's six digits, a
recovery code): how many wrong answers they get, and what a verify answers
(docs/totp-and-recovery-codes.md#attempts).

Six digits are one in a million; with three codes valid at any moment (a window of one step
either side) and unlimited tries they fall in hours. So every answer is counted before it is
checked, in two fixed-window counters of `rate_limit_windows` (store/rate_limits.py):

- per action: at most `per_action` wrong answers to one tracked action, then every further
  answer to it is refused unchecked ("MAX_ATTEMPTS_EXCEEDED");
- per user: at most `per_user` wrong answers in `user_window_seconds` across all actions,
  since a backend tracks a new action at each sign-in; the first refusal in a window is a
  security event.

Counting first, in one atomic upsert, means racing answers each see a different count, so no
burst of parallel guesses gets more than the limit checked. A right answer takes its count
back (`succeeded`): only wrong answers use up the allowance. On the wire a wrong or refused
answer is not an HTTP error but a 200 with `isVerified: false` and a `failureReason`, as
Authsignal's SDKs expect; its count commits with it."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from passgate.server.services import audit, single_use
from passgate.server.store import rate_limits as store
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow

CODE_INVALID = "CODE_INVALID_OR_EXPIRED"
MAX_ATTEMPTS = "MAX_ATTEMPTS_EXCEEDED"
# How long an action's count is kept: longer than any token of the action stays valid.
ACTION_COUNT_LIFETIME = timedelta(days=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class GuessLimits:
    """The limits of one kind of code; `purpose` names its counters."""

    purpose: str
    per_action: int
    per_user: int
    user_window_seconds: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    """One counted answer: its counters, and whether a limit refuses it unchecked."""

    buckets: tuple[str, ...]
    refused: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class CodeVerification:
    """What a verify answers: `token` (the action's new token) when verified, else why not;
    `authenticator` when this verify completed an enrolment."""

    is_verified: bool
    token: str | None = None
    failure_reason: str | None = None
    authenticator: AuthenticatorRow | None = None


def refused(reason: str) -> CodeVerification:
    return CodeVerification(is_verified=False, failure_reason=reason)


def _user_digest(tenant_id: str, user_id: str) -> str:
    """A fixed-length name for a user (a user id may be 255 characters, a bucket's name no
    longer than that in all)."""
    return hashlib.sha256(f"{tenant_id}\0{user_id}".encode()).hexdigest()[:32]


async def attempt(
    db: Db,
    limits: GuessLimits,
    *,
    tenant_id: str,
    user_id: str,
    action_id: str,
    now: datetime | None = None,
) -> Attempt:
    """Count one answer for the action and the user (one statement) before it is checked."""
    now = now or utcnow()
    epoch = now.timestamp()
    window = int(epoch // limits.user_window_seconds)
    window_end = datetime.fromtimestamp((window + 1) * limits.user_window_seconds, UTC)
    action_bucket = f"{limits.purpose}:action:{action_id}"
    user_bucket = f"{limits.purpose}:user:{_user_digest(tenant_id, user_id)}:{window}"
    # One expiry for both rows of the statement: the later of the two.
    expires_at = max(now + ACTION_COUNT_LIFETIME, window_end)
    hits = await store.count_hits(db, [action_bucket, user_bucket], expires_at)
    buckets = (action_bucket, user_bucket)
    if hits[user_bucket] > limits.per_user:
        if hits[user_bucket] == limits.per_user + 1:
            details = {
                "limit": f"{limits.purpose}:user",
                "userId": user_id,
                "maximum": limits.per_user,
                "windowSeconds": limits.user_window_seconds,
                "retryAfterSeconds": max(1, math.ceil(window_end.timestamp() - epoch)),
            }
            await single_use.security_event(db, tenant_id, audit.RATE_LIMITED, details)
        return Attempt(buckets=buckets, refused=True)
    return Attempt(buckets=buckets, refused=hits[action_bucket] > limits.per_action)


async def succeeded(db: Db, counted: Attempt) -> None:
    """A right answer: take its count back, so that only wrong answers count."""
    for bucket in counted.buckets:
        await store.uncount_hit(db, bucket)
