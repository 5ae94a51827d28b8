"""The Typer application: each command parses its options and calls one service."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from passgate.cli import _database, _output, _passkeys
from passgate.cli._dev import ensure_dev_tenant
from passgate.server.services import tenants
from passgate.server.services.enums import ActionOutcome
from passgate.server.settings import DEFAULT_DATABASE_URL, Settings
from passgate.server.store.migrate import upgrade
from passgate.server.store.tables import Tenant

app = typer.Typer(
    help="Passgate: self-hostable passkey and push authentication (Authsignal-compatible).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tenant_app = typer.Typer(help="Create and inspect tenants.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(db_app, name="db")
tenant_app.command("passkeys")(_passkeys.tenant_passkeys)
app.command("wellknown")(_passkeys.wellknown)
app.command("doctor")(_passkeys.doctor)

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="PASSGATE_DATABASE_URL",
        help="sqlite:///path or postgresql://user@host/db",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def tenant_fields(tenant: Tenant) -> dict[str, Any]:
    return {
        "tenantId": tenant.id,
        "name": tenant.name,
        "rpId": tenant.rp_id,
        "rpName": tenant.rp_name,
        "origins": tenant.origins,
        "secretKeyHint": tenant.secret_key_hint + "…",
        "createdAt": tenant.created_at.isoformat(),
    }


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    dev: Annotated[
        bool, typer.Option("--dev", help="Create (or reuse) a dev tenant and print its keys.")
    ] = False,
) -> None:
    """Apply migrations, then serve the Client API and Server API."""
    import uvicorn

    from passgate.server.app import create_app

    settings = Settings(database_url=database_url)
    _database.translate_errors(lambda: asyncio.run(upgrade(database_url)))
    if dev:
        credentials = ensure_dev_tenant(database_url, port)
        _output.print_fields(
            {
                "Dev tenant": credentials["tenantId"],
                "Secret key": credentials["secretKey"],
                "Base URL": f"http://{host}:{port}/v1",
                "Relying party": "localhost",
            }
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Apply every pending migration."""
    _database.translate_errors(lambda: asyncio.run(upgrade(database_url)))
    typer.echo("database is up to date")


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

    async def work(session: Any) -> dict[str, Any]:
        tenant, secret_key = await tenants.create_tenant(
            session, name=name, rp_id=rp_id, origins=origin or []
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

    async def work(session: Any) -> list[dict[str, Any]]:
        return [tenant_fields(tenant) for tenant in await tenants.list_tenants(session)]

    found = _database.run(database_url, work)
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

    async def work(session: Any) -> dict[str, Any]:
        return tenant_fields(await tenants.get_tenant(session, tenant_id))

    found = _database.run(database_url, work)
    if as_json:
        _output.print_json(found)
    else:
        _output.print_fields(found)


@tenant_app.command("set-action")
def tenant_set_action(
    tenant_id: Annotated[str, typer.Argument(metavar="ID")],
    action_code: Annotated[str, typer.Argument(metavar="ACTION")],
    outcome: Annotated[ActionOutcome, typer.Option(help="State a tracked action starts in.")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Set the outcome an action starts in (default CHALLENGE_REQUIRED)."""

    async def work(session: Any) -> None:
        await tenants.set_action_outcome(session, tenant_id, action_code, outcome)

    _database.run(database_url, work)
    typer.echo(f"{action_code}: {outcome.value}")
