"""The dev tenant behind `make run`: created once, its keys kept in a local file so every
start can print them (secret keys are stored hashed and cannot be read back)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from passgate.cli import _database
from passgate.server.services import tenants
from passgate.server.services.errors import PassgateError


def state_file(database_url: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent / "dev-tenant.json"
    return Path(".passgate") / "dev-tenant.json"


def ensure_dev_tenant(database_url: str, port: int) -> dict[str, str]:
    path = state_file(database_url)
    saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    async def work(session: Any) -> dict[str, str]:
        if saved.get("secretKey"):
            try:
                tenant = await tenants.authenticate(session, saved["secretKey"])
                return {"tenantId": tenant.id, "secretKey": saved["secretKey"]}
            except PassgateError:
                pass
        if saved.get("tenantId"):
            try:
                secret_key = await tenants.rotate_secret_key(session, saved["tenantId"])
                return {"tenantId": saved["tenantId"], "secretKey": secret_key}
            except PassgateError:
                pass
        tenant, secret_key = await tenants.create_tenant(
            session,
            name="Dev",
            rp_id="localhost",
            origins=[f"http://localhost:{port}", f"http://127.0.0.1:{port}"],
        )
        return {"tenantId": tenant.id, "secretKey": secret_key}

    credentials = _database.run(database_url, work)
    if credentials != {k: saved.get(k) for k in credentials}:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(credentials, indent=2) + "\n")
        os.chmod(path, 0o600)
    return credentials
