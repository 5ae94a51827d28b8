"""Keyed MACs of short secrets: one-time codes, recovery codes and magic-link secrets are stored
only as `mac(key, purpose, secret)`, never as sent (docs/fallback-methods.md#codes-at-rest).

A plain hash of a six-digit code is no protection: anyone with a copy of the database tries
all million. The key here is a per-tenant random 32-byte key kept in the tenant's settings
(`codeMacKey`), sealed under the master key like every other tenant secret, so a copy of the
database without the master key cannot test a guess, and `passgate keys rotate-master`
re-seals it without changing it (recovery codes stay valid across a master key rotation).

The key is made the first time a tenant needs one, by one conditional UPDATE: two processes
racing both end up with the key the first one wrote."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from passgate.server.services import secrets_box, tenants
from passgate.server.store import tenants as tenant_store
from passgate.server.store.db import Db
from passgate.server.store.tenants import TenantRow

SETTING = "codeMacKey"


def _opened(tenant: TenantRow) -> bytes | None:
    sealed = tenant.settings.get(SETTING)
    if not isinstance(sealed, str):
        return None
    opened = secrets_box.open_sealed(sealed, tenant_id=tenant.id, field=SETTING)
    return base64.urlsafe_b64decode(opened + "=" * (-len(opened) % 4))


async def tenant_key(db: Db, tenant: TenantRow) -> bytes:
    """The tenant's code MAC key, made (and saved in `db`'s transaction) if it has none."""
    key = _opened(tenant)
    if key is not None:
        return key
    # Read the row afresh under its lock: another process may have made the key meanwhile.
    locked = await tenant_store.update_tenant(db, tenant.id, {})
    if locked is not None:
        key = _opened(locked)
        if key is not None:
            return key
        tenant = locked
    made = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    sealed = secrets_box.seal(made, tenant_id=tenant.id, field=SETTING)
    await tenants.save_settings(db, tenant.id, {**tenant.settings, SETTING: sealed})
    return base64.urlsafe_b64decode(made + "=" * (-len(made) % 4))


def mac(key: bytes, purpose: str, secret: str) -> str:
    """The hex HMAC-SHA-256 of `secret` for `purpose` (e.g. "otp", "recovery", "magic-link"),
    so a MAC made for one use never matches in another."""
    message = purpose.encode() + b"\x00" + secret.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def matches(key: bytes, purpose: str, secret: str, stored: str) -> bool:
    """Whether `secret` is the one `stored` was made from, compared in constant time."""
    return hmac.compare_digest(mac(key, purpose, secret), stored)
