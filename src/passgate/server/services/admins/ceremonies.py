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

from passgate.server.services import aaguids, audit, relying_party, single_use
from passgate.server.services.admins import accounts
from passgate.server.services.errors import Conflict, Forbidden, InvalidRequest, PassgateError
from passgate.server.services.passkey_policy import PasskeyPolicy
from passgate.server.store import admins as store
from passgate.server.store.admins import AdminChallengeRow, AdminPasskeyRow, AdminRow
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow

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
    db: Db,
    purpose: str,
    binding_hash: str,
    *,
    admin_id: str | None = None,
    link_id: str | None = None,
) -> AdminChallengeRow:
    now = utcnow()
    challenge = AdminChallengeRow(
        id=str(uuid.uuid4()),
        purpose=purpose,
        state="pending",
        challenge=secrets.token_bytes(32),
        admin_id=admin_id,
        link_id=link_id,
        binding_hash=binding_hash,
        created_at=now,
        expires_at=now + CHALLENGE_LIFETIME,
        used_at=None,
    )
    await store.insert_challenge(db, challenge)
    return challenge


async def _consume(
    db: Db, challenge_id: str, purpose: str, binding_hash: str | None
) -> AdminChallengeRow:
    challenge = await store.consume_challenge(db, challenge_id, purpose, utcnow())
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
    db: Db, policy: PasskeyPolicy, admin: AdminRow, challenge: AdminChallengeRow
) -> CeremonyOptions:
    existing = [passkey.credential_id for passkey in await store.find_passkeys(db, admin.id)]
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
    db: Db, policy: PasskeyPolicy, link_token: str, binding_hash: str
) -> CeremonyOptions:
    """Registration options for the admin an enrolment link was made for."""
    link, admin = await accounts.check_link(db, link_token)
    challenge = await _new_challenge(
        db, REGISTRATION, binding_hash, admin_id=admin.id, link_id=link.id
    )
    return await _registration_options(db, policy, admin, challenge)


async def passkey_options(
    db: Db, policy: PasskeyPolicy, admin: AdminRow, binding_hash: str
) -> CeremonyOptions:
    """Registration options for another passkey of a signed-in admin."""
    challenge = await _new_challenge(db, REGISTRATION, binding_hash, admin_id=admin.id)
    return await _registration_options(db, policy, admin, challenge)


async def finish_registration(
    db: Db,
    policy: PasskeyPolicy,
    *,
    challenge_id: str,
    credential: dict[str, Any],
    binding_hash: str | None,
    signed_in: AdminRow | None,
    source: str | None,
) -> AdminRow:
    """Store the passkey a registration made. A challenge from an enrolment link uses the link
    up (once, atomically); one from a signed-in admin must be answered by that admin."""
    challenge = await _consume(db, challenge_id, REGISTRATION, binding_hash)
    admin = await accounts.get_admin(db, challenge.admin_id or "")
    if challenge.link_id is None and (signed_in is None or signed_in.id != admin.id):
        raise Forbidden("This ceremony belongs to another admin.", error_code="forbidden")
    async with single_use.refusal_burns_challenge(db, challenge.id, None):
        verified = relying_party.verify_registration(
            policy, credential, expected_challenge=challenge.challenge
        )
        if challenge.link_id is not None and not await store.consume_link(
            db, challenge.link_id, utcnow()
        ):
            raise InvalidRequest(
                "This enrolment link was used or expired meanwhile.", error_code="link_used"
            )
        await _add_passkey(db, admin, verified)
        actor = audit.Actor(type="admin", id=admin.email, source=source)
        await audit.record(
            db,
            actor,
            "admin.passkey.added",
            target_type="admin",
            target_id=admin.email,
            details={"enrolmentLink": challenge.link_id is not None, "aaguid": verified.aaguid},
        )
    return admin


async def _add_passkey(db: Db, admin: AdminRow, verified: relying_party.VerifiedPasskey) -> None:
    model = aaguids.describe(verified.aaguid)
    now = utcnow()
    passkey = AdminPasskeyRow(
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
    if not await store.insert_passkey(db, passkey):
        raise Conflict("This passkey is already registered.")


async def sign_in_options(db: Db, policy: PasskeyPolicy, binding_hash: str) -> CeremonyOptions:
    """Options for a discoverable sign-in: the passkey says which admin it is."""
    challenge = await _new_challenge(db, AUTHENTICATION, binding_hash)
    options = relying_party.authentication_options(
        policy, challenge=challenge.challenge, allow_credential_ids=[]
    )
    return CeremonyOptions(challenge_id=challenge.id, options=options)


async def finish_sign_in(
    db: Db,
    policy: PasskeyPolicy,
    *,
    challenge_id: str,
    credential: dict[str, Any],
    binding_hash: str | None,
) -> AdminRow:
    """The admin whose passkey signed the challenge, or a refusal."""
    challenge = await _consume(db, challenge_id, AUTHENTICATION, binding_hash)
    async with single_use.refusal_burns_challenge(db, challenge.id, None):
        found = await store.get_passkey_by_credential(
            db, relying_party.credential_id_of(credential)
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
        await store.record_passkey_use(db, passkey.id, verified.sign_count, utcnow())
    return admin
