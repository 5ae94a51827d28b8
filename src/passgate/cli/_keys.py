"""`passgate keys`: the master key that encrypts tenants' secrets at rest (secrets_box):
make one, see which key the database needs, and rotate it; and a tenant's token signing key
(`rotate-signing`)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from passgate.cli import _database, _output
from passgate.cli._database import DatabaseUrl
from passgate.server.services import audit, secrets_box, tenant_admin, tokens
from passgate.server.services.secrets_box import MasterKey
from passgate.server.settings import DEFAULT_DATABASE_URL, Settings
from passgate.server.store.database import create_engine
from passgate.server.store.db import Db

keys_app = typer.Typer(
    help="The master key that encrypts signing keys, webhook secrets and push credentials; "
    "tenants' token signing keys.",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def check_master_key(settings: Settings) -> None:
    """Before a server starts: the key the database needs is here (or made, for a database
    with no encrypted secret), and plain-text secrets are encrypted. One line otherwise."""

    async def check() -> None:
        engine = create_engine(settings.database_url)
        try:
            await secrets_box.prepare_engine(engine, settings)
        finally:
            await engine.dispose()

    _database.translate_errors(lambda: asyncio.run(check()))


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random master key, for PASSGATE_MASTER_KEY or --new-key-env."""
    typer.echo(MasterKey.generate().encoded)


@keys_app.command("status")
def keys_status(database_url: DatabaseUrl = DEFAULT_DATABASE_URL, as_json: AsJson = False) -> None:
    """Show this host's master key and the keys the database's secrets are encrypted under.
    Exits with 1 when the database needs a key this host does not have."""
    settings = _database.load_settings(database_url=database_url)
    key = _database.translate_errors(lambda: secrets_box.load(settings))

    async def work(db: Db) -> dict[str, int]:
        return await secrets_box.key_ids_in_use(db)

    in_use = _database.run(database_url, work)
    plaintext = in_use.pop(secrets_box.PLAINTEXT, 0)
    missing = sorted(set(in_use) - ({key.key_id} if key else set()))
    status: dict[str, Any] = {
        "keyId": key.key_id if key else None,
        "source": key.source if key else None,
        "keyFile": str(secrets_box.key_file(settings).resolve()),
        "encryptedSecrets": in_use,
        "plaintextSecrets": plaintext,
        "missingKeyIds": missing,
    }
    if as_json:
        _output.print_json(status)
    else:
        under = ", ".join(f"{count} under {kid}" for kid, count in sorted(in_use.items()))
        _output.print_fields(
            {
                "Master key": f"{key.key_id} (from {key.source})" if key else "none",
                "Key file": status["keyFile"],
                "Encrypted secrets": under or "none",
                "Plain-text secrets": plaintext,
            }
        )
    if missing:
        raise _database.CommandError(secrets_box.missing_message(settings, missing))


@keys_app.command("rotate-master")
def keys_rotate_master(
    new_key_env: Annotated[
        str | None,
        typer.Option(
            "--new-key-env",
            metavar="VAR",
            help="Take the new key from this environment variable instead of generating one.",
        ),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Encrypt every secret under a new master key, in one transaction. With a key file, the
    new key replaces it and the old one is kept beside it; with PASSGATE_MASTER_KEY, give
    the new key with --new-key-env and then change the variable on every host."""
    settings = _database.load_settings(database_url=database_url)
    current = _database.translate_errors(lambda: secrets_box.load(settings))
    if current is None:
        raise _database.CommandError(
            f"no master key: set {secrets_box.ENV_VAR} or put the key file at "
            f"{secrets_box.key_file(settings).resolve()}"
        )
    from_file = settings.master_key is None
    new = _new_key(new_key_env, from_file)
    next_path = Path(settings.data_dir) / secrets_box.NEXT_KEY_FILE
    written: list[Path] = []

    async def work(db: Db) -> tuple[MasterKey, int]:
        old = await secrets_box.prepare(db, settings)
        if new.key_id == old.key_id:
            raise _database.CommandError("the new key is the current master key")
        if from_file:
            _write_next(next_path, new)
            written.append(next_path)
        count = await secrets_box.reseal_all(db, old, new)
        await audit.record(
            db,
            audit.cli_actor(),
            "master_key.rotated",
            target_type="master_key",
            target_id=new.key_id,
            details={"from": old.key_id, "to": new.key_id, "secrets": count},
        )
        return old, count

    try:
        old, count = _database.run(database_url, work)
    except BaseException:
        # Nothing was committed: the database still uses the old key.
        if written:
            next_path.unlink(missing_ok=True)
        raise
    typer.echo(f"{count} secrets encrypted under master key {new.key_id} (was {old.key_id})")
    if from_file:
        path, backup = secrets_box.key_file(settings), secrets_box.backup_path(settings, old)
        try:
            os.replace(path, backup)
            os.replace(next_path, path)
        except OSError as exc:
            raise _database.CommandError(
                f"the database uses the new key, which is in {next_path}: move it to {path} ({exc})"
            ) from exc
        typer.echo(f"new key file: {path.resolve()}")
        typer.echo(
            f"old key kept in {backup.resolve()}: database backups made before now need it. "
            "Copy the new key file to every other host and restart their servers."
        )
    else:
        typer.echo(
            f"Set {secrets_box.ENV_VAR} to the value of {new_key_env} on every host and restart "
            "their servers; keep the old key while database backups made before now matter."
        )


@keys_app.command("rotate-signing")
def keys_rotate_signing(
    tenant_id: Annotated[str, typer.Argument(metavar="TENANT")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """Give a tenant a new token signing key (a new kid). New tokens are signed with it at
    once on every server; the old public key stays in the tenant's JWKS, and tokens it signed
    stay valid, until they have all expired (the token lifetime, plus a minute)."""

    async def work(db: Db) -> dict[str, Any]:
        tenant = await tenant_admin.rotate_signing_key(db, audit.cli_actor(), tenant_id)
        retired = tokens.retired_keys(tenant)
        return {
            "tenantId": tenant.id,
            "keyId": tenant.signing_key_id,
            "retiredKeys": [
                {
                    "keyId": key.key_id,
                    "retireAfter": datetime.fromtimestamp(key.retire_after, UTC).isoformat(),
                }
                for key in retired
            ],
        }

    rotated = _database.run(database_url, work)
    if as_json:
        _output.print_json(rotated)
        return
    typer.echo(f"tenant {rotated['tenantId']} signs new tokens with key {rotated['keyId']}")
    for key in rotated["retiredKeys"]:
        typer.echo(f"old key {key['keyId']} stays in the JWKS until {key['retireAfter']}")


def _new_key(variable: str | None, from_file: bool) -> MasterKey:
    if variable is None:
        if not from_file:
            raise _database.CommandError(
                f"the master key comes from {secrets_box.ENV_VAR}: put a new one "
                "(`passgate keys generate`) in another variable and name it with --new-key-env"
            )
        return MasterKey.generate()
    value = os.environ.get(variable)
    if not value:
        raise _database.CommandError(f"--new-key-env: {variable} is not set")
    return _database.translate_errors(lambda: MasterKey.parse(value, variable))


def _write_next(path: Path, key: MasterKey) -> None:
    try:
        secrets_box.write_key_file(path, key)
    except FileExistsError as exc:
        raise _database.CommandError(
            f"{path} exists: another rotation is running, or one stopped before it committed "
            "(`passgate keys status` shows whether the database uses it; if not, delete it)"
        ) from exc
    except OSError as exc:
        raise _database.CommandError(f"cannot write {path}: {exc}") from exc
