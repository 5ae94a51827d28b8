"""What an operator changes about tenants, in the console or with the `passgate` command:
each change goes through the service that owns its rules (tenants, passkey settings, push
settings) and is recorded in the audit log in the same transaction, with what changed.

Every value is checked before anything is written, so a refused change saves nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from passgate.server.services import (
    audit,
    branding,
    enrolment,
    passkey_policy,
    tenants,
    tokens,
    well_known,
)
from passgate.server.services.enums import ActionOutcome
from passgate.server.services.passkey_policy import PasskeySettings
from passgate.server.services.push import settings as push
from passgate.server.store import tenants as tenant_store
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow

TENANT = "tenant"


@dataclass(frozen=True, kw_only=True, slots=True)
class TenantOverview:
    """A tenant with everything an operator may set on it, read for display."""

    tenant: TenantRow
    passkeys: PasskeySettings
    push: push.PushSettings
    outcomes: Mapping[str, str]
    passkey_count: int
    # While a rotated secret key's predecessor still works.
    previous_key_expires_at: datetime | None
    previous_webhook_secret_expires_at: datetime | None
    # Signing keys a rotation replaced, still in the JWKS: (key id, until when).
    retired_signing_keys: Sequence[tuple[str, datetime]] = ()


async def overview(db: Db, tenant_id: str) -> TenantOverview:
    tenant = await tenants.get_tenant(db, tenant_id)
    settings = push.push_settings(tenant)
    key_expiry = tenant.previous_secret_key_expires_at
    webhook_expiry = settings.previous_webhook_secret_expires_at
    now = utcnow()
    return TenantOverview(
        tenant=tenant,
        passkeys=passkey_policy.read_settings(tenant),
        push=settings,
        outcomes=dict(sorted(tenant.settings.get("actionOutcomes", {}).items())),
        passkey_count=await tenant_store.count_tenant_passkeys(db, tenant.id),
        previous_key_expires_at=key_expiry if key_expiry and key_expiry > now else None,
        previous_webhook_secret_expires_at=(
            datetime.fromtimestamp(webhook_expiry, UTC)
            if webhook_expiry and webhook_expiry > now.timestamp()
            else None
        ),
        retired_signing_keys=[
            (key.key_id, datetime.fromtimestamp(key.retire_after, UTC))
            for key in tokens.retired_keys(tenant)
        ],
    )


def _snapshot(tenant: TenantRow) -> dict[str, Any]:
    return {
        "name": tenant.name,
        "rpId": tenant.rp_id,
        "rpName": tenant.rp_name,
        "origins": list(tenant.origins),
        "tokenLifetimeSeconds": tenant.token_lifetime_seconds,
    }


async def _record(
    db: Db,
    actor: audit.Actor,
    action: str,
    tenant_id: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    await audit.record(
        db,
        actor,
        action,
        target_type=TENANT,
        target_id=tenant_id,
        tenant_id=tenant_id,
        details=details,
    )


async def create(
    db: Db,
    actor: audit.Actor,
    *,
    name: str,
    rp_id: str,
    origins: Sequence[str] = (),
) -> tuple[TenantRow, str]:
    """A new tenant and its secret key (shown once, never stored)."""
    tenant, secret_key = await tenants.create_tenant(db, name=name, rp_id=rp_id, origins=origins)
    await _record(db, actor, "tenant.created", tenant.id, _snapshot(tenant))
    return tenant, secret_key


async def update(
    db: Db, actor: audit.Actor, tenant_id: str, changes: tenants.TenantChanges
) -> TenantRow:
    """Name, relying party, origins and token lifetime (see `tenants.update_tenant`)."""
    before = _snapshot(await tenants.get_tenant(db, tenant_id))
    tenant = await tenants.update_tenant(db, tenant_id, changes)
    changed = audit.changes(before, _snapshot(tenant))
    if changed:
        await _record(db, actor, "tenant.updated", tenant_id, changed)
    return tenant


async def set_accent_color(
    db: Db, actor: audit.Actor, tenant_id: str, color: str | None
) -> TenantRow:
    """The hosted page's accent colour (`#rrggbb`; None for Passgate's own)."""
    before = branding.accent(await tenants.get_tenant(db, tenant_id))
    tenant = await branding.set_accent_color(db, tenant_id, color)
    after = branding.accent(tenant)
    changed = audit.changes(
        {"accentColor": before.color if before else None},
        {"accentColor": after.color if after else None},
    )
    if changed:
        await _record(db, actor, "tenant.branding.changed", tenant_id, changed)
    return tenant


def _apps(settings: PasskeySettings) -> dict[str, Any]:
    dumped = settings.model_dump(by_alias=True)
    return {"iosApps": dumped["iosApps"], "androidApps": dumped["androidApps"]}


async def change_passkeys(
    db: Db, actor: audit.Actor, tenant_id: str, changes: Mapping[str, Any]
) -> PasskeySettings:
    """Passkey settings, such as `iosApps` and `androidApps` (see `passkey_policy`)."""
    tenant = await tenants.get_tenant(db, tenant_id)
    before = passkey_policy.read_settings(tenant).model_dump(by_alias=True)
    updated = await passkey_policy.update_settings(db, tenant, changes)
    changed = audit.changes(before, updated.model_dump(by_alias=True))
    if changed:
        await _record(db, actor, "tenant.passkeys.changed", tenant_id, changed)
    return updated


@dataclass(frozen=True, kw_only=True, slots=True)
class WellKnownFile:
    name: str
    url: str
    current: str
    proposed: str

    @property
    def changed(self) -> bool:
        return self.current != self.proposed


async def preview_passkeys(
    db: Db, tenant_id: str, changes: Mapping[str, Any]
) -> list[WellKnownFile]:
    """The `.well-known` files served for the tenant's rp id now, and as they would be with
    `changes` applied (every tenant sharing the rp id contributes). Saves nothing; invalid
    changes are an `InvalidRequest`, as they would be when saved."""
    tenant = await tenants.get_tenant(db, tenant_id)
    proposed = passkey_policy.validated_settings(changes, passkey_policy.read_settings(tenant))
    current_policy = passkey_policy.policy(tenant)
    new_policy = replace(
        current_policy,
        ios_apps=tuple(proposed.ios_apps),
        android_apps=tuple(proposed.android_apps),
    )
    others = [
        passkey_policy.policy(other)
        for other in await tenant_store.find_tenants_by_rp_id(db, tenant.rp_id)
        if other.id != tenant.id
    ]
    before, after = [*others, current_policy], [*others, new_policy]

    def text(document: Any) -> str:
        return json.dumps(document, indent=2)

    base = f"https://{tenant.rp_id}/.well-known/"
    return [
        WellKnownFile(
            name=well_known.AASA,
            url=base + well_known.AASA,
            current=text(well_known.apple_app_site_association(before)),
            proposed=text(well_known.apple_app_site_association(after)),
        ),
        WellKnownFile(
            name=well_known.ASSET_LINKS,
            url=base + well_known.ASSET_LINKS,
            current=text(well_known.asset_links(before)),
            proposed=text(well_known.asset_links(after)),
        ),
    ]


async def set_outcome(
    db: Db,
    actor: audit.Actor,
    tenant_id: str,
    action_code: str,
    outcome: ActionOutcome,
) -> None:
    tenant = await tenants.get_tenant(db, tenant_id)
    before = tenant.settings.get("actionOutcomes", {}).get(action_code)
    await tenants.set_action_outcome(db, tenant_id, action_code, outcome)
    if before != outcome.value:
        details = {action_code: {"from": before, "to": outcome.value}}
        await _record(db, actor, "tenant.action_outcome.changed", tenant_id, details)


async def set_enrolment_window(db: Db, actor: audit.Actor, tenant_id: str, minutes: int) -> None:
    """How long a challenge's verification lets its token add an authenticator (`enrolment`)."""
    before = int(enrolment.window(await tenants.get_tenant(db, tenant_id)).total_seconds())
    await enrolment.set_window(db, tenant_id, minutes)
    if before != minutes * 60:
        details = {"from": before // 60, "to": minutes}
        await _record(db, actor, "tenant.enrolment_window.changed", tenant_id, details)


def _public_push(settings: push.PushSettings) -> dict[str, Any]:
    """Push settings as an audit event may show them: no secrets, no private keys."""
    hidden = ("webhook_secret", "previous_webhook_secret", "previous_webhook_secret_expires_at")
    shown = {
        field.name: getattr(settings, field.name)
        for field in fields(settings)
        if field.name not in (*hidden, "apns", "fcm")
    }
    apns, fcm = settings.apns, settings.fcm
    shown["apns"] = (
        {key: apns.get(key) for key in ("teamId", "keyId", "bundleId", "sandbox")} if apns else None
    )
    shown["apnsKey"] = _fingerprint(apns.get("privateKey") if apns else None)
    shown["fcm"] = {key: fcm.get(key) for key in ("project_id", "client_email")} if fcm else None
    shown["fcmKey"] = _fingerprint(fcm.get("private_key") if fcm else None)
    return shown


def _fingerprint(secret: Any) -> str | None:
    """A short digest that tells a replaced key from the same key, revealing nothing."""
    return hashlib.sha256(str(secret).encode()).hexdigest()[:12] if secret else None


async def configure_push(
    db: Db,
    actor: audit.Actor,
    tenant_id: str,
    *,
    clear: Sequence[str] = (),
    **changes: Any,
) -> push.PushSettings:
    """Push settings (see `push.settings.configure`)."""
    current = push.push_settings(await tenants.get_tenant(db, tenant_id))
    before = _public_push(current)
    updated = await push.configure(db, tenant_id, clear=clear, **changes)
    changed = audit.changes(before, _public_push(updated))
    if changed:
        await _record(db, actor, "tenant.push.changed", tenant_id, changed)
    if current.webhook_secret and updated.webhook_secret not in (None, current.webhook_secret):
        # `passgate tenant update --rotate-webhook-secret`: replaced at once, no grace.
        details = {"graceSeconds": 0}
        await _record(db, actor, "tenant.webhook_secret.rotated", tenant_id, details)
    return updated


async def rotate_secret_key(db: Db, actor: audit.Actor, tenant_id: str, grace: timedelta) -> str:
    """A new secret key; the old one works for `grace` more."""
    secret_key = await tenants.rotate_secret_key(db, tenant_id, grace=grace)
    details = {"graceSeconds": int(grace.total_seconds())}
    await _record(db, actor, "tenant.secret_key.rotated", tenant_id, details)
    return secret_key


async def rotate_signing_key(db: Db, actor: audit.Actor, tenant_id: str) -> TenantRow:
    """A new token signing key; the old one's public half stays in the JWKS, and tokens it
    signed stay valid, until they have all expired (`tenants.rotate_signing_key`)."""
    tenant, old_key_id = await tenants.rotate_signing_key(db, tenant_id)
    retired = tokens.retired_keys(tenant)
    until = next((key.retire_after for key in retired if key.key_id == old_key_id), None)
    details = {"from": old_key_id, "to": tenant.signing_key_id, "oldKeyRetireAfter": until}
    await _record(db, actor, "tenant.signing_key.rotated", tenant_id, details)
    return tenant


async def rotate_webhook_secret(
    db: Db, actor: audit.Actor, tenant_id: str, grace: timedelta
) -> push.PushSettings:
    """A new webhook secret; webhooks are signed with both for `grace`."""
    seconds = int(grace.total_seconds())
    updated = await push.rotate_webhook_secret(db, tenant_id, grace_seconds=seconds)
    await _record(db, actor, "tenant.webhook_secret.rotated", tenant_id, {"graceSeconds": seconds})
    return updated
