"""The words for a challenge's states, one enum for passkeys and push (the tables, the
services and docs/push.md and docs/passkeys.md use these words), and the kinds of spent
challenge (`spent_challenges.kind`)."""

from __future__ import annotations

from enum import StrEnum


class ChallengeState(StrEnum):
    """A challenge's life.

    Push (`push_challenges.state`): `pending` until the device answers (or it expires, which
    is `pending` past `expires_at`); then `approved`, `rejected` (the device said no) or
    `failed` (approved with the wrong number). `refused`: recorded over the push-bombing
    limit, never shown to a device.

    Passkeys: a challenge is a signed message, not a row. It is `pending` from issue until
    an answer spends it, and `used` from then on (its digest is in `spent_challenges`),
    whatever the answer's outcome: a refused answer uses it up too. Past its expiry it is
    refused for its age, spent or not."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    FAILED = "failed"
    REFUSED = "refused"
    USED = "used"


class SpentKind(StrEnum):
    """What a row of `spent_challenges` was: a passkey ceremony's challenge or a push
    device's one-time message."""

    PASSKEY = "passkey"
    PUSH = "push"
