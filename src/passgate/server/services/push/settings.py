"""A tenant's push settings, kept in `tenants.settings["push"]` with these defaults."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.server import json_values
from passgate.server.services import secrets_box, tenants
from passgate.server.services.errors import InvalidRequest
from passgate.server.store.db import Db
from passgate.server.store.tenants import TenantRow

WEBHOOK_SECRET_PREFIX = "pg_whsec_"
MAX_SECRET_GRACE_SECONDS = 30 * 86_400


@dataclass(frozen=True, kw_only=True, slots=True)
class PushSettings:
    """Every knob an operator can turn for one tenant (`passgate tenant update`)."""

    # Start a push challenge from `track` when the outcome is CHALLENGE_REQUIRED and the user
    # has a push device.
    challenge_on_track: bool = True
    challenge_expiry_seconds: int = 120
    # The requester shows a code; the person types it on the device (beyond Authsignal).
    number_matching: bool = True
    code_digits: int = 2
    # Push-bombing limit: at most `rate_limit` challenges per user per window.
    rate_limit: int = 5
    rate_limit_window_seconds: int = 600
    # Device credentials expire this long after enrolment (or `resetExpiry`); None: never.
    credential_lifetime_minutes: int | None = None
    webhook_url: str | None = None
    # HMAC key of the `x-signature-v2` header. Secret keys are stored hashed, so unlike
    # Authsignal the webhook has its own secret; give it to Authsignal's `Webhook(...)`.
    webhook_secret: str | None = None
    # After a rotation with a grace period, webhooks are signed with the old secret too
    # (a second `v2=`) until this Unix time, so receivers can switch without dropping events.
    previous_webhook_secret: str | None = None
    previous_webhook_secret_expires_at: int | None = None
    # {"teamId", "keyId", "privateKey" (PEM .p8), "bundleId", "sandbox"}
    apns: dict[str, Any] | None = field(default=None, repr=False)
    # A Firebase service-account JSON (project_id, client_email, private_key, token_uri, ...).
    fcm: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        checks = [
            (5 <= self.challenge_expiry_seconds <= 3600, "challenge expiry must be 5-3600 s"),
            (1 <= self.code_digits <= 8, "code digits must be 1-8"),
            (self.rate_limit >= 1, "rate limit must be at least 1"),
            (self.rate_limit_window_seconds >= 1, "rate limit window must be at least 1 s"),
            (
                self.credential_lifetime_minutes is None
                or 1 <= self.credential_lifetime_minutes <= 525_600,
                "credential lifetime must be 1-525600 minutes",
            ),
            (
                self.webhook_url is None or self.webhook_url.startswith(("https://", "http://")),
                "the webhook URL must start with https:// or http://",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidRequest(message)
        if self.apns is not None:
            required = ("teamId", "keyId", "privateKey", "bundleId")
            missing = {name for name in required if not self.apns.get(name)}
            if missing:
                raise InvalidRequest(f"APNs settings need {', '.join(sorted(missing))}")
        if self.fcm is not None and not {"project_id", "private_key", "client_email"} <= set(
            self.fcm
        ):
            raise InvalidRequest("FCM settings need a service-account JSON")
        # APNs and FCM keys arrive as JSON files and form fields: store only what reads back.
        problem = json_values.stored_json_problem(asdict(self))
        if problem:
            raise InvalidRequest(f"push settings: {problem}")

    def signing_secrets(self, now: float | None = None) -> list[str]:
        """The secrets each webhook is signed with: the current one, then the previous one
        while its grace period lasts."""
        signing = [self.webhook_secret] if self.webhook_secret else []
        expires = self.previous_webhook_secret_expires_at
        moment = time.time() if now is None else now
        if self.previous_webhook_secret and expires is not None and moment < expires:
            signing.append(self.previous_webhook_secret)
        return signing


_NAMES = frozenset(f.name for f in fields(PushSettings))


def push_settings(tenant: TenantRow) -> PushSettings:
    """The tenant's push settings, their secrets opened (stored sealed: `_store`)."""
    stored = secrets_box.open_push(tenant.settings.get("push") or {}, tenant.id)
    return PushSettings(**{name: value for name, value in stored.items() if name in _NAMES})


def _store(tenant: TenantRow, settings: PushSettings) -> dict[str, Any]:
    """The tenant's settings with these push settings (sealed), to save."""
    stored = secrets_box.seal_push(asdict(settings), tenant.id)
    return {**tenant.settings, "push": stored}


def update_push_settings(
    tenant: TenantRow, *, clear: Iterable[str] = (), **changes: Any
) -> PushSettings:
    """Apply `changes` (None leaves a field as it is), reset the fields named in `clear` to
    their defaults (the caller saves them with `_store`). Setting a webhook URL for the first
    time also makes its signing secret."""
    unknown = (set(changes) | set(clear)) - _NAMES
    if unknown:
        raise InvalidRequest(f"unknown push settings: {', '.join(sorted(unknown))}")
    defaults = PushSettings()
    current = replace(push_settings(tenant), **{name: getattr(defaults, name) for name in clear})
    if changes.get("apns"):
        check_apns_key(str(changes["apns"].get("privateKey") or ""))
    updated = replace(current, **{k: v for k, v in changes.items() if v is not None})
    if updated.webhook_url and not updated.webhook_secret:
        updated = replace(updated, webhook_secret=new_webhook_secret())
    return updated


async def configure(
    db: Db, tenant_id: str, *, clear: Iterable[str] = (), **changes: Any
) -> PushSettings:
    """Change a tenant's push settings (the operator's `passgate tenant update`)."""
    await secrets_box.ready(db)
    tenant = await tenants.get_tenant(db, tenant_id)
    updated = update_push_settings(tenant, clear=clear, **changes)
    await tenants.save_settings(db, tenant_id, _store(tenant, updated))
    return updated


async def rotate_webhook_secret(db: Db, tenant_id: str, *, grace_seconds: int = 0) -> PushSettings:
    """A new webhook secret. For `grace_seconds`, webhooks carry a signature with the old
    secret as well, which Authsignal's verifiers accept (any `v2` may match)."""
    if not 0 <= grace_seconds <= MAX_SECRET_GRACE_SECONDS:
        raise InvalidRequest("the grace period must be between 0 and 30 days")
    await secrets_box.ready(db)
    tenant = await tenants.get_tenant(db, tenant_id)
    current = push_settings(tenant)
    if not current.webhook_url or not current.webhook_secret:
        raise InvalidRequest("the tenant has no webhook, so no webhook secret to rotate")
    keep_old = grace_seconds > 0
    updated = replace(
        current,
        webhook_secret=new_webhook_secret(),
        previous_webhook_secret=current.webhook_secret if keep_old else None,
        previous_webhook_secret_expires_at=int(time.time()) + grace_seconds if keep_old else None,
    )
    await tenants.save_settings(db, tenant_id, _store(tenant, updated))
    return updated


def check_apns_key(pem: str) -> None:
    """Refuse an APNs key that is not one, when it is set rather than at the first push: an
    APNs auth key (.p8) is a PEM PKCS#8 P-256 private key."""
    fix = "give the .p8 file Apple issued (Certificates, Identifiers & Profiles > Keys)"
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidRequest(f"the APNs key is not a PEM private key: {fix}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InvalidRequest(f"the APNs key is not a P-256 (ES256) key: {fix}")


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)
