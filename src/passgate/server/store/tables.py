"""The schema. Every lookup a request makes has an index here; migrations mirror this file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from passgate.server import limits


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Tenant(Base):
    """One relying party / app: its keys, origins and settings. Tenants never see each other."""

    __tablename__ = "tenants"
    # The .well-known files are served by the Host header: one lookup by relying party id.
    __table_args__ = (Index("ix_tenants_rp_id", "rp_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(limits.TENANT_NAME))
    secret_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_key_hint: Mapped[str] = mapped_column(String(20))
    rp_id: Mapped[str] = mapped_column(String(253))
    rp_name: Mapped[str] = mapped_column(String(limits.TENANT_NAME))
    origins: Mapped[list[str]] = mapped_column(default=list)
    token_lifetime_seconds: Mapped[int] = mapped_column(Integer, default=600)
    signing_key_id: Mapped[str] = mapped_column(String(64))
    signing_private_key: Mapped[str] = mapped_column(Text)
    # Per-tenant configuration, e.g. {"actionOutcomes": {"signIn": "ALLOW"}}. Assign a new dict
    # to change it: in-place mutation of a JSON column is not tracked.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped by every change, so each process can tell its index of origins is stale.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # After a rotation the old secret key keeps working until this time (a grace period).
    previous_secret_key_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    previous_secret_key_expires_at: Mapped[datetime | None] = mapped_column()
    # Signing keys a rotation replaced, public halves only, kept while tokens they signed may
    # still be unexpired: [{"kid": ..., "jwk": {...}, "retireAfter": Unix seconds}]
    # (services/tokens.py). NULL: none.
    retired_signing_keys: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_tenant_email", "tenant_id", "email"),
        Index("ix_users_tenant_username", "tenant_id", "username"),
        Index("ix_users_tenant_phone", "tenant_id", "phone_number"),
    )

    tenant_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("tenants.id", ondelete="CASCADE", name="fk_users_tenant"),
        primary_key=True,
    )
    user_id: Mapped[str] = mapped_column(String(limits.USER_ID), primary_key=True)
    # WebAuthn user handle: a UUID, so that it reads the same from iOS (raw) and Android (b64url).
    handle: Mapped[str] = mapped_column(String(36), unique=True)
    email: Mapped[str | None] = mapped_column(String(limits.EMAIL))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    phone_number: Mapped[str | None] = mapped_column(String(limits.PHONE_NUMBER))
    phone_number_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    username: Mapped[str | None] = mapped_column(String(limits.USERNAME))
    display_name: Mapped[str | None] = mapped_column(String(limits.DISPLAY_NAME))
    custom: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    locale: Mapped[str | None] = mapped_column(String(limits.LOCALE))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Authenticator(Base):
    """Anything a user verifies with: an email or phone, an authenticator app, recovery codes,
    passkeys, security keys and push devices. `id` is Authsignal's `userAuthenticatorId`."""

    __tablename__ = "authenticators"
    __table_args__ = (
        Index("ix_authenticators_tenant_user", "tenant_id", "user_id"),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.user_id"],
            ondelete="CASCADE",
            name="fk_authenticators_user",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(limits.USER_ID))
    verification_method: Mapped[str] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(limits.EMAIL))
    phone_number: Mapped[str | None] = mapped_column(String(limits.PHONE_NUMBER))
    username: Mapped[str | None] = mapped_column(String(limits.USERNAME))
    display_name: Mapped[str | None] = mapped_column(String(limits.DISPLAY_NAME))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column()
    last_verified_at: Mapped[datetime | None] = mapped_column()


class Action(Base):
    """One tracked action (sign-in, payment, ...) of one user, and the state its challenge is in."""

    __tablename__ = "actions"
    __table_args__ = (
        Index(
            "ux_actions_key", "tenant_id", "user_id", "action_code", "idempotency_key", unique=True
        ),
        Index("ix_actions_tenant_user_created", "tenant_id", "user_id", "created_at"),
        # The console's activity chart: actions settled in the last days.
        Index("ix_actions_state_updated", "state_updated_at"),
        # Pruning: client-made actions still pending long after their challenge expired.
        Index("ix_actions_origin_state_updated", "origin", "state", "state_updated_at"),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.user_id"],
            ondelete="CASCADE",
            name="fk_actions_user",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(limits.USER_ID))
    action_code: Mapped[str] = mapped_column(String(limits.ACTION_CODE))
    idempotency_key: Mapped[str] = mapped_column(String(limits.IDEMPOTENCY_KEY))
    state: Mapped[str] = mapped_column(String(32))
    state_updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    verification_method: Mapped[str | None] = mapped_column(String(32))
    verified_by_authenticator_id: Mapped[str | None] = mapped_column(String(36))
    ip_address: Mapped[str | None] = mapped_column(String(limits.IP_ADDRESS))
    user_agent: Mapped[str | None] = mapped_column(String(limits.USER_AGENT))
    device_id: Mapped[str | None] = mapped_column(String(limits.DEVICE_ID))
    custom: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    scope: Mapped[str | None] = mapped_column(String(limits.SCOPE))
    redirect_url: Mapped[str | None] = mapped_column(String(limits.REDIRECT_URL))
    locale: Mapped[str | None] = mapped_column(String(limits.LOCALE))
    # Set once, atomically, by the first successful /validate: a result is redeemed once.
    validated_at: Mapped[datetime | None] = mapped_column()
    # "server" for actions a backend tracked, "client" for those a browser or app made with
    # nothing but the tenant id (C1 without a token). Track never addresses client-made ones.
    origin: Mapped[str] = mapped_column(String(16), default="server")
    # Set once, atomically, when this action's token added an authenticator: used up for that.
    authenticator_added_at: Mapped[datetime | None] = mapped_column()


class PasskeyCredential(Base):
    """The WebAuthn half of a PASSKEY authenticator: one row per credential, sharing the
    `authenticators` row's id. Credential ids are unique within a tenant, not across tenants."""

    __tablename__ = "passkey_credentials"
    __table_args__ = (
        Index(
            "ux_passkey_credentials_tenant_credential", "tenant_id", "credential_id", unique=True
        ),
        Index("ix_passkey_credentials_tenant_user", "tenant_id", "user_id"),
    )

    authenticator_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey(
            "authenticators.id", ondelete="CASCADE", name="fk_passkey_credentials_authenticator"
        ),
        primary_key=True,
    )
    tenant_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(limits.USER_ID))
    # base64url, no padding, exactly as the credential's `id` arrives on the wire.
    credential_id: Mapped[str] = mapped_column(String(limits.CREDENTIAL_ID))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    aaguid: Mapped[str] = mapped_column(String(36))
    attestation_format: Mapped[str] = mapped_column(String(32))
    device_type: Mapped[str] = mapped_column(String(16))
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    transports: Mapped[list[str]] = mapped_column(default=list)
    authenticator_attachment: Mapped[str | None] = mapped_column(
        String(limits.AUTHENTICATOR_ATTACHMENT)
    )
    device_id: Mapped[str | None] = mapped_column(String(limits.DEVICE_ID))
    user_agent: Mapped[str | None] = mapped_column(String(limits.USER_AGENT))
    # Set when a verified assertion carried a counter lower than the stored one: a copy of
    # the key may exist. Shown as `erroredAt` / `errorCode` in the Client API.
    flagged_at: Mapped[datetime | None] = mapped_column()
    flag_reason: Mapped[str | None] = mapped_column(String(64))
    # A name an operator gave it in the console; else the AAGUID's name is shown.
    name: Mapped[str | None] = mapped_column(String(limits.PASSKEY_NAME))
    # The COSE algorithm of `public_key` (-7 ES256, -8 EdDSA, -257 RS256, ...); None for rows
    # written before it was recorded (read it from the key then).
    public_key_algorithm: Mapped[int | None] = mapped_column(Integer)
    # True when the attestation's certificate chain was verified to a configured root.
    attestation_verified: Mapped[bool] = mapped_column(Boolean, default=False)


class PasskeyChallenge(Base):
    """A WebAuthn challenge: single-use, expiring, bound to its tenant and, when known, to its
    user and action. Consumed by one conditional UPDATE (`state = 'pending'` -> `'used'`)."""

    __tablename__ = "passkey_challenges"
    __table_args__ = (Index("ix_passkey_challenges_expires", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    # "registration" or "authentication".
    purpose: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    user_id: Mapped[str | None] = mapped_column(String(limits.USER_ID))
    action_code: Mapped[str | None] = mapped_column(String(limits.ACTION_CODE))
    idempotency_key: Mapped[str | None] = mapped_column(String(limits.IDEMPOTENCY_KEY))
    username: Mapped[str | None] = mapped_column(String(limits.USERNAME))
    display_name: Mapped[str | None] = mapped_column(String(limits.DISPLAY_NAME))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    # SHA-256 of the HttpOnly cookie a `/web` route set with this challenge: the call that
    # answers it must come from the same browser. None for challenges made without a cookie.
    binding_hash: Mapped[str | None] = mapped_column(String(64))


class PushDevice(Base):
    """A push device: the P-256 key of one app install and where to notify it. Its `id` is the
    id of the user's PUSH authenticator (`userAuthenticatorId`), removed along with it."""

    __tablename__ = "push_devices"
    __table_args__ = (
        Index("ux_push_devices_key", "tenant_id", "public_key", unique=True),
        Index("ix_push_devices_tenant_user", "tenant_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(
        String(36), ForeignKey("authenticators.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(limits.USER_ID))
    # SPKI DER in standard base64 with padding (124 characters for P-256), as the SDKs send it.
    public_key: Mapped[str] = mapped_column(String(200))
    device_name: Mapped[str | None] = mapped_column(String(limits.DEVICE_NAME))
    device_platform: Mapped[str | None] = mapped_column(String(limits.DEVICE_PLATFORM))
    push_token: Mapped[str | None] = mapped_column(String(limits.PUSH_TOKEN))
    expires_at: Mapped[datetime | None] = mapped_column()
    # Unused since P4/P7 messages became stateless (services/push/nonces, push_used_nonces);
    # left in place for a later migration to drop.
    nonce: Mapped[str | None] = mapped_column(String(64))
    nonce_expires_at: Mapped[datetime | None] = mapped_column()


class PushUsedNonce(Base):
    """A push nonce (stateless, HMAC-signed, see services/push/nonces) that a device's signature
    has already spent. Only a valid signature adds a row, so a third party cannot grow it; rows
    go once the nonce would have expired anyway."""

    __tablename__ = "push_used_nonces"
    __table_args__ = (Index("ix_push_used_nonces_expires", "expires_at"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    expires_at: Mapped[datetime] = mapped_column()


class SpentChallenge(Base):
    """A challenge (a signed message of services/challenges.py, for a passkey ceremony or a
    push device) that an answer has used up: inserting its digest is what makes it single
    use, whatever the answer's outcome. Only a message with a valid signature adds a row, so
    a third party cannot grow it; rows go once the message would have expired anyway."""

    __tablename__ = "spent_challenges"
    __table_args__ = (Index("ix_spent_challenges_expires", "expires_at"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    # "passkey" or "push".
    kind: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column()


class RateLimitWindow(Base):
    """One fixed window of one rate limit (e.g. C1 calls from one IP to one tenant): counted
    by one atomic upsert, so the limit holds across processes; pruned once expired."""

    __tablename__ = "rate_limit_windows"
    __table_args__ = (Index("ix_rate_limit_windows_expires", "expires_at"),)

    bucket: Mapped[str] = mapped_column(String(255), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column()


class PushChallenge(Base):
    """One request to approve an action on a push device; decided once, atomically."""

    __tablename__ = "push_challenges"
    __table_args__ = (
        Index("ix_push_challenges_user_created", "tenant_id", "user_id", "created_at"),
        Index("ix_push_challenges_action", "action_id"),
        # The console's activity chart: challenges decided in the last days.
        Index("ix_push_challenges_decided", "decided_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(limits.USER_ID))
    action_id: Mapped[str] = mapped_column(String(36), ForeignKey("actions.id", ondelete="CASCADE"))
    # The one device asked (W1's userAuthenticatorId), or None for any of the user's devices.
    authenticator_id: Mapped[str | None] = mapped_column(String(limits.ID))
    # pending -> approved | rejected; `refused` records an attempt over the rate limit.
    state: Mapped[str] = mapped_column(String(16))
    verification_code: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by_authenticator_id: Mapped[str | None] = mapped_column(String(36))


# The admin console -------------------------------------------------------------------------


class Admin(Base):
    """An operator of this Passgate server (not of one tenant): signs in to /admin with a
    passkey on the relying party of Passgate's public URL."""

    __tablename__ = "admins"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # WebAuthn user handle: a UUID string, as for users.
    handle: Mapped[str] = mapped_column(String(36), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminPasskey(Base):
    __tablename__ = "admin_passkeys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    admin_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("admins.id", ondelete="CASCADE"), index=True
    )
    # base64url, no padding. Unique across the server: admins share one relying party.
    credential_id: Mapped[str] = mapped_column(String(limits.CREDENTIAL_ID), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    aaguid: Mapped[str] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(String(limits.PASSKEY_NAME))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()


class AdminLink(Base):
    """A one-time enrolment link (`passgate admin create` / `admin link`): stored as a hash,
    valid for minutes, used once."""

    __tablename__ = "admin_links"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    admin_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("admins.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class AdminSession(Base):
    """A signed-in console session; the cookie holds a random token, the row its hash."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    admin_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("admins.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    ip_address: Mapped[str | None] = mapped_column(String(limits.IP_ADDRESS))
    user_agent: Mapped[str | None] = mapped_column(String(limits.USER_AGENT))


class AdminChallenge(Base):
    """A WebAuthn challenge of the console: single-use, expiring, bound by an HttpOnly cookie
    to the browser that asked for it; consumed by one conditional UPDATE."""

    __tablename__ = "admin_challenges"
    __table_args__ = (Index("ix_admin_challenges_expires", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # "registration" or "authentication".
    purpose: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    admin_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("admins.id", ondelete="CASCADE")
    )
    # The enrolment link (or signed-in session) a registration was started from.
    link_id: Mapped[str | None] = mapped_column(String(36))
    binding_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class AuditEvent(Base):
    """The one audit log: who (an admin, the API, a user or the system) did what to which
    object, when and from where. Never cascaded away: it has no foreign keys."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_occurred", "occurred_at"),
        Index("ix_audit_events_tenant_occurred", "tenant_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    # "admin", "api", "user" or "system".
    actor_type: Mapped[str] = mapped_column(String(16))
    # The admin's email, the tenant id for the API, the user id, or a component's name.
    actor_id: Mapped[str | None] = mapped_column(String(320))
    # A dotted verb, e.g. "tenant.origins.changed".
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(255))
    tenant_id: Mapped[str | None] = mapped_column(String(36))
    # Where it came from: an IP address, or "cli".
    source: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class OutboxMessage(Base):
    """A message to send (a webhook, an email or an SMS), written in the same transaction
    as the event that causes it and delivered at least once by any process holding a lease on
    it (store/outbox.py). Its id is the event id a receiver deduplicates on."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The deliverers' poll: rows still to send, by when they are due.
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
        # The pruner: finished rows by age.
        Index("ix_outbox_created", "created_at"),
        Index("ix_outbox_tenant", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tenants.id", ondelete="CASCADE", name="fk_outbox_tenant")
    )
    # "webhook", "email" or "sms".
    kind: Mapped[str] = mapped_column(String(16))
    # The body to send, as JSON text, exactly as it goes out.
    payload: Mapped[str] = mapped_column(Text)
    # Where it goes: the webhook URL (an address or number for email and SMS).
    destination: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    # A process that claimed the row sends it until then; after that any process may.
    lease_until: Mapped[datetime | None] = mapped_column()
    leased_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()
    # Given up after the last attempt; last_error says why.
    failed_at: Mapped[datetime | None] = mapped_column()


class JobLease(Base):
    """One periodic job (e.g. pruning) shared by every process: the process whose UPDATE moves
    `due_at` on runs it; the others find it not yet due (store/jobs.py)."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_at: Mapped[datetime] = mapped_column()
    leased_by: Mapped[str | None] = mapped_column(String(64))
    leased_at: Mapped[datetime | None] = mapped_column()


class OtpChallenge(Base):
    """A one-time code sent by email, SMS or WhatsApp, to enrol the destination or to verify
    the user (services/otp.py). The code is kept only as a keyed MAC under the master key;
    `attempts` counts wrong answers, and the challenge is burnt at the limit."""

    __tablename__ = "otp_challenges"
    __table_args__ = (
        Index("ix_otp_challenges_user", "tenant_id", "user_id", "method", "created_at"),
        Index("ix_otp_challenges_action", "action_id"),
        Index("ix_otp_challenges_expires", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tenants.id", ondelete="CASCADE", name="fk_otp_challenges_tenant")
    )
    # None for a backend's POST /challenge to an address or number alone (claimed later).
    user_id: Mapped[str | None] = mapped_column(String(limits.USER_ID))
    # The action whose token asked for the code (none for a backend's POST /challenge).
    action_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("actions.id", ondelete="CASCADE", name="fk_otp_challenges_action")
    )
    # The email or phone authenticator the code verifies (none before enrolment).
    authenticator_id: Mapped[str | None] = mapped_column(String(36))
    # A backend's POST /challenge: the action its claim settles, under this key.
    action_code: Mapped[str | None] = mapped_column(String(limits.ACTION_CODE))
    idempotency_key: Mapped[str | None] = mapped_column(String(limits.IDEMPOTENCY_KEY))
    # EMAIL_OTP, SMS or WHATSAPP.
    method: Mapped[str] = mapped_column(String(32))
    # The address or E.164 number the code went to.
    destination: Mapped[str] = mapped_column(String(limits.EMAIL))
    code_mac: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # pending, verified, burnt, claimed (a backend's challenge, once claimed).
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    verified_at: Mapped[datetime | None] = mapped_column()


class MagicLink(Base):
    """An email magic link (services/magic_links.py): the link's secret is kept only as a keyed
    MAC; opening the link shows a page whose button confirms it; only the token of the action
    that asked for it finalizes it."""

    __tablename__ = "magic_links"
    __table_args__ = (
        Index("ux_magic_links_link_mac", "link_mac", unique=True),
        Index("ix_magic_links_action", "action_id"),
        Index("ix_magic_links_expires", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tenants.id", ondelete="CASCADE", name="fk_magic_links_tenant")
    )
    user_id: Mapped[str] = mapped_column(String(limits.USER_ID))
    action_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("actions.id", ondelete="CASCADE", name="fk_magic_links_action")
    )
    authenticator_id: Mapped[str | None] = mapped_column(String(36))
    email: Mapped[str] = mapped_column(String(limits.EMAIL))
    link_mac: Mapped[str] = mapped_column(String(64))
    # pending, confirmed, finalized.
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    confirmed_at: Mapped[datetime | None] = mapped_column()
    finalized_at: Mapped[datetime | None] = mapped_column()


class TotpSecret(Base):
    """An authenticator app's (AUTHENTICATOR_APP) shared secret, sealed under the master key,
    and the last time step a code was accepted for (a code is accepted once)."""

    __tablename__ = "totp_secrets"
    __table_args__ = (Index("ix_totp_secrets_tenant", "tenant_id"),)

    authenticator_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("authenticators.id", ondelete="CASCADE", name="fk_totp_secrets_authenticator"),
        primary_key=True,
    )
    tenant_id: Mapped[str] = mapped_column(String(36))
    secret: Mapped[str] = mapped_column(Text)
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """One of a RECOVERY_CODE authenticator's single-use codes, as a keyed MAC."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user", "tenant_id", "user_id"),)

    authenticator_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("authenticators.id", ondelete="CASCADE", name="fk_recovery_codes_authenticator"),
        primary_key=True,
    )
    code_mac: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(limits.USER_ID))
    used_at: Mapped[datetime | None] = mapped_column()
