"""Every text column holds whatever the request schemas let through: PostgreSQL answers a value
longer than its column with a 500 (SQLite stores it), so each column names where its values
come from, and each request field that reaches it must be no longer than the column.

The map below is explicit, in both directions: a String column missing from it fails, and so
does a string input of the Server or Client API (a body field, a path, query or header
parameter, read from the OpenAPI document clients see) that is neither mapped to a column nor
listed as never stored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String

from passgate.server import limits
from passgate.server.app import create_app
from passgate.server.services import user_admin
from passgate.server.settings import Settings
from passgate.server.store.tables import Base


@dataclass(frozen=True)
class Body:
    """A field of a request body: the OpenAPI schema's name and the field's wire name."""

    model: str
    field: str


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter of any Server or Client API route, by wire name."""

    name: str


@dataclass(frozen=True)
class Checked:
    """A length the code checks before it writes (console and CLI input, credentials)."""

    limit: int
    where: str


@dataclass(frozen=True)
class Made:
    """A value Passgate makes itself (ids, hashes, codes, canonical forms), never as sent."""

    why: str


Source = Body | Param | Checked | Made

ID = Made("a UUID or other id Passgate made (a request may name one: it is looked up)")
HASH = Made("a SHA-256 hex digest Passgate computed")
STATE = Made("one of a few states or kinds named in code")
USER_ID = (Param("userId"), Made("the user id of a token or credential Passgate issued"))
AUDIT = Made("services/audit: names made in code, ids and addresses cut to the column")

COLUMNS: dict[str, tuple[Source, ...]] = {
    # Tenants: made by operators in the console or with the CLI.
    "tenants.id": (ID,),
    "tenants.name": (Checked(200, "services/tenants"),),
    "tenants.secret_key_hash": (HASH,),
    "tenants.secret_key_hint": (Made("the secret key's prefix and 4 characters"),),
    "tenants.rp_id": (Checked(253, "services/origins.check_rp_id: a hostname"),),
    "tenants.rp_name": (Checked(200, "services/tenants"),),
    "tenants.signing_key_id": (Made("a key thumbprint"),),
    "tenants.previous_secret_key_hash": (HASH,),
    # Users and their authenticators.
    "users.tenant_id": (ID,),
    "users.user_id": (
        *USER_ID,
        Body("ClaimOtpChallengeRequest", "userId"),
    ),
    "users.handle": (ID,),
    "users.email": (
        Body("TrackAttributes", "email"),
        Body("UserAttributes", "email"),
        Body("EmailOtpEnrollRequest", "email"),
        Body("StartOtpChallengeRequest", "email"),
    ),
    "users.phone_number": (
        Body("TrackAttributes", "phoneNumber"),
        Body("UserAttributes", "phoneNumber"),
        Body("SmsEnrollRequest", "phoneNumber"),
        Body("StartOtpChallengeRequest", "phoneNumber"),
    ),
    "users.username": (Body("TrackAttributes", "username"), Body("UserAttributes", "username")),
    "users.display_name": (Body("UserAttributes", "displayName"),),
    "users.locale": (Body("UserAttributes", "locale"),),
    "authenticators.id": (ID,),
    "authenticators.tenant_id": (ID,),
    "authenticators.user_id": USER_ID,
    "authenticators.verification_method": (STATE,),
    "authenticators.email": (
        Body("EnrollAuthenticatorRequest", "email"),
        Body("EmailMagicLinkEnrollRequest", "email"),
        Body("EmailOtpEnrollRequest", "email"),
        Body("StartOtpChallengeRequest", "email"),
    ),
    "authenticators.phone_number": (
        Body("EnrollAuthenticatorRequest", "phoneNumber"),
        Body("SmsEnrollRequest", "phoneNumber"),
        Body("StartOtpChallengeRequest", "phoneNumber"),
    ),
    "authenticators.username": (
        Body("RegistrationOptionsRequest", "username"),
        Body("TrackAttributes", "username"),
        Body("UserAttributes", "username"),
        Param("userId"),
    ),
    "authenticators.display_name": (
        Body("RegistrationOptionsRequest", "displayName"),
        Body("UserAttributes", "displayName"),
        Body("AddCredentialRequest", "deviceName"),
        Param("userId"),
    ),
    # Actions.
    "actions.id": (ID,),
    "actions.tenant_id": (ID,),
    "actions.user_id": (
        *USER_ID,
        Body("ClaimOtpChallengeRequest", "userId"),
    ),
    "actions.action_code": (
        Param("action"),
        Body("ChallengeRequest", "action"),
        Body("StartOtpChallengeRequest", "action"),
    ),
    "actions.idempotency_key": (
        Param("idempotencyKey"),
        Body("TrackAttributes", "idempotencyKey"),
        Body("ChallengeRequest", "idempotencyKey"),
        ID,
        Body("StartOtpChallengeRequest", "idempotencyKey"),
    ),
    "actions.state": (STATE,),
    "actions.verification_method": (STATE,),
    "actions.verified_by_authenticator_id": (ID,),
    "actions.ip_address": (Body("TrackAttributes", "ipAddress"),),
    "actions.user_agent": (Body("TrackAttributes", "userAgent"),),
    "actions.device_id": (
        Body("TrackAttributes", "deviceId"),
        Body("AddPasskeyRequest", "deviceId"),
        Body("VerifyPasskeyRequest", "deviceId"),
    ),
    "actions.scope": (Body("TrackAttributes", "scope"),),
    "actions.redirect_url": (Body("TrackAttributes", "redirectUrl"),),
    "actions.locale": (Body("TrackAttributes", "locale"),),
    "actions.origin": (STATE,),
    # Passkeys.
    "passkey_credentials.authenticator_id": (ID,),
    "passkey_credentials.tenant_id": (ID,),
    "passkey_credentials.user_id": USER_ID,
    "passkey_credentials.credential_id": (
        Checked(limits.CREDENTIAL_ID, "base64url of at most 1023 bytes (WebAuthn's limit)"),
    ),
    "passkey_credentials.aaguid": (Made("a UUID from the authenticator data"),),
    "passkey_credentials.attestation_format": (STATE,),
    "passkey_credentials.device_type": (STATE,),
    "passkey_credentials.authenticator_attachment": (
        Checked(len("cross-platform"), "services/relying_party: platform or cross-platform"),
    ),
    "passkey_credentials.device_id": (Body("AddPasskeyRequest", "deviceId"),),
    "passkey_credentials.user_agent": (
        Checked(limits.USER_AGENT, "client_api/passkeys: the User-Agent header, cut"),
    ),
    "passkey_credentials.flag_reason": (STATE,),
    "passkey_credentials.name": (Checked(user_admin.MAX_NAME, "services/user_admin"),),
    "passkey_challenges.id": (ID,),
    "passkey_challenges.tenant_id": (ID,),
    "passkey_challenges.purpose": (STATE,),
    "passkey_challenges.state": (STATE,),
    "passkey_challenges.user_id": USER_ID,
    "passkey_challenges.action_code": (Body("ChallengeRequest", "action"), Param("action")),
    "passkey_challenges.idempotency_key": (
        Body("ChallengeRequest", "idempotencyKey"),
        Param("idempotencyKey"),
    ),
    "passkey_challenges.username": (
        Body("RegistrationOptionsRequest", "username"),
        Body("TrackAttributes", "username"),
        Body("UserAttributes", "username"),
        Param("userId"),
    ),
    "passkey_challenges.display_name": (
        Body("RegistrationOptionsRequest", "displayName"),
        Body("UserAttributes", "displayName"),
        Param("userId"),
    ),
    "passkey_challenges.binding_hash": (HASH,),
    # Push.
    "push_devices.id": (ID,),
    "push_devices.tenant_id": (ID,),
    "push_devices.user_id": USER_ID,
    "push_devices.public_key": (Made("services/push/keys: canonical base64 SPKI of a P-256 key"),),
    "push_devices.device_name": (Body("AddCredentialRequest", "deviceName"),),
    "push_devices.device_platform": (Body("AddCredentialRequest", "devicePlatform"),),
    "push_devices.push_token": (
        Body("AddCredentialRequest", "pushToken"),
        Body("UpdateCredentialRequest", "pushToken"),
    ),
    "push_devices.nonce": (Made("a random nonce"),),
    "push_challenges.id": (ID,),
    "push_challenges.tenant_id": (ID,),
    "push_challenges.user_id": USER_ID,
    "push_challenges.action_id": (ID,),
    "push_challenges.authenticator_id": (Body("StartChallengeRequest", "userAuthenticatorId"),),
    "push_challenges.state": (STATE,),
    "push_challenges.verification_code": (Made("a random number of at most 8 digits"),),
    "push_challenges.decided_by_authenticator_id": (ID,),
    "push_used_nonces.digest": (HASH,),
    "push_used_nonces.tenant_id": (ID,),
    "spent_challenges.digest": (HASH,),
    "spent_challenges.tenant_id": (ID,),
    "spent_challenges.kind": (Made('"passkey" or "push"'),),
    "rate_limit_windows.bucket": (Made("services/rate_limits: a limit's name and a digest"),),
    # The console.
    "admins.id": (ID,),
    "admins.email": (Checked(320, "services/admins/accounts"),),
    "admins.handle": (ID,),
    "admin_passkeys.id": (ID,),
    "admin_passkeys.admin_id": (ID,),
    "admin_passkeys.credential_id": (
        Checked(limits.CREDENTIAL_ID, "base64url of at most 1023 bytes (WebAuthn's limit)"),
    ),
    "admin_passkeys.aaguid": (Made("a UUID from the authenticator data"),),
    "admin_passkeys.name": (Made("an authenticator model's name from the bundled AAGUID list"),),
    "admin_links.id": (ID,),
    "admin_links.admin_id": (ID,),
    "admin_links.token_hash": (HASH,),
    "admin_sessions.id": (ID,),
    "admin_sessions.admin_id": (ID,),
    "admin_sessions.token_hash": (HASH,),
    "admin_sessions.ip_address": (Checked(limits.IP_ADDRESS, "services/admins/sessions: cut"),),
    "admin_sessions.user_agent": (Checked(limits.USER_AGENT, "services/admins/sessions: cut"),),
    "admin_challenges.id": (ID,),
    "admin_challenges.purpose": (STATE,),
    "admin_challenges.state": (STATE,),
    "admin_challenges.admin_id": (ID,),
    "admin_challenges.link_id": (ID,),
    "admin_challenges.binding_hash": (HASH,),
    "outbox.id": (ID,),
    "outbox.tenant_id": (ID,),
    "outbox.kind": (Made('"webhook", "email" or "sms"'),),
    "outbox.leased_by": (Made("a process's name: host (40 at most), pid, random part"),),
    "job_leases.name": (Made('a periodic job\'s name, e.g. "prune"'),),
    "job_leases.leased_by": (Made("a process's name: host (40 at most), pid, random part"),),
    "audit_events.id": (ID,),
    "audit_events.actor_type": (STATE,),
    "audit_events.actor_id": (AUDIT,),
    "audit_events.action": (AUDIT,),
    "audit_events.target_type": (AUDIT,),
    "audit_events.target_id": (AUDIT,),
    "audit_events.tenant_id": (ID,),
    "audit_events.source": (AUDIT,),
    "otp_challenges.id": (ID,),
    "otp_challenges.tenant_id": (ID,),
    "otp_challenges.user_id": (
        *USER_ID,
        Body("StartOtpChallengeRequest", "userId"),
        Body("ClaimOtpChallengeRequest", "userId"),
    ),
    "otp_challenges.action_id": (ID,),
    "otp_challenges.authenticator_id": (ID,),
    "otp_challenges.action_code": (Body("StartOtpChallengeRequest", "action"),),
    "otp_challenges.idempotency_key": (
        Body("StartOtpChallengeRequest", "idempotencyKey"),
        Made("a UUID when the backend gives no key"),
    ),
    "otp_challenges.method": (STATE,),
    "otp_challenges.destination": (
        Checked(limits.EMAIL, "an email address or an E.164 number, validated before it is stored"),
    ),
    "otp_challenges.code_mac": (HASH,),
    "otp_challenges.state": (STATE,),
    "magic_links.id": (ID,),
    "magic_links.tenant_id": (ID,),
    "magic_links.user_id": USER_ID,
    "magic_links.action_id": (ID,),
    "magic_links.authenticator_id": (ID,),
    "magic_links.email": (
        Body("EmailMagicLinkEnrollRequest", "email"),
        Checked(limits.EMAIL, "an email address, validated before it is stored"),
    ),
    "magic_links.link_mac": (HASH,),
    "magic_links.state": (STATE,),
    "totp_secrets.authenticator_id": (ID,),
    "totp_secrets.tenant_id": (ID,),
    "recovery_codes.authenticator_id": (ID,),
    "recovery_codes.code_mac": (HASH,),
    "recovery_codes.tenant_id": (ID,),
    "recovery_codes.user_id": USER_ID,
}

# String inputs that are looked up, compared or verified, never written as sent.
NEVER_STORED: dict[Source, str] = {
    Param("tenantId"): "looked up",
    Param("userAuthenticatorId"): "looked up",
    Param("codes"): "filters a listing",
    Param("username"): "a lookup",
    Param("email"): "a lookup",
    Param("phoneNumber"): "a lookup",
    Param("token"): "verified",
    Param("lastEvaluatedUserId"): "a page cursor",
    Param("before"): "a page cursor (GET /v1/audit-events), parsed and checked",
    Param("credentialId"): "a lookup",
    Param("credentialIds"): "a lookup",
    Param("publicKey"): "a lookup, in canonical form",
    Param("X-Authsignal-Signature"): "verified",
    Body("ValidateRequest", "token"): "verified",
    Body("ValidateRequest", "action"): "compared",
    Body("ValidateRequest", "userId"): "compared",
    Body("TrackAttributes", "challengeId"): "looked up",
    Body("TrackAttributes", "customDomain"): "accepted for compatibility",
    Body("AddPasskeyRequest", "challengeId"): "looked up",
    Body("VerifyPasskeyRequest", "challengeId"): "looked up",
    Body("AuthenticationOptionsRequest", "challengeId"): "looked up",
    Body("RegistrationOptionsRequest", "authenticatorAttachment"): "an option, checked",
    Body("StartChallengeRequest", "action"): "compared with the token's",
    Body("VerifyRequest", "challengeId"): "looked up",
    Body("AddCredentialRequest", "publicKey"): "stored in canonical form",
    Body("RemoveCredentialRequest", "publicKey"): "a lookup",
    Body("RemoveCredentialRequest", "signature"): "verified",
    Body("UpdateChallengeRequest", "publicKey"): "a lookup",
    Body("UpdateChallengeRequest", "challengeId"): "looked up",
    Body("UpdateChallengeRequest", "signature"): "verified",
    Body("UpdateChallengeRequest", "verificationCode"): "compared",
    Body("UpdateCredentialRequest", "challengeId"): "verified as the signed nonce",
    Body("UpdateCredentialRequest", "publicKey"): "a lookup",
    Body("UpdateCredentialRequest", "signature"): "verified",
    Param("challengeId"): "looked up",
    Body("OtpVerifyRequest", "verificationCode"): "compared (as a keyed MAC)",
    Body("VerifyOtpChallengeRequest", "challengeId"): "looked up",
    Body("VerifyOtpChallengeRequest", "verificationCode"): "compared (as a keyed MAC)",
    Body("ClaimOtpChallengeRequest", "challengeId"): "looked up",
    Body("StartOtpChallengeRequest", "smsChannel"): "chooses SMS or WhatsApp",
    Body("StartOtpChallengeRequest", "locale"): "chooses the message's language",
    Body("StartOtpChallengeRequest", "ipAddress"): "counted in a rate limit, as a digest",
    Body("VerifyCodeRequest", "verificationCode"): "checked against a TOTP or recovery code",
}


def _string_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The string alternative of an OpenAPI property or parameter schema, if it has one."""
    for alternative in schema.get("anyOf", [schema]):
        if alternative.get("type") == "string" and alternative.get("format") != "date-time":
            return dict(alternative)
    return None


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[Source, int | None]:
    """Every string input of the Server and Client API, with its `maxLength` (None: none)."""
    database = Path(tmp_path_factory.mktemp("openapi")) / "unused.db"
    spec = create_app(Settings(database_url=f"sqlite:///{database}")).openapi()
    found: dict[Source, int | None] = {}

    def params_and_bodies() -> Iterator[tuple[Source, dict[str, Any]]]:
        for operations in spec["paths"].values():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    yield Param(parameter["name"]), parameter["schema"]
                content = operation.get("requestBody", {}).get("content", {})
                body = content.get("application/json", {}).get("schema", {})
                for alternative in body.get("anyOf", [body]):
                    if "$ref" in alternative:
                        name = alternative["$ref"].rsplit("/", 1)[-1]
                        model = spec["components"]["schemas"][name]
                        for field, schema in model.get("properties", {}).items():
                            yield Body(name, field), schema

    for source, schema in params_and_bodies():
        string = _string_schema(schema)
        if string is None:
            continue
        length: int | None = string.get("maxLength")
        # A parameter of one name on many routes: the loosest limit is the one that counts.
        if length is None or (source in found and found[source] is None):
            found[source] = None
        else:
            found[source] = max(length, found.get(source) or 0)
    return found


def _string_columns() -> dict[str, int]:
    return {
        f"{table.name}.{column.name}": column.type.length
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, String) and column.type.length is not None
    }


def test_every_string_column_says_where_its_values_come_from() -> None:
    columns = set(_string_columns())
    assert sorted(columns - set(COLUMNS)) == [], "String columns missing from COLUMNS"
    assert sorted(set(COLUMNS) - columns) == [], "COLUMNS names columns that do not exist"


def test_every_request_field_fits_every_column_it_writes(inputs: dict[Source, int | None]) -> None:
    problems = []
    for column, length in _string_columns().items():
        for source in COLUMNS.get(column, ()):
            if isinstance(source, Body | Param):
                if source not in inputs:
                    problems.append(f"{column}: {source} is not a string input of the API")
                    continue
                limit = inputs[source]
            elif isinstance(source, Checked):
                limit = source.limit
            else:
                continue
            if limit is None or limit > length:
                problems.append(f"{column} holds {length} characters, {source} allows {limit}")
    assert problems == []


def test_every_string_input_is_mapped_or_never_stored(inputs: dict[Source, int | None]) -> None:
    mapped = {source for sources in COLUMNS.values() for source in sources}
    unmapped = [source for source in inputs if source not in mapped and source not in NEVER_STORED]
    assert unmapped == [], "map these inputs to the columns they reach, or to NEVER_STORED"
    stale = [source for source in NEVER_STORED if source not in inputs]
    assert stale == [], "NEVER_STORED names inputs the API does not have"


def test_every_input_has_a_length_limit(inputs: dict[Source, int | None]) -> None:
    unlimited = [source for source, limit in inputs.items() if limit is None]
    assert unlimited == []
