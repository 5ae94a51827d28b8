"""The console's passkey ceremonies, on Passgate's own relying party: its rp id is the host of
the public URL and the only origin accepted is the public origin. User verification and
discoverable credentials are required; attestation is not asked for.

Every challenge is single-use, expires after five minutes, and is bound by an HttpOnly cookie
to the browser that asked for it (the challenge keeps only the cookie value's hash). A refused
answer uses its challenge up as well (`single_use`)."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.services import aaguids, audit, relying_party, single_use
from passgate.server.services.admins import accounts
from passgate.server.services.errors import Conflict, Forbidden, InvalidRequest, PassgateError
from passgate.server.services.passkey_policy import PasskeyPolicy
from passgate.server.store import admins as store
from passgate.server.store.tables import Admin, AdminChallenge, AdminPasskey, utcnow

CHALLENGE_LIFETIME = timedelta(minutes=5)
REGISTRATION, AUTHENTICATION = "registration", "authentication"
RP_NAME = "Passgate admin"


class ConsoleUnavailable(PassgateError):
    """The console cannot offer passkeys with this server's configuration."""

    status_code = 503
    error_code = "console_unavailable"


@dataclass(frozen=True, kw_only=True, slots=True)
class CeremonyOptions:
    challenge_id: str
    options: dict[str, Any]


@lru_cache(maxsize=8)
def admin_policy(public_url: str | None) -> PasskeyPolicy:
    """The relying party admins' passkeys belong to, from `PASSGATE_PUBLIC_URL`."""
    host = urlsplit(public_url).hostname if public_url else None
    if not public_url or not host:
        raise ConsoleUnavailable(
            "The console needs PASSGATE_PUBLIC_URL, the address browsers reach it at."
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise ConsoleUnavailable(
            f"Passkeys need a host name, not an IP address: set PASSGATE_PUBLIC_URL to a name "
            f"for {host} (http://localhost:PORT on this machine)."
        )
    parts = urlsplit(public_url)
    return PasskeyPolicy(
        rp_id=host.lower(),
        rp_name=RP_NAME,
        expected_origins=(f"{parts.scheme}://{parts.netloc}".lower(),),
        user_verification_required=True,
        attestation="none",
        authenticator_attachment=None,
        resident_key_required=True,
        max_passkeys_per_user=10,
        ios_apps=(),
        android_apps=(),
    )


async def _new_challenge(
    session: AsyncSession,
    purpose: str,
    binding_hash: str,
    *,
    admin_id: str | None = None,
    link_id: str | None = None,
) -> AdminChallenge:
    now = utcnow()
    challenge = AdminChallenge(
        id=str(uuid.uuid4()),
        purpose=purpose,
        state="pending",
        challenge=secrets.token_bytes(32),
        admin_id=admin_id,
        link_id=link_id,
        binding_hash=binding_hash,
        created_at=now,
        expires_at=now + CHALLENGE_LIFETIME,
    )
    session.add(challenge)
    await session.flush()
    return challenge


async def _consume(
    session: AsyncSession, challenge_id: str, purpose: str, binding_hash: str | None
) -> AdminChallenge:
    challenge = await store.consume_challenge(session, challenge_id, purpose, utcnow())
    if challenge is None:
        raise InvalidRequest(
            "The sign-in attempt has expired or was already used. Try again.",
            error_code="challenge_not_found",
        )
    if binding_hash is None or not hmac.compare_digest(challenge.binding_hash, binding_hash):
        raise Forbidden(
            "Finish the ceremony in the browser that started it.",
            error_code="challenge_cookie_mismatch",
        )
    return challenge


async def _registration_options(
    session: AsyncSession, policy: PasskeyPolicy, admin: Admin, challenge: AdminChallenge
) -> CeremonyOptions:
    existing = [passkey.credential_id for passkey in await store.passkeys_of(session, admin.id)]
    options = relying_party.registration_options(
        policy,
        challenge=challenge.challenge,
        user_handle=admin.handle,
        username=admin.email,
        display_name=admin.email,
        exclude_credential_ids=existing,
    )
    return CeremonyOptions(challenge_id=challenge.id, options=options)


async def enrolment_options(
    session: AsyncSession, policy: PasskeyPolicy, link_token: str, binding_hash: str
) -> CeremonyOptions:
    """Registration options for the admin an enrolment link was made for."""
    link, admin = await accounts.check_link(session, link_token)
    challenge = await _new_challenge(
        session, REGISTRATION, binding_hash, admin_id=admin.id, link_id=link.id
    )
    return await _registration_options(session, policy, admin, challenge)


async def passkey_options(
    session: AsyncSession, policy: PasskeyPolicy, admin: Admin, binding_hash: str
) -> CeremonyOptions:
    """Registration options for another passkey of a signed-in admin."""
    challenge = await _new_challenge(session, REGISTRATION, binding_hash, admin_id=admin.id)
    return await _registration_options(session, policy, admin, challenge)


async def finish_registration(
    session: AsyncSession,
    policy: PasskeyPolicy,
    *,
    challenge_id: str,
    credential: dict[str, Any],
    binding_hash: str | None,
    signed_in: Admin | None,
    source: str | None,
) -> Admin:
    """Store the passkey a registration made. A challenge from an enrolment link uses the link
    up (once, atomically); one from a signed-in admin must be answered by that admin."""
    challenge = await _consume(session, challenge_id, REGISTRATION, binding_hash)
    admin = await accounts.get_admin(session, challenge.admin_id or "")
    if challenge.link_id is None and (signed_in is None or signed_in.id != admin.id):
        raise Forbidden("This ceremony belongs to another admin.", error_code="forbidden")
    async with single_use.refusal_burns_challenge(session, challenge.id, None):
        verified = relying_party.verify_registration(
            policy, credential, expected_challenge=challenge.challenge
        )
        if challenge.link_id is not None and not await store.use_link(
            session, challenge.link_id, utcnow()
        ):
            raise InvalidRequest(
                "This enrolment link was used or expired meanwhile.", error_code="link_used"
            )
        await _add_passkey(session, admin, verified)
        actor = audit.Actor(type="admin", id=admin.email, source=source)
        await audit.record(
            session,
            actor,
            "admin.passkey.added",
            target_type="admin",
            target_id=admin.email,
            details={"enrolmentLink": challenge.link_id is not None, "aaguid": verified.aaguid},
        )
    return admin


async def _add_passkey(
    session: AsyncSession, admin: Admin, verified: relying_party.VerifiedPasskey
) -> None:
    model = aaguids.describe(verified.aaguid)
    now = utcnow()
    session.add(
        AdminPasskey(
            id=str(uuid.uuid4()),
            admin_id=admin.id,
            credential_id=verified.credential_id,
            public_key=verified.public_key,
            sign_count=verified.sign_count,
            aaguid=verified.aaguid,
            name=model.name if model else None,
            created_at=now,
            last_used_at=now,
        )
    )
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("This passkey is already registered.") from exc


async def sign_in_options(
    session: AsyncSession, policy: PasskeyPolicy, binding_hash: str
) -> CeremonyOptions:
    """Options for a discoverable sign-in: the passkey says which admin it is."""
    challenge = await _new_challenge(session, AUTHENTICATION, binding_hash)
    options = relying_party.authentication_options(
        policy, challenge=challenge.challenge, allow_credential_ids=[]
    )
    return CeremonyOptions(challenge_id=challenge.id, options=options)


async def finish_sign_in(
    session: AsyncSession,
    policy: PasskeyPolicy,
    *,
    challenge_id: str,
    credential: dict[str, Any],
    binding_hash: str | None,
) -> Admin:
    """The admin whose passkey signed the challenge, or a refusal."""
    challenge = await _consume(session, challenge_id, AUTHENTICATION, binding_hash)
    async with single_use.refusal_burns_challenge(session, challenge.id, None):
        found = await store.passkey_by_credential(
            session, relying_party.credential_id_of(credential)
        )
        if found is None:
            raise InvalidRequest(
                "This passkey is not an admin's passkey of this server.",
                error_code="unknown_passkey",
            )
        passkey, admin = found
        handle = relying_party.user_handle_of(credential)
        if handle is not None and handle != admin.handle:
            raise InvalidRequest("The passkey's user handle does not match.", error_code="mismatch")
        verified = relying_party.verify_assertion(
            policy,
            credential,
            expected_challenge=challenge.challenge,
            public_key=passkey.public_key,
            stored_sign_count=passkey.sign_count,
        )
        await store.record_passkey_use(session, passkey.id, verified.sign_count, utcnow())
    return admin
