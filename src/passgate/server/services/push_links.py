"""Push enrolment links: a short-lived, single-use link that lets one device add one push
authenticator for one user, shown as a QR code (docs/push-enrolment-links.md).

The link is `{public url}/push-enrolment#token=TOKEN`. TOKEN is an ordinary action token
that the device sends as the Bearer of the ordinary enrolment call (P2, `POST
/v1/client/user-authenticators/push`), so any Authsignal SDK can consume it once an app has
taken the token out of the link. What makes it safe to show on a screen:

- its action (code `push-enrolment`, tracked here, never by a backend) is scoped
  `add:authenticators`, and the one enrolment rule (services/enrolment.py) lets an action's
  token add one authenticator only: the second device is refused;
- the token carries the purpose `push-enrolment` (services/tokens.py), so every route but P2
  refuses it: it cannot enrol a passkey or an email, answer a challenge, open the hosted
  page or be redeemed by `/validate`;
- it expires after `LIFETIME_SECONDS`, whatever the tenant's token lifetime is;
- the token sits in the URL's fragment, which browsers never send: a phone that opens the
  link shows the landing page without the token reaching Passgate's logs.

Who makes one: an admin in the console, the backend through the Server API (both audited),
and the user on the hosted page with a token that may itself add an authenticator; that
token's leave is spent on the link (`create_for_token`), so it adds one authenticator either
way."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

import segno

from passgate.server.services import audit, enrolment
from passgate.server.services import tokens as token_service
from passgate.server.services.enrolment import EnrolmentRefused
from passgate.server.services.enums import ActionState
from passgate.server.services.errors import InvalidRequest
from passgate.server.services.push import devices
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import actions as action_store
from passgate.server.store import users as user_store
from passgate.server.store.db import Db
from passgate.server.store.tenants import TenantRow

ACTION_CODE = "push-enrolment"
LIFETIME_SECONDS = 600
# Where the link points, under Passgate's public URL; the token follows in the fragment.
PAGE_PATH = "/push-enrolment"
LINK_CREATED = "user.push_link.created"
NO_PUBLIC_URL = (
    "Push enrolment links need Passgate's public URL (PASSGATE_PUBLIC_URL): the link points "
    "there, and the device finds the API from it."
)


@dataclass(frozen=True, kw_only=True, slots=True)
class PushLink:
    user_id: str
    url: str
    token: str
    expires_at: int  # Unix seconds

    @property
    def expires_at_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)

    def qr_svg(self) -> str:
        return qr_svg(self.url)


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{PAGE_PATH}#{urlencode({'token': token})}"


def qr_svg(text: str) -> str:
    """An inline `<svg>` QR code of `text`, dark on white (readable on a dark page too)."""
    return str(segno.make(text, error="m").svg_inline(scale=4, light="#fff"))


async def create(
    db: Db, tenant: TenantRow, user_id: str, *, public_url: str | None, actor: audit.Actor
) -> PushLink:
    """A new link for `user_id` (made if unknown, as track does), audited as `actor`'s."""
    if not public_url:
        raise InvalidRequest(NO_PUBLIC_URL)
    user = await user_store.ensure_user(db, tenant.id, user_id)
    now = int(time.time())
    action = await action_store.insert_action(
        db,
        {
            "tenant_id": tenant.id,
            "user_id": user_id,
            "action_code": ACTION_CODE,
            "idempotency_key": str(uuid.uuid4()),
            # Nothing redeems it (`/validate` refuses the token); it records that enrolment
            # was allowed, and by whom the audit log says.
            "state": ActionState.ALLOW.value,
            "scope": enrolment.ADD_SCOPE,
            "origin": "server",
        },
    )
    assert action is not None  # a fresh idempotency key
    token = token_service.issue_token(
        tenant,
        user_id=user_id,
        action_code=ACTION_CODE,
        idempotency_key=action.idempotency_key,
        username=user.username,
        scope=enrolment.ADD_SCOPE,
        now=now,
        purpose=token_service.PUSH_ENROLMENT,
        lifetime_seconds=LIFETIME_SECONDS,
    )
    expires_at = now + LIFETIME_SECONDS
    await audit.record(
        db,
        actor,
        LINK_CREATED,
        target_type="user",
        target_id=user_id,
        tenant_id=tenant.id,
        details={"idempotencyKey": action.idempotency_key, "expiresAt": expires_at},
    )
    return PushLink(
        user_id=user_id, url=link_url(public_url, token), token=token, expires_at=expires_at
    )


async def create_for_token(
    db: Db, tenant: TenantRow, claims: TokenClaims, *, public_url: str | None
) -> PushLink:
    """A link made by the user with their own token (the hosted page): only when the one
    enrolment rule lets that token add an authenticator, and that leave is spent on the
    link, so the token and its link together add one authenticator."""
    if not public_url:
        raise InvalidRequest(NO_PUBLIC_URL)
    grant = await enrolment.check(db, tenant, claims)
    await enrolment.use_up(db, grant)
    return await create(
        db, tenant, claims.user_id, public_url=public_url, actor=audit.user_actor(claims.user_id)
    )


async def enroll(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    *,
    public_key: str,
    device_name: str | None,
    device_platform: str | None,
    push_token: str | None,
) -> devices.Device:
    """P2 with a link's token: `devices.enroll`, with the refusal in the link's own words."""
    try:
        return await devices.enroll(
            db,
            tenant,
            claims,
            public_key=public_key,
            device_name=device_name,
            device_platform=device_platform,
            push_token=push_token,
        )
    except EnrolmentRefused as exc:
        raise EnrolmentRefused(
            "This push enrolment link has already enrolled a device (or was withdrawn): "
            "make a new link to add another."
        ) from exc
