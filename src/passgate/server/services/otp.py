"""One-time codes by email, SMS and WhatsApp (docs/one-time-codes.md): enrolment of an address
or number, a code to the user's enrolled one, and the answer, for the Client API (a user's
Bearer token) and for a backend (the Server API's /challenge, /verify and /claim).

- A code is 6 digits from `secrets`, valid for 10 minutes, answered once. It is stored only as
  a keyed MAC (services/code_macs.py) and compared in constant time.
- Each challenge takes at most 5 wrong answers: each one is counted by one conditional UPDATE
  (so racing wrong answers all count) and the fifth burns the challenge; the right code after
  that, or any later try, is refused too. A wrong, expired or burnt code is not an HTTP error:
  the answer is `isVerified: false` with a `failureReason`, as Authsignal's SDKs expect.
- A fresh code would buy five fresh guesses, so answers are also counted per user (a backend's
  code to no user: per destination) across all codes before they are checked, like
  authenticator app codes (services/guessable_codes.py): over 10 wrong in an hour, every answer
  is refused unchecked. A right answer takes its count back.
- Sends are limited per user, per destination, per client address and per tenant in fixed
  windows, and by a daily budget per tenant (`SendLimits`, counted like the Client API's rate
  limits: one atomic upsert per window, store/rate_limits.py); SMS and WhatsApp go only to the
  tenant's allowed country calling codes. A refusal is 429 `too_many_requests`: it keeps its
  count in the limit it is over (not in the others) and its audit event.
- An address or number enrolled by the Client API is an authenticator with no `verified_at`
  until its first code verifies: only then does it count as enrolled, through the one
  enrolment rule (services/enrolment.py), in the same request that settles the action."""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from passgate.server.services import (
    actions,
    audit,
    code_macs,
    enrolment,
    guessable_codes,
    tenants,
)
from passgate.server.services import users as user_service
from passgate.server.services.delivery import Messenger, addresses
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PassgateError,
)
from passgate.server.services.guessable_codes import GuessLimits
from passgate.server.services.rate_limits import client_network
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import authenticators as authenticator_store
from passgate.server.store import otp as store
from passgate.server.store import rate_limits as rate_limit_store
from passgate.server.store import users as user_store
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.otp import OtpChallengeRow as OtpChallengeRow
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow

PURPOSE = "otp"
CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 5
# Wrong answers across every code to one user (or, for a backend's code to no user, to one
# address or number) in an hour: a fresh code must not buy five fresh guesses without end.
GUESS_LIMITS = GuessLimits(
    purpose="otp-guess", per_action=MAX_ATTEMPTS, per_user=10, user_window_seconds=3600
)
# The longest code a verify accepts as input (longer than any code: it is compared, never
# stored).
MAX_CODE_INPUT = 32
CODE_INVALID_OR_EXPIRED = "CODE_INVALID_OR_EXPIRED"
MAX_ATTEMPTS_EXCEEDED = "MAX_ATTEMPTS_EXCEEDED"
# A backend's challenge with no action names this one when it is claimed.
DEFAULT_ACTION = "signIn"
# Audit events.
CHALLENGE_BURNT = "security.otp.challenge_burnt"
SENDS_LIMITED = "security.otp.sends_limited"

OTP_METHODS = (VerificationMethod.EMAIL_OTP, VerificationMethod.SMS, VerificationMethod.WHATSAPP)
# The authenticators a code by each method goes to: WhatsApp uses the user's phone.
_AUTHENTICATOR_METHODS = {
    VerificationMethod.EMAIL_OTP: [VerificationMethod.EMAIL_OTP.value],
    VerificationMethod.SMS: [VerificationMethod.SMS.value],
    VerificationMethod.WHATSAPP: [VerificationMethod.WHATSAPP.value, VerificationMethod.SMS.value],
}


class TooManyCodes(PassgateError):
    """A send over one of the limits: 429, and the count and audit event stand."""

    status_code = 429
    error_code = "too_many_requests"
    keep_changes = True


# Send limits ------------------------------------------------------------------------------

LIMITS_SETTING = "otpLimits"


@dataclass(frozen=True, kw_only=True, slots=True)
class SendLimits:
    """At most `per_user`, `per_destination`, `per_ip` and `per_tenant` codes sent in each
    window of `window_seconds`, and `daily_budget` codes a UTC day per tenant; 0 turns a
    limit off. A tenant's `otpLimits` setting overrides any of them."""

    per_user: int = 10
    per_destination: int = 5
    per_ip: int = 30
    per_tenant: int = 500
    window_seconds: int = 3600
    daily_budget: int = 1000

    FIELDS: ClassVar[dict[str, str]] = {
        "perUser": "per_user",
        "perDestination": "per_destination",
        "perIp": "per_ip",
        "perTenant": "per_tenant",
        "windowSeconds": "window_seconds",
        "dailyBudget": "daily_budget",
    }

    @classmethod
    def of(cls, tenant: TenantRow) -> SendLimits:
        configured = tenant.settings.get(LIMITS_SETTING)
        values: dict[str, int] = {}
        if isinstance(configured, Mapping):
            for wire, name in cls.FIELDS.items():
                value = configured.get(wire)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    values[name] = value
        limits = cls(**values)
        return limits if limits.window_seconds > 0 else cls(**{**values, "window_seconds": 3600})

    def wire(self) -> dict[str, int]:
        return {wire: getattr(self, name) for wire, name in self.FIELDS.items()}


async def set_limits(db: Db, tenant_id: str, changes: Mapping[str, int]) -> SendLimits:
    """Change some of a tenant's send limits (wire names, as in `SendLimits.FIELDS`)."""
    for name, value in changes.items():
        if name not in SendLimits.FIELDS:
            raise InvalidRequest(f"unknown send limit {name!r}: use {', '.join(SendLimits.FIELDS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(f"{name} must be a whole number, 0 or more, not {value!r}")
    if changes.get("windowSeconds") == 0:
        raise InvalidRequest("windowSeconds must be at least 1")
    tenant = await tenants.get_tenant(db, tenant_id)
    merged = {**SendLimits.of(tenant).wire(), **changes}
    saved = await tenants.save_settings(db, tenant_id, {**tenant.settings, LIMITS_SETTING: merged})
    return SendLimits.of(saved)


def _digest(text: str) -> str:
    """A bucket names no address: its first 128 bits of SHA-256 stand in."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _destination_digest(destination: str) -> str:
    """One mailbox in any case is one destination (mail servers ignore the case of
    addresses in practice), so a new spelling starts no fresh allowance."""
    return _digest(destination.lower())


async def check_sends(
    db: Db,
    tenant: TenantRow,
    *,
    user_id: str | None,
    destination: str,
    client_ip: str | None,
    now: datetime | None = None,
) -> None:
    """Count one send in each limit's window; `TooManyCodes` when one is over. A refused send
    keeps only its count in the limits it is over (the others take theirs back), and the
    first refusal of each limit in a window is recorded in the audit log."""
    limits = SendLimits.of(tenant)
    now = now or utcnow()
    epoch = now.timestamp()
    window = int(epoch // limits.window_seconds)
    window_end = (window + 1) * limits.window_seconds
    day = int(epoch // 86_400)
    day_end = (day + 1) * 86_400
    network = client_network(client_ip) if client_ip else None
    prefix = f"otp:{tenant.id}"
    # (bucket, limit, what it counts, end of its window), in the order refusals are named.
    counted: list[tuple[str, int, str, int]] = []
    if limits.per_destination:
        bucket = f"{prefix}:d:{window}:{_destination_digest(destination)}"
        counted.append((bucket, limits.per_destination, "destination", window_end))
    if limits.per_user and user_id is not None:
        bucket = f"{prefix}:u:{window}:{_digest(user_id)}"
        counted.append((bucket, limits.per_user, "user", window_end))
    if limits.per_ip and network is not None:
        bucket = f"{prefix}:ip:{window}:{_digest(network)}"
        counted.append((bucket, limits.per_ip, "ip", window_end))
    if limits.per_tenant:
        counted.append((f"{prefix}:t:{window}", limits.per_tenant, "tenant", window_end))
    if limits.daily_budget:
        counted.append((f"{prefix}:day:{day}", limits.daily_budget, "dailyBudget", day_end))
    hits: dict[str, int] = {}
    # One upsert per window end (at most two buckets each, as the store counts them).
    by_end: dict[int, list[str]] = {}
    for bucket, _limit, _scope, end in counted:
        by_end.setdefault(end, []).append(bucket)
    for end, buckets in by_end.items():
        expires_at = datetime.fromtimestamp(end, UTC)
        for start in range(0, len(buckets), rate_limit_store.MAX_BUCKETS):
            chunk = buckets[start : start + rate_limit_store.MAX_BUCKETS]
            hits.update(await rate_limit_store.count_hits(db, chunk, expires_at))
    over = [entry for entry in counted if hits.get(entry[0], 0) > entry[1]]
    if not over:
        return
    # A refused send sends nothing: the limits it is within take their hit back (else
    # hammering one address would spend the user's, the tenant's and the day's allowance).
    for bucket, limit, _scope, _end in counted:
        if hits.get(bucket, 0) <= limit:
            await rate_limit_store.uncount_hit(db, bucket)
    for bucket, limit, scope, _end in over:
        if hits[bucket] == limit + 1:
            details = {"limit": scope, "maximum": limit}
            await audit.security_event(db, tenant.id, SENDS_LIMITED, details, source=network)
    _bucket, limit, scope, end = over[0]
    raise TooManyCodes(
        f"{_describe(scope, limit, limits.window_seconds)} "
        f"Try again in {max(1, math.ceil(end - epoch))} s."
    )


def _describe(scope: str, limit: int, window_seconds: int) -> str:
    span = f"{window_seconds // 60} minutes" if window_seconds >= 120 else f"{window_seconds} s"
    return {
        "destination": f"Too many codes sent to this address or number "
        f"(at most {limit} in {span}).",
        "user": f"Too many codes sent to this user (at most {limit} in {span}).",
        "ip": f"Too many codes asked for from this address (at most {limit} in {span}).",
        "tenant": f"Too many codes sent for this tenant (at most {limit} in {span}).",
        "dailyBudget": f"This tenant's daily budget of {limit} codes is spent.",
    }[scope]


# Destinations -----------------------------------------------------------------------------


def is_phone(method: VerificationMethod) -> bool:
    return method in (VerificationMethod.SMS, VerificationMethod.WHATSAPP)


def normalise(tenant: TenantRow, method: VerificationMethod, text: str) -> str:
    """An address (EMAIL_OTP) or an E.164 number in the tenant's allowed countries."""
    if is_phone(method):
        return addresses.normalise_phone(text, addresses.allowed_country_codes(tenant))
    return addresses.normalise_email(text)


def require_allowed(tenant: TenantRow, method: VerificationMethod) -> None:
    """403 when the tenant does not allow this method (`allowedVerificationMethods`)."""
    if method.value not in user_service.allowed_methods(tenant):
        raise Forbidden(
            f"{method.value} is not one of this tenant's allowed verification methods "
            f"({', '.join(user_service.allowed_methods(tenant))}).",
            error_code="method_not_allowed",
        )


# Sending ----------------------------------------------------------------------------------


def _new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


async def _send(
    db: Db,
    tenant: TenantRow,
    messenger: Messenger,
    *,
    method: VerificationMethod,
    destination: str,
    locale: str | None,
    values: Mapping[str, Any],
) -> OtpChallengeRow:
    """Store a new challenge (its code as a MAC only) and enqueue the code. The caller has
    counted the send (`check_sends`) before writing anything else, so a refusal keeps
    nothing but its count."""
    key = await code_macs.tenant_key(db, tenant)
    code = _new_code()
    now = utcnow()
    row = await store.insert_challenge(
        db,
        {
            **values,
            "tenant_id": tenant.id,
            "method": method.value,
            "destination": destination,
            "code_mac": code_macs.mac(key, PURPOSE, code),
            "created_at": now,
            "expires_at": now + CODE_LIFETIME,
        },
    )
    await messenger.send_code(
        db, tenant, method=method, destination=destination, code=code, locale=locale
    )
    return row


# Answering --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """A code's answer: the challenge it verified, or why not."""

    challenge: OtpChallengeRow | None = None
    failure_reason: str | None = None


async def _answer(
    db: Db, tenant: TenantRow, challenge: OtpChallengeRow | None, code: str
) -> Answer:
    now = utcnow()
    if challenge is None:
        return Answer(failure_reason=CODE_INVALID_OR_EXPIRED)
    if challenge.state == store.BURNT:
        return Answer(failure_reason=MAX_ATTEMPTS_EXCEEDED)
    if challenge.state != store.PENDING or challenge.expires_at <= now:
        return Answer(failure_reason=CODE_INVALID_OR_EXPIRED)
    # Counted before it is checked, across the guesser's codes (services/guessable_codes.py).
    guessed = await guessable_codes.attempt(
        db,
        GUESS_LIMITS,
        tenant_id=tenant.id,
        user_id=challenge.user_id or f"destination:{_destination_digest(challenge.destination)}",
        action_id=challenge.id,
        now=now,
    )
    if guessed.refused:
        return Answer(failure_reason=MAX_ATTEMPTS_EXCEEDED)
    key = await code_macs.tenant_key(db, tenant)
    if code_macs.matches(key, PURPOSE, code.strip(), challenge.code_mac):
        verified = await store.verify(
            db, challenge.id, max_attempts=MAX_ATTEMPTS, now=now, claim_until=now + CODE_LIFETIME
        )
        if verified is not None:
            await guessable_codes.succeeded(db, guessed)
            return Answer(challenge=verified)
        return await _lost(db, tenant, challenge)
    counted = await store.count_wrong(db, challenge.id, MAX_ATTEMPTS)
    if counted is None:
        return await _lost(db, tenant, challenge)
    attempts, state = counted
    if state == store.BURNT and attempts == MAX_ATTEMPTS:
        details = {"challengeId": challenge.id, "method": challenge.method}
        await audit.security_event(db, tenant.id, CHALLENGE_BURNT, details)
    return Answer(failure_reason=CODE_INVALID_OR_EXPIRED)


async def _lost(db: Db, tenant: TenantRow, challenge: OtpChallengeRow) -> Answer:
    """Another answer changed the challenge meanwhile: say what it is now."""
    fresh = await store.get_challenge(db, tenant.id, challenge.id)
    burnt = fresh is not None and fresh.state == store.BURNT
    return Answer(failure_reason=MAX_ATTEMPTS_EXCEEDED if burnt else CODE_INVALID_OR_EXPIRED)


# Client API -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Verified:
    """A verify's result: with a token when the code was right; with the authenticator when
    the code completed its enrolment."""

    is_verified: bool
    failure_reason: str | None = None
    token: str | None = None
    enrolled: AuthenticatorRow | None = None


async def enroll(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    messenger: Messenger,
    *,
    method: VerificationMethod,
    destination: str,
    client_ip: str | None,
) -> AuthenticatorRow:
    """E1 / S1: an authenticator for the address or number, not verified yet (the user's
    unverified one of this method is reused), and a first code to it. The enrolment rule is
    checked now, to refuse early, and applied when the code verifies."""
    require_allowed(tenant, method)
    destination = normalise(tenant, method, destination)
    action = await actions.token_action(db, tenant, claims)
    await enrolment.check(db, tenant, claims)
    existing = await store.contact_authenticators(db, tenant.id, claims.user_id, [method.value])
    if any(
        row["verified_at"] is not None and destination in (row["email"], row["phone_number"])
        for row in existing
    ):
        raise Conflict(
            f"This {'number' if is_phone(method) else 'address'} is already enrolled for "
            f"{method.value}: send it a code with the challenge route instead."
        )
    await check_sends(
        db, tenant, user_id=claims.user_id, destination=destination, client_ip=client_ip
    )
    user = await user_store.ensure_user(db, tenant.id, claims.user_id)
    email = None if is_phone(method) else destination
    phone_number = destination if is_phone(method) else None
    unverified = next((row for row in existing if row["verified_at"] is None), None)
    if unverified is not None:
        await store.change_destination(db, unverified["id"], email=email, phone_number=phone_number)
        authenticator = AuthenticatorRow.of(
            {**unverified, "email": email, "phone_number": phone_number}
        )
    else:
        authenticator = await authenticator_store.insert_authenticator(
            db,
            {
                "tenant_id": tenant.id,
                "user_id": claims.user_id,
                "verification_method": method.value,
                "email": email,
                "phone_number": phone_number,
                "username": user.username,
                "display_name": user.display_name,
                "is_default": False,
                "verified_at": None,
            },
        )
    await _send(
        db,
        tenant,
        messenger,
        method=method,
        destination=destination,
        locale=action.locale or user.locale,
        values={
            "user_id": claims.user_id,
            "action_id": action.id,
            "authenticator_id": authenticator.id,
        },
    )
    return authenticator


async def challenge(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    messenger: Messenger,
    *,
    method: VerificationMethod,
    client_ip: str | None,
) -> OtpChallengeRow:
    """E2 / S2 / WA1: a code to the user's enrolled address or number (a verified one first;
    else the one being enrolled, so a resend during enrolment works too)."""
    require_allowed(tenant, method)
    action = await actions.token_action(db, tenant, claims)
    found = await store.contact_authenticators(
        db, tenant.id, claims.user_id, _AUTHENTICATOR_METHODS[method]
    )
    if not found:
        what = "a phone number" if is_phone(method) else "an email address"
        raise InvalidRequest(
            f"The user has no {what} enrolled for {method.value}: enrol one first.",
            error_code="authenticator_not_found",
        )
    authenticator = AuthenticatorRow.of(found[0])
    destination = authenticator.phone_number if is_phone(method) else authenticator.email
    assert destination is not None
    if is_phone(method):
        # The allow-list may have changed since the number was enrolled.
        destination = normalise(tenant, method, destination)
    await check_sends(
        db, tenant, user_id=claims.user_id, destination=destination, client_ip=client_ip
    )
    user = await user_store.get_user(db, tenant.id, claims.user_id)
    return await _send(
        db,
        tenant,
        messenger,
        method=method,
        destination=destination,
        locale=action.locale or (user.locale if user else None),
        values={
            "user_id": claims.user_id,
            "action_id": action.id,
            "authenticator_id": authenticator.id,
        },
    )


async def verify(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    *,
    method: VerificationMethod,
    code: str,
) -> Verified:
    """E3 / S3 / WA2: answer the newest code sent for the token's action by this method."""
    require_allowed(tenant, method)
    action = await actions.token_action(db, tenant, claims)
    latest = await store.latest_for_action(db, action.id, method.value)
    answer = await _answer(db, tenant, latest, code)
    if answer.challenge is None:
        return Verified(is_verified=False, failure_reason=answer.failure_reason)
    verified = answer.challenge
    assert verified.authenticator_id is not None
    authenticator = await _authenticator(db, tenant, claims.user_id, verified.authenticator_id)
    now = utcnow()
    if authenticator.verified_at is None:
        # Its first code: the enrolment rule, its use-up and the action's settlement.
        _settled, token = await enrolment.add_and_settle(
            db, tenant, claims, method=method, authenticator_id=authenticator.id
        )
        # What the code proved is the address it went to: enrolling again meanwhile may have
        # changed the unverified authenticator's.
        phone = is_phone(VerificationMethod(authenticator.verification_method))
        await store.change_destination(
            db,
            authenticator.id,
            email=None if phone else verified.destination,
            phone_number=verified.destination if phone else None,
        )
        enrolled = AuthenticatorRow.of(
            await store.mark_authenticator_verified(db, authenticator.id, now)
        )
        await _contact_verified(db, tenant, claims.user_id, method, verified.destination, now)
        await audit.authenticator_changed(
            db,
            audit.user_actor(claims.user_id),
            added=True,
            tenant_id=tenant.id,
            user_id=claims.user_id,
            authenticator_id=authenticator.id,
            verification_method=authenticator.verification_method,
        )
        return Verified(is_verified=True, token=token, enrolled=enrolled)
    _settled, token = await actions.complete_challenge(
        db,
        tenant,
        user_id=claims.user_id,
        action_code=action.action_code,
        idempotency_key=action.idempotency_key,
        method=method,
        authenticator_id=authenticator.id,
    )
    await store.mark_authenticator_verified(db, authenticator.id, now)
    await _contact_verified(db, tenant, claims.user_id, method, verified.destination, now)
    return Verified(is_verified=True, token=token)


async def _authenticator(
    db: Db, tenant: TenantRow, user_id: str, authenticator_id: str
) -> AuthenticatorRow:
    found = await authenticator_store.find_authenticators(db, tenant.id, user_id)
    authenticator = next((row for row in found if row.id == authenticator_id), None)
    if authenticator is None:
        raise NotFound("The authenticator this code was sent for has been removed.")
    return authenticator


async def _contact_verified(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    method: VerificationMethod,
    destination: str,
    now: datetime,
) -> None:
    phone = is_phone(method)
    await store.mark_contact_verified(
        db,
        tenant.id,
        user_id,
        email=None if phone else destination,
        phone_number=destination if phone else None,
        now=now,
    )


# Server API -------------------------------------------------------------------------------


def method_for(
    verification_method: VerificationMethod | None,
    *,
    email: str | None,
    phone_number: str | None,
    sms_channel: str | None,
) -> VerificationMethod:
    """The method a backend's challenge asks for, or the one its destination implies."""
    if verification_method is not None:
        if verification_method not in OTP_METHODS:
            names = ", ".join(method.value for method in OTP_METHODS)
            raise InvalidRequest(
                f"{verification_method.value} is not a one-time code method: use {names}."
            )
        if verification_method == VerificationMethod.SMS and (sms_channel or "").upper() == (
            VerificationMethod.WHATSAPP.value
        ):
            return VerificationMethod.WHATSAPP
        return verification_method
    if phone_number:
        if (sms_channel or "").upper() == VerificationMethod.WHATSAPP.value:
            return VerificationMethod.WHATSAPP
        return VerificationMethod.SMS
    if email:
        return VerificationMethod.EMAIL_OTP
    raise InvalidRequest("Give verificationMethod, email or phoneNumber.")


async def start_for_backend(
    db: Db,
    tenant: TenantRow,
    messenger: Messenger,
    *,
    method: VerificationMethod,
    user_id: str | None,
    email: str | None,
    phone_number: str | None,
    action_code: str | None,
    idempotency_key: str | None,
    locale: str | None,
    ip_address: str | None,
) -> OtpChallengeRow:
    """POST /challenge: a code to the given address or number, else to the user's own."""
    require_allowed(tenant, method)
    given = phone_number if is_phone(method) else email
    user = None
    if user_id is not None:
        user = await user_store.get_user(db, tenant.id, user_id)
    if not given and user is not None:
        given = user.phone_number if is_phone(method) else user.email
    if not given:
        field = "phoneNumber" if is_phone(method) else "email"
        raise InvalidRequest(f"{method.value} needs {field} (or a user who has one).")
    destination = normalise(tenant, method, given)
    await check_sends(db, tenant, user_id=user_id, destination=destination, client_ip=ip_address)
    return await _send(
        db,
        tenant,
        messenger,
        method=method,
        destination=destination,
        locale=locale or (user.locale if user else None),
        values={
            "user_id": user_id,
            "action_code": action_code,
            "idempotency_key": idempotency_key or str(uuid.uuid4()),
        },
    )


async def verify_for_backend(
    db: Db, tenant: TenantRow, challenge_id: str, code: str
) -> tuple[Answer, OtpChallengeRow | None]:
    """POST /verify: the answer, and the challenge as it was found (None: no such one)."""
    found = await store.get_challenge(db, tenant.id, challenge_id)
    if found is not None and found.action_id is not None:
        # A Client API challenge is answered there, with its token.
        found = None
    answer = await _answer(db, tenant, found, code)
    if answer.challenge is not None and answer.challenge.user_id is not None:
        method = VerificationMethod(answer.challenge.method)
        await _contact_verified(
            db, tenant, answer.challenge.user_id, method, answer.challenge.destination, utcnow()
        )
    return answer, found


async def claim(
    db: Db,
    tenant: TenantRow,
    challenge_id: str,
    user_id: str,
    *,
    skip_verification_check: bool,
) -> tuple[str, VerificationMethod]:
    """POST /claim: the challenge is the user's now; its action (recorded under the
    challenge's action code and key) is settled and its token returned. Only a verified
    challenge may be claimed, unless the backend skips that check; a verified one also
    enrols its address or number for the user (verified), an unverified one records it
    unverified."""
    states = [store.VERIFIED, store.PENDING] if skip_verification_check else [store.VERIFIED]
    found = await store.get_challenge(db, tenant.id, challenge_id)
    if found is None or found.action_id is not None:
        raise NotFound("No such challenge.", error_code="challenge_not_found")
    if found.user_id is not None and found.user_id != user_id:
        raise Forbidden("The challenge belongs to another user.")
    claimed = await store.claim(db, tenant.id, challenge_id, user_id, states=states, now=utcnow())
    if claimed is None:
        if found.state in (store.PENDING, store.BURNT) and found.expires_at > utcnow():
            raise Forbidden(
                "The challenge has not been verified (pass skipVerificationCheck to claim it "
                "anyway).",
                error_code="challenge_not_verified",
            )
        raise InvalidRequest(
            "The challenge has expired or was claimed already.", error_code="challenge_expired"
        )
    method = VerificationMethod(claimed.method)
    was_verified = claimed.verified_at is not None
    authenticator_id = await _claimed_authenticator(
        db, tenant, user_id, method, claimed.destination, verified=was_verified
    )
    _action, token = await actions.complete_challenge(
        db,
        tenant,
        user_id=user_id,
        action_code=claimed.action_code or DEFAULT_ACTION,
        idempotency_key=claimed.idempotency_key,
        method=method,
        authenticator_id=authenticator_id,
    )
    if was_verified:
        await _contact_verified(db, tenant, user_id, method, claimed.destination, utcnow())
    return token, method


async def _claimed_authenticator(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    method: VerificationMethod,
    destination: str,
    *,
    verified: bool,
) -> str:
    """The user's authenticator for this method and destination, added if missing (verified
    when the code was; the backend's secret key vouches for the user)."""
    user = await user_store.ensure_user(db, tenant.id, user_id)
    phone = is_phone(method)
    for row in await store.contact_authenticators(db, tenant.id, user_id, [method.value]):
        if (row["phone_number"] if phone else row["email"]) == destination:
            if verified:
                await store.mark_authenticator_verified(db, row["id"], utcnow())
            return str(row["id"])
    now = utcnow()
    added = await authenticator_store.insert_authenticator(
        db,
        {
            "tenant_id": tenant.id,
            "user_id": user_id,
            "verification_method": method.value,
            "email": None if phone else destination,
            "phone_number": destination if phone else None,
            "username": user.username,
            "display_name": user.display_name,
            "is_default": False,
            "verified_at": now if verified else None,
            "last_verified_at": now if verified else None,
        },
    )
    if verified:
        await audit.authenticator_changed(
            db,
            audit.api_actor(),
            added=True,
            tenant_id=tenant.id,
            user_id=user_id,
            authenticator_id=added.id,
            verification_method=method.value,
        )
    return added.id


async def find_for_backend(
    db: Db,
    tenant: TenantRow,
    *,
    challenge_id: str | None,
    user_id: str | None,
    action_code: str | None,
    method: VerificationMethod | None,
) -> OtpChallengeRow | None:
    """GET /challenges: a backend's challenge by id, else the user's newest unexpired one."""
    if challenge_id:
        found = await store.get_challenge(db, tenant.id, challenge_id)
        if found is None or found.action_id is not None or found.expires_at <= utcnow():
            return None
        return found
    if not user_id:
        raise InvalidRequest("Give challengeId, or userId.")
    return await store.latest_for_user(
        db,
        tenant.id,
        user_id,
        utcnow(),
        action_code=action_code,
        method=method.value if method else None,
    )
