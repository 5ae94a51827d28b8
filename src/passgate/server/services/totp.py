"""Authenticator apps (AUTHENTICATOR_APP): time-based one-time passwords, RFC 6238
(docs/totp-and-recovery-codes.md).

The code is HMAC-SHA-1 of the number of 30-second steps since the Unix epoch, under a 20-byte
secret shared with the app, cut to six digits (RFC 4226's dynamic truncation). A code is
accepted for the step before and after the current one too (clocks drift, people are slow),
and once only: each app remembers the last step a code was accepted for, moved on by one
conditional UPDATE, so a code seen over a shoulder or replayed is refused, and two racing
uses of one code cannot both pass.

Enrolment (T1) is the one enrolment rule's (services/enrolment.py): the token must be allowed
to add an authenticator. It makes the secret, keeps it sealed under the master key
(services/secrets_box.py, re-sealed by `passgate keys rotate-master`), and adds the
authenticator with `verified_at` unset: it does not count as enrolled until the first code
verifies (T2), which uses the token's leave to add an authenticator up, then. A user has one
authenticator app: enrolling again replaces an unverified one at once, and a verified one
when the new one verifies.

Verifying (T2) counts the answer first (services/guessable_codes.py: five wrong answers per
action, and a per-user limit), then settles the token's action like every other method
(`actions.complete_challenge`) and answers its new token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import segno

from passgate.server.services import actions, audit, enrolment, guessable_codes, secrets_box
from passgate.server.services.enrolment import EnrolmentRefused, Grant
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import Forbidden, InvalidRequest
from passgate.server.services.guessable_codes import CodeVerification, GuessLimits
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import actions as action_store
from passgate.server.store import authenticators as authenticator_store
from passgate.server.store import totp as store
from passgate.server.store import users as user_store
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow
from passgate.server.store.totp import TotpRow

DIGITS = 6
PERIOD = 30
# Steps accepted either side of the current one.
WINDOW = 1
SECRET_BYTES = 20
ALGORITHM = "SHA1"
LIMITS = GuessLimits(purpose="totp", per_action=5, per_user=10, user_window_seconds=3600)
# Error-correction level of the QR code: M survives a smudged screen and keeps it small.
QR_ERROR = "m"
QR_SCALE = 4


# RFC 4226 / RFC 6238 ------------------------------------------------------------------------


def hotp(key: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226: HMAC-SHA-1 of the 8-byte big-endian counter, dynamically truncated to
    `digits` decimal digits."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    binary = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def time_step(at: float, period: int = PERIOD) -> int:
    """RFC 6238's T: whole periods since the Unix epoch."""
    return int(at // period)


def totp(key: bytes, at: float, digits: int = DIGITS, period: int = PERIOD) -> str:
    """RFC 6238: the code for the time `at` (Unix seconds)."""
    return hotp(key, time_step(at, period), digits)


def matching_step(key: bytes, code: str, at: float, last_step: int | None) -> int | None:
    """The step within the window around `at` whose code is `code` and that is later than
    `last_step` (a code is accepted once), or None. Every candidate is computed and compared
    in constant time, so timing tells nothing about which one matched."""
    current = time_step(at)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        same = hmac.compare_digest(hotp(key, step).encode(), code.encode())
        if same and found is None and (last_step is None or step > last_step):
            found = step
    return found


def normalise_code(code: str) -> str:
    """What people type: spaces or a dash in the middle are dropped."""
    return "".join(code.split()).replace("-", "")


# Secrets, URIs and QR codes -----------------------------------------------------------------


def encode_secret(key: bytes) -> str:
    """Base32 without padding, as authenticator apps take it."""
    return base64.b32encode(key).decode().rstrip("=")


def decode_secret(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def provisioning_uri(secret: str, *, issuer: str, account: str) -> str:
    """The `otpauth://totp/` URI apps read from the QR code (the key URI format apps
    share): label `issuer:account`, and the parameters spelled out."""
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": ALGORITHM,
            "digits": DIGITS,
            "period": PERIOD,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code."""
    return str(segno.make(uri, error=QR_ERROR, micro=False).svg_inline(scale=QR_SCALE))


def qr_png(uri: str) -> str:
    """The URI as a PNG QR code, a `data:image/png;base64,` URI (for an `<img src>`)."""
    return str(segno.make(uri, error=QR_ERROR, micro=False).png_data_uri(scale=QR_SCALE))


def _field(authenticator_id: str) -> str:
    return secrets_box.totp_field(authenticator_id)


# T1 -----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Enrolled:
    """A new, not yet verified, authenticator app and what the user's app needs."""

    authenticator: AuthenticatorRow
    secret: str
    uri: str


async def enroll(db: Db, tenant: TenantRow, claims: TokenClaims) -> Enrolled:
    """Start enrolling an authenticator app for the token's user (T1): the secret is shown
    now, once; the app counts as enrolled when its first code verifies."""
    await enrolment.check(db, tenant, claims)
    await user_store.ensure_user(db, tenant.id, claims.user_id)
    user = await store.lock_user(db, tenant.id, claims.user_id)
    await store.delete_pending_apps(db, tenant.id, claims.user_id)
    added = await authenticator_store.insert_authenticator(
        db,
        {
            "tenant_id": tenant.id,
            "user_id": claims.user_id,
            "verification_method": VerificationMethod.AUTHENTICATOR_APP.value,
            "username": user.username,
            "display_name": user.display_name,
            "verified_at": None,
        },
    )
    secret = encode_secret(secrets.token_bytes(SECRET_BYTES))
    await secrets_box.ready(db)
    await store.insert_secret(
        db,
        authenticator_id=added.id,
        tenant_id=tenant.id,
        secret=secrets_box.seal(secret, tenant_id=tenant.id, field=_field(added.id)),
    )
    account = user.username or user.email or claims.user_id
    uri = provisioning_uri(secret, issuer=tenant.rp_name, account=account)
    return Enrolled(authenticator=added, secret=secret, uri=uri)


# T2 -----------------------------------------------------------------------------------------


async def verify(db: Db, tenant: TenantRow, claims: TokenClaims, code: str) -> CodeVerification:
    """Check a code from the user's authenticator app (T2) and settle the token's action."""
    if not claims.action_code or not claims.idempotency_key:
        raise Forbidden("The token is not bound to an action: track one to verify a code.")
    found = await action_store.get_action_and_enrolled(
        db, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
    )
    if found is None:
        raise Forbidden("The token's action no longer exists: track a new one.")
    action = found[0]
    apps = await store.user_apps(db, tenant.id, claims.user_id)
    grant = _enrolment_grant(tenant, claims, found) if any(_pending(a) for a in apps) else None
    # An app not verified yet answers only for a token that may complete its enrolment.
    apps = [app for app in apps if not _pending(app) or grant is not None]
    if not apps:
        raise InvalidRequest(
            "The user has no authenticator app: enroll one first.", error_code="not_enrolled"
        )
    counted = await guessable_codes.attempt(
        db, LIMITS, tenant_id=tenant.id, user_id=claims.user_id, action_id=action.id
    )
    if counted.refused:
        return guessable_codes.refused(guessable_codes.MAX_ATTEMPTS)
    matched = await _accept(db, apps, normalise_code(code))
    if matched is None:
        return guessable_codes.refused(guessable_codes.CODE_INVALID)
    await guessable_codes.succeeded(db, counted)
    now = utcnow()
    completed = None
    if _pending(matched):
        completed = await store.mark_verified(db, matched.authenticator.id, now)
    if completed is not None:
        assert grant is not None
        await _complete_enrolment(db, tenant, claims, grant, completed)
    else:
        await store.note_verified(db, matched.authenticator.id, now)
    _action, token = await actions.complete_challenge(
        db,
        tenant,
        user_id=claims.user_id,
        action_code=claims.action_code,
        idempotency_key=claims.idempotency_key,
        method=VerificationMethod.AUTHENTICATOR_APP,
        authenticator_id=matched.authenticator.id,
    )
    return CodeVerification(is_verified=True, token=token, authenticator=completed)


def _pending(app: TotpRow) -> bool:
    return app.authenticator.verified_at is None


def _enrolment_grant(
    tenant: TenantRow, claims: TokenClaims, found: tuple[action_store.ActionRow, bool]
) -> Grant | None:
    try:
        return enrolment.decide(tenant, claims, found)
    except EnrolmentRefused:
        return None


async def _accept(db: Db, apps: list[TotpRow], code: str) -> TotpRow | None:
    """The app whose code this is, its step recorded as accepted; None when no app's is
    (or the code was accepted before, or a racing request took the step first)."""
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    now = time.time()
    for app in apps:
        key = decode_secret(
            secrets_box.open_sealed(
                app.secret,
                tenant_id=app.authenticator.tenant_id,
                field=_field(app.authenticator.id),
            )
        )
        step = matching_step(key, code, now, app.last_step)
        if step is not None and await store.accept_step(db, app.authenticator.id, step):
            return app
    return None


async def _complete_enrolment(
    db: Db, tenant: TenantRow, claims: TokenClaims, grant: Grant, added: AuthenticatorRow
) -> None:
    """The first code of a new app verified: it uses up the token's leave to add an
    authenticator, and replaces the user's older app (and any other not verified)."""
    await enrolment.use_up(db, grant)
    actor = audit.user_actor(claims.user_id)
    removed = await store.delete_other_apps(db, tenant.id, claims.user_id, keep=added.id)
    for authenticator_id in [found for found, verified in removed if verified]:
        await audit.authenticator_changed(
            db,
            actor,
            added=False,
            tenant_id=tenant.id,
            user_id=claims.user_id,
            authenticator_id=authenticator_id,
            verification_method=VerificationMethod.AUTHENTICATOR_APP.value,
        )
    await audit.authenticator_changed(
        db,
        actor,
        added=True,
        tenant_id=tenant.id,
        user_id=claims.user_id,
        authenticator_id=added.id,
        verification_method=VerificationMethod.AUTHENTICATOR_APP.value,
    )
