"""Secrets at rest: a copy of the database, read byte by byte (SQLite) or row by row
(PostgreSQL), holds no signing key, webhook secret or APNs/FCM key; a sealed value moved to
another tenant or field does not open; a host without the master key refuses to start; and a
database from before encryption has its secrets sealed at the first start."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import update

from passgate.server.app import create_app
from passgate.server.services import secrets_box, tenants, tokens
from passgate.server.services.push import settings as push
from passgate.server.settings import Settings
from passgate.server.store.database import create_engine, sqlite_path
from passgate.server.store.db import Db, Engines
from passgate.server.store.migrate import upgrade
from passgate.server.store.tables import Tenant as TenantRow
from tests.live_server import LiveServer, Tenant, insert_rows
from tests.raw_database import fresh_database_url, raw_text

__all__ = ["fresh_database_url"]

PASSGATE = [sys.executable, "-m", "passgate.cli"]


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def apns_key() -> str:
    """An APNs .p8: a PKCS#8 P-256 key, as Apple issues them."""
    return pem(ec.generate_private_key(ec.SECP256R1()))


def service_account() -> dict[str, Any]:
    return {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "k1",
        "private_key": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "client_email": "push@demo.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.example/token",
    }


def pem_body(text: str) -> str:
    """A line from the middle of a PEM: what would show if the key were stored anywhere."""
    return text.strip().splitlines()[2]


def configure_every_secret(server: LiveServer, tenant_id: str) -> dict[str, str]:
    """A webhook secret and its predecessor (a rotation in its grace period), an APNs key and
    an FCM service account; returns each secret as the server reads it back."""
    apns = {"teamId": "TEAM123456", "keyId": "KEY1234567", "bundleId": "app.example"}

    async def work(db: Db) -> dict[str, str]:
        await push.configure(
            db,
            tenant_id,
            webhook_url="https://hooks.example/push",
            apns={**apns, "privateKey": apns_key(), "sandbox": True},
            fcm=service_account(),
        )
        rotated = await push.rotate_webhook_secret(db, tenant_id, grace_seconds=3600)
        tenant = await tenants.get_tenant(db, tenant_id)
        assert rotated.apns and rotated.fcm and rotated.previous_webhook_secret
        return {
            "webhook secret": rotated.webhook_secret or "",
            "previous webhook secret": rotated.previous_webhook_secret,
            "APNs key": pem_body(rotated.apns["privateKey"]),
            "FCM key": pem_body(rotated.fcm["private_key"]),
            "signing key": pem_body(
                secrets_box.open_sealed(
                    tenant.signing_private_key,
                    tenant_id=tenant_id,
                    field=secrets_box.SIGNING_KEY,
                )
            ),
        }

    return server.run(work)


def stored(server: LiveServer, tenant_id: str) -> tuple[str, dict[str, Any]]:
    async def work(db: Db) -> tuple[str, dict[str, Any]]:
        tenant = await tenants.get_tenant(db, tenant_id)
        return tenant.signing_private_key, dict(tenant.settings.get("push") or {})

    return server.run(work)


def session_key_id() -> str:
    key = secrets_box.load(Settings())
    assert key is not None
    return key.key_id


def test_a_copied_database_reveals_no_secret(
    server: LiveServer, tenant: Tenant, database_url: str
) -> None:
    secrets = configure_every_secret(server, tenant.id)
    raw = raw_text(database_url)
    assert tenant.id in raw  # the copy is readable: the tenant is there, its secrets are not
    for name, secret in secrets.items():
        assert len(secret) >= 40, name
        assert secret not in raw, f"the {name} is stored in the clear"
    assert "PRIVATE KEY" not in raw

    signing, push_stored = stored(server, tenant.id)
    sealed = f"enc:v1:{session_key_id()}:"
    assert signing.startswith(sealed)
    assert push_stored["webhook_secret"].startswith(sealed)
    assert push_stored["previous_webhook_secret"].startswith(sealed)
    assert push_stored["apns"]["privateKey"].startswith(sealed)
    assert push_stored["fcm"]["private_key"].startswith(sealed)
    # What is not secret stays readable, for the console and the CLI.
    assert push_stored["apns"]["teamId"] == "TEAM123456"
    assert push_stored["fcm"]["client_email"] == "push@demo.iam.gserviceaccount.com"


def test_a_sealed_secret_opens_only_for_its_tenant_and_field(
    server: LiveServer, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine, _ = stored(server, tenant.id)
    theirs, _ = stored(server, other_tenant.id)
    field = secrets_box.SIGNING_KEY
    assert "PRIVATE KEY" in secrets_box.open_sealed(mine, tenant_id=tenant.id, field=field)
    with pytest.raises(secrets_box.MasterKeyError):
        secrets_box.open_sealed(mine, tenant_id=other_tenant.id, field=field)
    with pytest.raises(secrets_box.MasterKeyError):
        secrets_box.open_sealed(mine, tenant_id=tenant.id, field="push.webhook_secret")

    def jwks(tenant_id: str) -> httpx.Response:
        return httpx.get(f"{server.api_url}/client/public/{tenant_id}/.well-known/jwks")

    mine_public = jwks(tenant.id).json()["keys"][0]

    theirs_kid = jwks(other_tenant.id).json()["keys"][0]["kid"]

    # Someone with write access to the database gives the other tenant this tenant's key.
    def set_signing_key(value: str, key_id: str) -> None:
        async def work(db: Db) -> None:
            await db.execute(
                update(TenantRow)
                .where(TenantRow.id == other_tenant.id)
                .values(signing_private_key=value, signing_key_id=key_id)
            )

        server.run(work)
        tenants.forget(other_tenant.id)

    set_signing_key(mine, mine_public["kid"])
    try:
        refused = jwks(other_tenant.id)
        assert refused.status_code == 503
        assert refused.json()["errorCode"] == "service_unavailable"
        assert mine_public["x"] not in refused.text
    finally:
        set_signing_key(theirs, theirs_kid)
    assert jwks(other_tenant.id).status_code == 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`passgate serve` as a second host runs it: its own data directory, no master key."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSGATE_")}
    return subprocess.run(
        [*PASSGATE, "serve", "--port", str(free_port()), "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **env},
    )


def copy_of(database_url: str, tmp_path: Path) -> str:
    """The database as someone copies it: a file copy for SQLite; PostgreSQL's own database,
    which a second host reaches as it is."""
    path = sqlite_path(database_url)
    if path is None:
        return database_url
    target = tmp_path / "copied.db"
    with sqlite3.connect(path) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return f"sqlite:///{target}"


def test_a_host_without_the_key_refuses_to_start(
    server: LiveServer, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    key_id = session_key_id()
    copied = copy_of(database_url, tmp_path)
    other_host = tmp_path / "other-host"

    refused = serve(copied, PASSGATE_DATA_DIR=str(other_host))
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("passgate:")]
    assert len(errors) == 1, refused.stderr
    assert errors[0].startswith(
        f"passgate: error: the database's secrets are encrypted under master key {key_id}"
    )
    assert "PASSGATE_MASTER_KEY" in errors[0]
    assert str((other_host / "master.key").resolve()) in errors[0]
    assert "Traceback" not in refused.stderr
    assert not (other_host / "master.key").exists(), "it made a key of its own"

    wrong_key = base64.urlsafe_b64encode(bytes(32)).decode()
    refused = serve(copied, PASSGATE_DATA_DIR=str(other_host), PASSGATE_MASTER_KEY=wrong_key)
    assert refused.returncode == 1
    assert f"master key {key_id}," in refused.stderr.splitlines()[-1]

    # The app itself refuses too, however it is run (an ASGI server's --factory, say).
    async def start_app() -> None:
        app = create_app(Settings(database_url=copied, data_dir=other_host))
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(secrets_box.MasterKeyError, match=f"master key {key_id}"):
        asyncio.run(start_app())
    assert not (other_host / "master.key").exists()

    # With the key, the other host starts and signs with the tenant's own key.
    key = secrets_box.load(Settings())
    assert key is not None
    live = LiveServer(copied, data_dir=other_host, master_key=key.encoded).start()
    try:
        shown = httpx.get(f"{live.api_url}/client/public/{tenant.id}/.well-known/jwks")
        assert shown.status_code == 200
    finally:
        live.stop()


async def _seed_plaintext_tenant(database_url: str, secret_key: str) -> dict[str, str]:
    """A tenant as Passgate stored it before secrets were encrypted."""
    await upgrade(database_url)
    key_id, signing_pem = tokens.generate_signing_key()
    webhook_secret = "pg_whsec_" + uuid.uuid4().hex * 2
    p8 = apns_key()
    tenant = TenantRow(
        id=str(uuid.uuid4()),
        name="Old",
        secret_key_hash=tenants.hash_secret_key(secret_key),
        secret_key_hint=secret_key[:10],
        rp_id="localhost",
        rp_name="Old",
        origins=["https://localhost"],
        token_lifetime_seconds=600,
        signing_key_id=key_id,
        signing_private_key=signing_pem,
        settings={
            "push": {
                "webhook_url": "https://hooks.example/push",
                "webhook_secret": webhook_secret,
                "apns": {
                    "teamId": "TEAM123456",
                    "keyId": "KEY1234567",
                    "bundleId": "app.example",
                    "privateKey": p8,
                    "sandbox": False,
                },
            }
        },
    )
    engine = create_engine(database_url)
    try:
        async with Engines(engine).transaction() as db:
            await insert_rows(db, [tenant])
    finally:
        await engine.dispose()
    return {
        "tenantId": tenant.id,
        "signing": signing_pem,
        "webhook": webhook_secret,
        "apns": p8,
    }


def test_plaintext_secrets_of_an_existing_database_are_sealed_at_start(
    fresh_database_url: str,
) -> None:
    secret_key = "pg_sk_" + uuid.uuid4().hex
    old = asyncio.run(_seed_plaintext_tenant(fresh_database_url, secret_key))
    assert pem_body(old["signing"]) in raw_text(fresh_database_url)

    live = LiveServer(fresh_database_url).start()
    try:
        first = stored(live, old["tenantId"])
        jwks = httpx.get(f"{live.api_url}/client/public/{old['tenantId']}/.well-known/jwks")
        settings = live.run(
            lambda db: _push_settings(db, old["tenantId"]),
        )
    finally:
        live.stop()
    raw = raw_text(fresh_database_url)
    for name in ("signing", "apns"):
        assert pem_body(old[name]) not in raw, f"the {name} key is still in the file"
    assert old["webhook"] not in raw
    assert "PRIVATE KEY" not in raw
    assert first[0].startswith(f"enc:v1:{session_key_id()}:")

    # The same keys, sealed: tokens are signed with the tenant's own key, pushes keep theirs.
    private = serialization.load_pem_private_key(old["signing"].encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    x = private.public_key().public_numbers().x.to_bytes(32, "big")
    assert jwks.json()["keys"][0]["x"] == base64.urlsafe_b64encode(x).decode().rstrip("=")
    assert settings.webhook_secret == old["webhook"]
    assert settings.apns is not None and settings.apns["privateKey"] == old["apns"]

    # A second start seals nothing again.
    LiveServer(fresh_database_url).start().stop()
    assert stored_directly(fresh_database_url, old["tenantId"]) == first


async def _push_settings(db: Db, tenant_id: str) -> push.PushSettings:
    return push.push_settings(await tenants.get_tenant(db, tenant_id))


def stored_directly(database_url: str, tenant_id: str) -> tuple[str, dict[str, Any]]:
    async def read() -> tuple[str, dict[str, Any]]:
        engine = create_engine(database_url)
        try:
            async with Engines(engine).transaction() as db:
                tenant = await tenants.get_tenant(db, tenant_id)
                return tenant.signing_private_key, dict(tenant.settings.get("push") or {})
        finally:
            await engine.dispose()

    return asyncio.run(read())
