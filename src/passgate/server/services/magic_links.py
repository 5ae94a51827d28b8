"""Email magic links (EMAIL_MAGIC_LINK): a link sent by email that proves the user holds the
mailbox, for enrolment (ML1) and as a challenge (ML2), finalized by the requesting app's poll
(ML3) (docs/magic-links.md).

- The link is `<public url>/magic-link/<link id>/<secret>`: the secret is 32 random bytes,
  kept only as a keyed MAC (services/code_macs.py, purpose "magic-link"); the id finds the row
  (and so the tenant whose key checks the MAC). It lives `LIFETIME` and works once.
- Opening it (GET) changes nothing, because mail scanners fetch links: the page shows a
  button whose POST, carrying the secret, confirms it. It may be opened on any device.
- Only the token of the action that asked for the link finalizes it: the poll reads the links
  of the token's own action, so another token (even the same user's) never sees them. The
  first poll after the confirmation settles the action (actions.complete_challenge) and gets
  the access token, once; a link that enrolled the address also verifies its authenticator
  then, and spends the token's leave to add one (services/enrolment.py).

An enrolment inserts the authenticator unverified (it does not count as enrolled until its
link is confirmed and finalized); enrolling the same address again reuses it."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from passgate.server.services import (
    actions,
    audit,
    code_macs,
    delivery,
    enrolment,
    otp,
    tenants,
    users,
)
from passgate.server.services.delivery import Messenger
from passgate.server.services.enums import ActionState, VerificationMethod
from passgate.server.services.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PassgateError,
)
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import authenticators as authenticator_store
from passgate.server.store import magic_links as store
from passgate.server.store import users as user_store
from passgate.server.store.actions import ActionRow
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.magic_links import CONFIRMED, PENDING, MagicLinkRow
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow

METHOD = VerificationMethod.EMAIL_MAGIC_LINK
PURPOSE = "magic-link"
PATH = "/magic-link"
LIFETIME = timedelta(minutes=10)
# Links one action may send: enough for a few "send it again", too few to flood a mailbox.
MAX_LINKS_PER_ACTION = 5
# What the poll answers for a link that can no longer be confirmed (expired, or finalized
# already): the browser SDK's word for a code in the same state.
EXPIRED = "CODE_INVALID_OR_EXPIRED"
# Bounds on what a link's path may carry, before anything is looked up.
MAX_LINK_ID = 36
MAX_SECRET = 64

Recheck = Callable[[datetime | None], Awaitable[tuple[TenantRow, TokenClaims | None]]]


class TooManyLinks(PassgateError):
    status_code = 429
    error_code = "too_many_requests"


@dataclass(frozen=True, kw_only=True, slots=True)
class Finalized:
    """ML3's answer: verified with the action's token once; `authenticator` when the link
    completed an enrolment."""

    is_verified: bool
    access_token: str | None = None
    failure_reason: str | None = None
    authenticator: AuthenticatorRow | None = None


LinkState = Literal["ready", "confirmed", "unknown", "expired", "used"]


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkView:
    """What the link's page shows: its state, and the tenant it is for (None when unknown)."""

    state: LinkState
    tenant: TenantRow | None = None
    email: str | None = None


def link_url(public_url: str, link_id: str, secret: str) -> str:
    return f"{public_url.rstrip('/')}{PATH}/{link_id}/{secret}"


async def enroll(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    messenger: Messenger,
    *,
    email: str,
    public_url: str,
    client_ip: str | None,
) -> AuthenticatorRow:
    """ML1: add the address as an unverified authenticator (or reuse the user's unverified
    one for it) and send it a link. The one enrolment rule is checked now and spent when
    the link is finalized."""
    _require_allowed(tenant)
    address = delivery.normalise_email(email)
    grant = await enrolment.check(db, tenant, claims)
    _refuse_decided(grant.action)
    authenticator = await store.find_authenticator(
        db, tenant.id, claims.user_id, METHOD.value, address
    )
    if authenticator is not None and authenticator.verified_at is not None:
        raise Conflict(
            "This email address is already enrolled for magic links: send a link with "
            "/client/challenge/email-magic-link."
        )
    # Counted before anything is written: a refused send keeps only its count.
    await _count_send(db, tenant, grant.action, address, client_ip)
    if authenticator is None:
        user = await user_store.ensure_user(db, tenant.id, claims.user_id)
        authenticator = await authenticator_store.insert_authenticator(
            db,
            {
                "tenant_id": tenant.id,
                "user_id": claims.user_id,
                "verification_method": METHOD.value,
                "email": address,
                "username": user.username,
                "display_name": user.display_name,
                "verified_at": None,
            },
        )
    await _send(db, tenant, messenger, grant.action, authenticator, public_url)
    return authenticator


async def challenge(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    messenger: Messenger,
    *,
    public_url: str,
    client_ip: str | None,
) -> str:
    """ML2: send a link to the user's verified magic-link address; its id is the challengeId."""
    _require_allowed(tenant)
    action = await actions.token_action(db, tenant, claims)
    _refuse_decided(action)
    authenticator = await store.find_verified(db, tenant.id, claims.user_id, METHOD.value)
    if authenticator is None or authenticator.email is None:
        raise NotFound(
            "The user has no verified email magic link authenticator: enroll an address "
            "with /client/user-authenticators/email-magic-link first.",
            error_code="authenticator_not_found",
        )
    await _count_send(db, tenant, action, authenticator.email, client_ip)
    return await _send(db, tenant, messenger, action, authenticator, public_url)


def _require_allowed(tenant: TenantRow) -> None:
    """403 when the tenant does not allow magic links (`allowedVerificationMethods`)."""
    allowed = users.allowed_methods(tenant)
    if METHOD.value not in allowed:
        raise Forbidden(
            f"{METHOD.value} is not one of this tenant's allowed verification methods "
            f"({', '.join(allowed)}).",
            error_code="method_not_allowed",
        )


def _refuse_decided(action: ActionRow) -> None:
    """A link cannot change an action its rules, backend or an earlier challenge decided
    against (finalize would refuse it too: say so before an email goes out)."""
    if action.state != ActionState.CHALLENGE_REQUIRED and action.state not in actions.VALID_STATES:
        raise Forbidden(f"The action is {action.state}; a challenge cannot change that.")


async def _count_send(
    db: Db, tenant: TenantRow, action: ActionRow, email: str, client_ip: str | None
) -> None:
    """Refuse a link over the action's allowance, then count it in the tenant's send limits,
    shared with one-time codes (otp.check_sends): a new action per link (a public sign-up
    form) must not mail an address without end."""
    if await store.count_action_links(db, action.id) >= MAX_LINKS_PER_ACTION:
        raise TooManyLinks(
            f"This action has sent {MAX_LINKS_PER_ACTION} links already: track a new action "
            "to send another."
        )
    await otp.check_sends(
        db, tenant, user_id=action.user_id, destination=email, client_ip=client_ip
    )


async def _send(
    db: Db,
    tenant: TenantRow,
    messenger: Messenger,
    action: ActionRow,
    authenticator: AuthenticatorRow,
    public_url: str,
) -> str:
    assert authenticator.email is not None
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    key = await code_macs.tenant_key(db, tenant)
    link_id = str(uuid.uuid4())
    now = utcnow()
    await store.insert_link(
        db,
        {
            "id": link_id,
            "tenant_id": tenant.id,
            "user_id": action.user_id,
            "action_id": action.id,
            "authenticator_id": authenticator.id,
            "email": authenticator.email,
            "link_mac": code_macs.mac(key, PURPOSE, secret),
            "state": PENDING,
            "created_at": now,
            "expires_at": now + LIFETIME,
        },
    )
    await messenger.send_magic_link(
        db,
        tenant,
        email=authenticator.email,
        url=link_url(public_url, link_id, secret),
        locale=action.locale,
    )
    return link_id


# The link's page -------------------------------------------------------------------------


async def open_link(db: Db, link_id: str, secret: str) -> LinkView:
    """What the link's page shows (GET): read only, so a mail scanner's fetch changes nothing."""
    found = await _find(db, link_id, secret)
    if isinstance(found, LinkView):
        return found
    link, tenant = found
    return _view(link, tenant, utcnow())


async def confirm_link(db: Db, link_id: str, secret: str) -> LinkView:
    """The page's button (POST, with the secret): pending and unexpired -> confirmed, once."""
    found = await _find(db, link_id, secret)
    if isinstance(found, LinkView):
        return found
    link, tenant = found
    now = utcnow()
    if await store.confirm(db, link.id, now):
        return LinkView(state="confirmed", tenant=tenant, email=link.email)
    return _view(await store.get_link(db, link.id) or link, tenant, now)


async def _find(db: Db, link_id: str, secret: str) -> tuple[MagicLinkRow, TenantRow] | LinkView:
    unknown = LinkView(state="unknown")
    if not link_id or len(link_id) > MAX_LINK_ID or not secret or len(secret) > MAX_SECRET:
        return unknown
    link = await store.get_link(db, link_id)
    tenant = None if link is None else await tenants.find_tenant(db, link.tenant_id)
    if link is None or tenant is None:
        return unknown
    key = await code_macs.tenant_key(db, tenant)
    if not code_macs.matches(key, PURPOSE, secret, link.link_mac):
        return unknown
    return link, tenant


def _view(link: MagicLinkRow, tenant: TenantRow, now: datetime) -> LinkView:
    if link.state != PENDING:
        state: LinkState = "used"
    elif link.expires_at <= now:
        state = "expired"
    else:
        state = "ready"
    return LinkView(state=state, tenant=tenant, email=link.email)


# The poll ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Polled:
    """What the poll's read found: the answer, or a confirmed link for `settle` to finalize,
    with the tenant and claims to do it with."""

    tenant: TenantRow
    claims: TokenClaims
    answer: Finalized | None = None
    link: MagicLinkRow | None = None


async def poll(reader: Db, tenant: TenantRow, claims: TokenClaims, recheck: Recheck) -> Polled:
    """ML3, polled every second: one indexed read on `reader` (a read-only unit of work, which
    on SQLite never waits for the writer). `recheck` (the caller's, client_api/auth.py) turns
    the tenant's version as read into the tenant and claims to decide with. A confirmed link
    comes back for `settle`, in the request's own (writing) unit of work."""
    if not claims.action_code or not claims.idempotency_key:
        raise InvalidRequest("The token is not bound to an action.")
    found = await store.action_links(
        reader, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
    )
    tenant, fresh = await recheck(found.tenant_version)
    assert fresh is not None
    now = utcnow()
    link = _current(found.links, now)
    if link is None:
        raise NotFound(
            "No magic link was sent for this token's action: send one with this token first.",
            error_code="challenge_not_found",
        )
    if link.state == PENDING and link.expires_at > now:
        return Polled(tenant=tenant, claims=fresh, answer=Finalized(is_verified=False))
    if link.state != CONFIRMED:
        answer = Finalized(is_verified=False, failure_reason=EXPIRED)
        return Polled(tenant=tenant, claims=fresh, answer=answer)
    return Polled(tenant=tenant, claims=fresh, link=link)


def _current(links: list[MagicLinkRow], now: datetime) -> MagicLinkRow | None:
    """The link that decides the answer: a confirmed one, else a live pending one, else the
    newest (links come newest first)."""
    confirmed = [link for link in links if link.state == CONFIRMED]
    live = [link for link in links if link.state == PENDING and link.expires_at > now]
    return next(iter(confirmed or live or links), None)


async def settle(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    link: MagicLinkRow,
    messenger: Messenger | None = None,
) -> Finalized:
    """Finalize a confirmed link, once: verify its authenticator (an enrolment's first
    verification spends the token's leave to add it, and `messenger` tells the user when
    that leave came from a recovery), settle the token's action, and answer the action's
    token."""
    assert claims.action_code is not None
    now = utcnow()
    authenticator = (
        None
        if link.authenticator_id is None
        else await store.get_authenticator(db, link.authenticator_id)
    )
    if authenticator is None:
        raise NotFound(
            "The authenticator this link was sent for has been removed.",
            error_code="authenticator_not_found",
        )
    enrolling = authenticator.verified_at is None
    # Checked before the action settles: a verification this link makes must not be what
    # grants leave to add the address it verifies.
    grant = await enrolment.check(db, tenant, claims) if enrolling else None
    if not await store.finalize(db, link.id, now):
        return Finalized(is_verified=False, failure_reason=EXPIRED)  # another poll won
    verified = await store.mark_verified(db, authenticator.id, now)
    assert verified is not None
    await store.mark_email_verified(db, tenant.id, claims.user_id, link.email)
    if grant is not None:
        await enrolment.use_up(
            db, grant, method=METHOD, authenticator_id=verified.id, messenger=messenger
        )
        await audit.authenticator_changed(
            db,
            audit.user_actor(claims.user_id),
            added=True,
            tenant_id=tenant.id,
            user_id=claims.user_id,
            authenticator_id=verified.id,
            verification_method=METHOD.value,
        )
    _action, token = await actions.complete_challenge(
        db,
        tenant,
        user_id=claims.user_id,
        action_code=claims.action_code,
        idempotency_key=claims.idempotency_key,
        method=METHOD,
        authenticator_id=verified.id,
    )
    return Finalized(
        is_verified=True, access_token=token, authenticator=verified if enrolling else None
    )
