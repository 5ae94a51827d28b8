"""The dev tenant behind `make run`: created once, its keys kept in a local file so every
start can print them (secret keys are stored hashed and cannot be read back).

Email and SMS it has no sender for are written to the server's log (the development-only log
transport, docs/delivery.md#the-log-transport-development-only), so one-time codes and magic
links work at once; a sender the developer set is never replaced."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from passgate.cli import _database
from passgate.server.services import audit, origins, tenants
from passgate.server.services.delivery import config
from passgate.server.services.errors import PassgateError
from passgate.server.store.db import Db


def state_file(database_url: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent / "dev-tenant.json"
    return Path(".passgate") / "dev-tenant.json"


def ensure_dev_tenant(
    database_url: str, port: int, extra_origins: Sequence[str] = ()
) -> dict[str, Any]:
    """The dev tenant's id and secret key; `extra_origins` (a local web dev server, say) are
    added to its origins, which always include Passgate's own `http://localhost:<port>`."""
    path = state_file(database_url)
    saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    wanted = [f"http://localhost:{port}", *extra_origins]

    async def work(db: Db) -> dict[str, Any]:
        credentials = await _existing(db, saved)
        if credentials is None:
            tenant, secret_key = await tenants.create_tenant(
                db, name="Dev", rp_id="localhost", origins=wanted
            )
            await _log_what_cannot_be_sent(db, tenant.id)
            return {"tenantId": tenant.id, "secretKey": secret_key, "origins": tenant.origins}
        await _log_what_cannot_be_sent(db, credentials["tenantId"])
        tenant = await tenants.get_tenant(db, credentials["tenantId"])
        missing = [o for o in origins.normalize_all(wanted) if o not in tenant.origins]
        # Dev tenants made by older versions listed http://127.0.0.1, which cannot use the
        # rp id localhost: drop what does not fit rather than refuse to start.
        unfit = [o for o in tenant.origins if not _fits(tenant.rp_id, o)]
        if missing or unfit:
            tenant = await tenants.update_tenant(
                db,
                tenant.id,
                tenants.TenantChanges(add_origins=missing, remove_origins=unfit),
            )
        return {**credentials, "origins": tenant.origins}

    credentials = _database.run(database_url, work)
    keys = {key: credentials[key] for key in ("tenantId", "secretKey")}
    if keys != {key: saved.get(key) for key in keys}:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(keys, indent=2) + "\n")
        os.chmod(path, 0o600)
    return credentials


async def _log_what_cannot_be_sent(db: Db, tenant_id: str) -> None:
    tenant = await tenants.get_tenant(db, tenant_id)
    for kind in (config.EMAIL, config.SMS):
        if not config.configured(tenant, kind):
            await config.use_log(db, audit.cli_actor(), tenant_id, kind)


async def _existing(db: Db, saved: dict[str, Any]) -> dict[str, str] | None:
    if saved.get("secretKey"):
        try:
            tenant = await tenants.authenticate(db, saved["secretKey"])
            return {"tenantId": tenant.id, "secretKey": saved["secretKey"]}
        except PassgateError:
            pass
    if saved.get("tenantId"):
        try:
            secret_key = await tenants.rotate_secret_key(db, saved["tenantId"])
            return {"tenantId": saved["tenantId"], "secretKey": secret_key}
        except PassgateError:
            pass
    return None


def _fits(rp_id: str, origin: str) -> bool:
    host = origins.host_of(origin)
    return host is None or origins.is_registrable_suffix(rp_id, host)
