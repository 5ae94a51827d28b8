"""The Typer application: each command parses its options and calls one service."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from passgate.cli import _bench, _database, _delivery, _output, _passkeys, _prune
from passgate.cli._admin import admin_app
from passgate.cli._audit import audit_app
from passgate.cli._backup import db_backup
from passgate.cli._database import DatabaseUrl
from passgate.cli._dev import ensure_dev_tenant
from passgate.cli._device import device_app
from passgate.cli._keys import check_master_key, keys_app
from passgate.cli._otp import tenant_methods, tenant_otp_limits
from passgate.cli._recovery import tenant_recovery
from passgate.cli._webauthn import tenant_webauthn
from passgate.server.services import audit, branding, enrolment, tenant_admin, tenants
from passgate.server.services.enums import ActionOutcome
from passgate.server.services.errors import PassgateError
from passgate.server.services.push import settings as push_settings
from passgate.server.settings import DEFAULT_DATABASE_URL, Settings
from passgate.server.store.db import Db
from passgate.server.store.migrate import upgrade
from passgate.server.store.tenants import TenantRow

app = typer.Typer(
    help="Passgate: self-hostable passkey and push authentication (Authsignal-compatible).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tenant_app = typer.Typer(help="Create, inspect and configure tenants.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(db_app, name="db")
app.add_typer(device_app, name="device")
app.add_typer(admin_app, name="admin")
db_app.command("prune")(_prune.db_prune)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
tenant_app.command("passkeys")(_passkeys.tenant_passkeys)
app.command("wellknown")(_passkeys.wellknown)
app.command("doctor")(_passkeys.doctor)
tenant_app.command("webauthn")(tenant_webauthn)
tenant_app.command("email")(_delivery.tenant_email)
tenant_app.command("sms")(_delivery.tenant_sms)
tenant_app.command("recovery")(tenant_recovery)
tenant_app.command("methods")(tenant_methods)
tenant_app.command("otp-limits")(tenant_otp_limits)
app.command("bench")(_bench.bench)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def tenant_fields(tenant: TenantRow) -> dict[str, Any]:
    return {
        "tenantId": tenant.id,
        "name": tenant.name,
        "rpId": tenant.rp_id,
        "rpName": tenant.rp_name,
        "origins": tenant.origins,
        "secretKeyHint": tenant.secret_key_hint + "…",
        "createdAt": tenant.created_at.isoformat(),
    }


def _reachable(host: str) -> str:
    """An address a browser on this machine can use for what the server listens on."""
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    dev: Annotated[
        bool, typer.Option("--dev", help="Create (or reuse) a dev tenant and print its keys.")
    ] = False,
    origin: Annotated[
        list[str] | None,
        typer.Option(
            help="With --dev: another origin for the dev tenant, such as a local web dev "
            "server (http://localhost:5173). Repeatable."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=256,
            envvar="PASSGATE_WORKERS",
            help="Worker processes sharing the port (PostgreSQL only; SQLite runs one). "
            "Each has its own database pool: see docs/configuration.md#pool-sizing.",
        ),
    ] = 1,
    migrate: Annotated[
        bool | None,
        typer.Option(
            "--migrate/--no-migrate",
            help="Apply pending migrations before serving (default: PASSGATE_MIGRATE_ON_START, "
            "true). --no-migrate: run `passgate db upgrade` as its own deploy step.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Apply migrations (unless told not to), then serve the Client API, the Server API, the
    hosted challenge pages and the admin console."""
    import os

    from passgate.server.observability import configure_logging
    from passgate.server.store.database import async_url, is_sqlite

    if origin and not dev:
        raise _database.CommandError("--origin needs --dev (for other tenants: tenant origins)")
    settings = _database.load_settings(database_url=database_url)
    if workers > 1 and _database.translate_errors(lambda: is_sqlite(async_url(database_url))):
        raise _database.ConfigError(
            f"--workers {workers} needs PostgreSQL: SQLite lets one process write at a time, "
            "so serve it with one worker (or move to postgresql://)"
        )
    if settings.public_url is None:
        # The hosted pages and the console run on this origin; in dev, the listen address.
        settings = settings.model_copy(update={"public_url": f"http://localhost:{port}"})
    configure_logging(json_lines=settings.log_json)
    if settings.redis_url:
        _database.check_redis(settings.redis_url)
    if settings.migrate_on_start if migrate is None else migrate:
        _database.translate_errors(lambda: asyncio.run(upgrade(database_url)))
    else:
        _check_migrated(database_url)
    check_master_key(settings)
    if dev:
        credentials = ensure_dev_tenant(database_url, port, origin or [])
        _output.print_fields(
            {
                "Dev tenant": credentials["tenantId"],
                "Secret key": credentials["secretKey"],
                "Base URL": f"http://{_reachable(host)}:{port}/v1",
                "Relying party": "localhost",
                "Origins": ", ".join(credentials["origins"]),
                "Hosted pages": f"{settings.public_url}/challenge",
                "Admin console": f"{settings.public_url}/admin"
                if settings.console
                else "off (PASSGATE_CONSOLE=false)",
            }
        )
        if settings.console:
            typer.echo(
                "First admin: passgate admin create --email YOU@EXAMPLE.COM "
                f"--url {settings.public_url}"
            )
    if workers == 1:
        _serve_one(settings, host, port)
        return
    # Workers are new processes that read their settings from the environment: hand them
    # what this command decided.
    os.environ["PASSGATE_DATABASE_URL"] = database_url
    os.environ["PASSGATE_PUBLIC_URL"] = str(settings.public_url)
    status = _serve_workers(settings, host, port, workers)
    if status:
        raise typer.Exit(status)


def _check_migrated(database_url: str) -> None:
    """Under --no-migrate: refuse a database that is behind this version (one line, exit 2).
    One that is ahead (a newer version migrated it during a rolling upgrade) is served:
    migrations add before they take away (docs/deployment.md), so old code still works."""
    from alembic.script import ScriptDirectory

    from passgate.server.store.migrate import alembic_config, current_revision

    _database.require_existing(database_url)  # SQLite: do not make an empty one
    found = _database.translate_errors(lambda: asyncio.run(current_revision(database_url)))
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if found == head:
        return
    known = {revision.revision for revision in script.walk_revisions()}
    if found is None or found in known:
        raise _database.ConfigError(
            f"the database is at migration {found or 'none'}, this version needs {head}: "
            "run `passgate db upgrade` first (or serve without --no-migrate)"
        )
    typer.echo(
        f"note: the database is at migration {found}, newer than this version's {head} "
        "(a rolling upgrade); serving",
        err=True,
    )


def _serve_one(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from passgate.server.app import create_app
    from passgate.server.serving import GracefulServer

    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # Which proxies' X-Forwarded-For is believed is PASSGATE_FORWARDED_ALLOW_IPS's to
        # say (server/forwarded.py), not uvicorn's: its own rewriting is off.
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
    )
    GracefulServer(config).run()


def _serve_workers(settings: Settings, host: str, port: int, workers: int) -> int:
    """N worker processes; Prometheus metrics shared through PROMETHEUS_MULTIPROC_DIR (a
    temporary directory, removed afterwards, unless the operator names one)."""
    import os
    import shutil
    import tempfile

    import uvicorn

    from passgate.server.serving import WORKER_APP, supervise

    made = None
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics_dir:
        directory = Path(metrics_dir)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):  # a previous run's figures would be added in
            stale.unlink()
    else:
        made = tempfile.mkdtemp(prefix="passgate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    from prometheus_client import multiprocess

    config = uvicorn.Config(
        WORKER_APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # as in _serve_one
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
    )
    try:
        return supervise(config, workers, on_exit=multiprocess.mark_process_dead)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Apply every pending migration."""
    _database.translate_errors(lambda: asyncio.run(upgrade(database_url)))
    typer.echo("database is up to date")


db_app.command("backup")(db_backup)


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option(help="A name for people.")],
    rp_id: Annotated[str, typer.Option("--rp-id", help="Relying party id: a bare domain.")],
    origin: Annotated[
        list[str] | None,
        typer.Option(help="Extra expected origin (repeatable); https://RPID is always one."),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """Create a tenant and print its secret key: the only time it is shown."""

    async def work(db: Db) -> dict[str, Any]:
        tenant, secret_key = await tenant_admin.create(
            db, audit.cli_actor(), name=name, rp_id=rp_id, origins=origin or []
        )
        return {**tenant_fields(tenant), "secretKey": secret_key}

    created = _database.run(database_url, work)
    if as_json:
        _output.print_json(created)
    else:
        _output.print_fields(created)


@tenant_app.command("list")
def tenant_list(database_url: DatabaseUrl = DEFAULT_DATABASE_URL, as_json: AsJson = False) -> None:
    """List every tenant."""

    async def work(db: Db) -> list[dict[str, Any]]:
        return [tenant_fields(tenant) for tenant in await tenants.list_tenants(db)]

    found = _database.run(database_url, work, read_only=True)
    if as_json:
        _output.print_json(found)
        return
    rows = [(t["tenantId"], t["name"], t["rpId"], ", ".join(t["origins"])) for t in found]
    _output.print_table("Tenants", ["id", "name", "rp id", "origins"], rows)


@tenant_app.command("show")
def tenant_show(
    tenant_id: Annotated[str, typer.Argument(metavar="ID")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """Show one tenant (never its secret key, which is stored hashed)."""

    async def work(db: Db) -> dict[str, Any]:
        return tenant_fields(await tenants.get_tenant(db, tenant_id))

    found = _database.run(database_url, work, read_only=True)
    if as_json:
        _output.print_json(found)
    else:
        _output.print_fields(found)


@tenant_app.command("origins")
def tenant_origins(
    tenant_id: Annotated[str, typer.Argument(metavar="ID")],
    add: Annotated[
        list[str] | None, typer.Option("--add", help="An origin to allow (repeatable).")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="An origin to drop (repeatable).")
    ] = None,
    rp_id: Annotated[str | None, typer.Option("--rp-id", help="A new relying party id.")] = None,
    rp_name: Annotated[str | None, typer.Option("--rp-name", help="A new rp name.")] = None,
    confirm_passkeys: Annotated[
        int | None,
        typer.Option(
            help="A new rp id orphans the tenant's passkeys: give their count to confirm."
        ),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """Change a tenant's origins (browsers on them may call the Client API and use its
    passkeys) and relying party; print the tenant."""

    async def work(db: Db) -> dict[str, Any]:
        changes = tenants.TenantChanges(
            add_origins=add or [],
            remove_origins=remove or [],
            rp_id=rp_id,
            rp_name=rp_name,
            confirm_orphaned_passkeys=confirm_passkeys,
        )
        changed = await tenant_admin.update(db, audit.cli_actor(), tenant_id, changes)
        return tenant_fields(changed)

    changed = _database.run(database_url, work)
    if as_json:
        _output.print_json(changed)
    else:
        _output.print_fields(changed)


@tenant_app.command("branding")
def tenant_branding(
    tenant_id: Annotated[str, typer.Argument(metavar="ID")],
    accent_color: Annotated[
        str | None,
        typer.Option(help="The hosted page's accent colour, #rrggbb; an empty string clears it."),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Set how the tenant's hosted challenge page looks (its name is the tenant's name)."""

    async def work(db: Db) -> str | None:
        if accent_color is not None:
            color = accent_color.strip() or None
            await tenant_admin.set_accent_color(db, audit.cli_actor(), tenant_id, color)
        found = branding.accent(await tenants.get_tenant(db, tenant_id))
        return found.color if found else None

    shown = _database.run(database_url, work)
    typer.echo(f"accent colour: {shown or 'default'}")


@tenant_app.command("set-action")
def tenant_set_action(
    tenant_id: Annotated[str, typer.Argument(metavar="ID")],
    action_code: Annotated[str, typer.Argument(metavar="ACTION")],
    outcome: Annotated[ActionOutcome, typer.Option(help="State a tracked action starts in.")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Set the outcome an action starts in (default CHALLENGE_REQUIRED)."""

    async def work(db: Db) -> None:
        await tenant_admin.set_outcome(db, audit.cli_actor(), tenant_id, action_code, outcome)

    _database.run(database_url, work)
    typer.echo(f"{action_code}: {outcome.value}")


@tenant_app.command("enrolment")
def tenant_enrolment(
    tenant_id: Annotated[str, typer.Argument(metavar="ID")],
    window_minutes: Annotated[
        int | None,
        typer.Option(
            help="Minutes after a challenge verified an action during which its token may add "
            "an authenticator without add:authenticators (0-60; 0: never).",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Show or set who may add an authenticator to an enrolled user (docs/wire.md#scopes)."""

    async def work(db: Db) -> int:
        if window_minutes is not None:
            await tenant_admin.set_enrolment_window(
                db, audit.cli_actor(), tenant_id, window_minutes
            )
        tenant = await tenants.get_tenant(db, tenant_id)
        return int(enrolment.window(tenant).total_seconds() // 60)

    typer.echo(f"enrolment window: {_database.run(database_url, work)} min")


def push_fields(settings: push_settings.PushSettings) -> dict[str, Any]:
    return {
        "Push on track": settings.challenge_on_track,
        "Challenge expiry": f"{settings.challenge_expiry_seconds} s",
        "Number matching": (
            f"on ({settings.code_digits} digits)" if settings.number_matching else "off"
        ),
        "Rate limit": f"{settings.rate_limit} per {settings.rate_limit_window_seconds} s per user",
        "Credential lifetime": (
            f"{settings.credential_lifetime_minutes} min"
            if settings.credential_lifetime_minutes
            else "unlimited"
        ),
        "Webhook URL": settings.webhook_url or "none",
        "Webhook secret": settings.webhook_secret or "none",
        "APNs": f"team {settings.apns['teamId']}, {settings.apns['bundleId']}"
        if settings.apns
        else "not configured",
        "FCM": f"project {settings.fcm['project_id']}" if settings.fcm else "not configured",
    }


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise _database.ConfigError(f"cannot read {path}: {exc}") from exc


def _read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(_read_text(path))
    except ValueError as exc:
        raise _database.ConfigError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _database.ConfigError(f"{path}: expected a JSON object")
    return data


def _read_apns_key(path: Path) -> str:
    """The .p8 file's text, refused here (not at the first push) when it is no APNs key."""
    pem = _read_text(path)
    try:
        push_settings.check_apns_key(pem)
    except PassgateError as exc:
        raise _database.ConfigError(f"{path}: {exc.description}") from exc
    return pem


@tenant_app.command("update")
def tenant_update(
    tenant_id: Annotated[str, typer.Argument(metavar="ID")],
    webhook_url: Annotated[str | None, typer.Option(help="Where push.created goes.")] = None,
    clear_webhook: Annotated[bool, typer.Option("--clear-webhook")] = False,
    rotate_webhook_secret: Annotated[bool, typer.Option("--rotate-webhook-secret")] = False,
    push_expiry: Annotated[int | None, typer.Option(help="Challenge lifetime, s.")] = None,
    number_matching: Annotated[
        bool | None, typer.Option("--number-matching/--no-number-matching")
    ] = None,
    code_digits: Annotated[int | None, typer.Option(help="Digits of the number.")] = None,
    push_rate_limit: Annotated[
        int | None, typer.Option(help="Challenges per user per window.")
    ] = None,
    push_rate_window: Annotated[int | None, typer.Option(help="Rate-limit window, s.")] = None,
    push_on_track: Annotated[
        bool | None, typer.Option("--push-on-track/--no-push-on-track")
    ] = None,
    credential_lifetime: Annotated[
        int | None, typer.Option(help="Device credential lifetime, min.")
    ] = None,
    apns_key_file: Annotated[Path | None, typer.Option(help="APNs .p8 key.", exists=True)] = None,
    apns_key_id: str = "",
    apns_team_id: str = "",
    apns_bundle_id: str = "",
    apns_sandbox: bool = False,
    fcm_service_account: Annotated[Path | None, typer.Option(exists=True)] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """Change a tenant's push settings and print them all."""
    apns = None
    if apns_key_file:
        apns = {
            "privateKey": _read_apns_key(apns_key_file),
            "keyId": apns_key_id,
            "teamId": apns_team_id,
            "bundleId": apns_bundle_id,
            "sandbox": apns_sandbox,
        }
    # A new secret here replaces the old one at once: no previous secret keeps signing (the
    # console's rotation offers a grace period).
    secrets = ["webhook_secret", "previous_webhook_secret", "previous_webhook_secret_expires_at"]
    clear = (["webhook_url", *secrets] if clear_webhook else []) + (
        secrets if rotate_webhook_secret else []
    )

    async def work(db: Db) -> push_settings.PushSettings:
        return await tenant_admin.configure_push(
            db,
            audit.cli_actor(),
            tenant_id,
            clear=clear,
            webhook_url=webhook_url,
            challenge_expiry_seconds=push_expiry,
            number_matching=number_matching,
            code_digits=code_digits,
            rate_limit=push_rate_limit,
            rate_limit_window_seconds=push_rate_window,
            challenge_on_track=push_on_track,
            credential_lifetime_minutes=credential_lifetime,
            apns=apns,
            fcm=_read_json(fcm_service_account),
        )

    fields = push_fields(_database.run(database_url, work))
    if as_json:
        _output.print_json(fields)
    else:
        _output.print_fields(fields)
