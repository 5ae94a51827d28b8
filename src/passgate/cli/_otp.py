"""`passgate tenant methods` (which verification methods a tenant allows) and `passgate tenant
otp-limits` (how many one-time codes it sends), docs/one-time-codes.md#settings."""

from __future__ import annotations

from typing import Annotated

import typer

from passgate.cli import _database, _output
from passgate.cli._database import DatabaseUrl
from passgate.server.services import audit, otp, tenants, users
from passgate.server.services.enums import VerificationMethod
from passgate.server.settings import DEFAULT_DATABASE_URL
from passgate.server.store.db import Db

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_METHODS = ", ".join(method.value for method in VerificationMethod)


def tenant_methods(
    tenant_id: Annotated[str, typer.Argument(metavar="TENANT")],
    allow: Annotated[
        list[str] | None,
        typer.Option(
            help=f"A method the tenant allows (repeatable; replaces the list): {_METHODS}.",
            show_default=False,
        ),
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Back to the default: every method Passgate serves.")
    ] = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """Show or set the verification methods a tenant allows (track and get_user report them;
    a method's routes refuse it, 403, when it is not allowed)."""
    if default and allow:
        raise _database.CommandError("give --allow or --default, not both")

    async def work(db: Db) -> list[str]:
        if not (default or allow):
            return users.allowed_methods(await tenants.get_tenant(db, tenant_id))
        chosen = await users.set_allowed_methods(db, tenant_id, [] if default else allow or [])
        await audit.record(
            db,
            audit.cli_actor(),
            "tenant.methods.changed",
            target_type="tenant",
            target_id=tenant_id,
            tenant_id=tenant_id,
            details={"allowedVerificationMethods": chosen},
        )
        return chosen

    shown = _database.run(database_url, work)
    if as_json:
        _output.print_json({"tenantId": tenant_id, "allowedVerificationMethods": shown})
    else:
        typer.echo(f"allowed methods: {', '.join(shown)}")


def tenant_otp_limits(
    tenant_id: Annotated[str, typer.Argument(metavar="TENANT")],
    per_user: Annotated[
        int | None, typer.Option(min=0, help="Codes to one user per window (0: no limit).")
    ] = None,
    per_destination: Annotated[
        int | None,
        typer.Option(min=0, help="Codes to one address or number per window (0: no limit)."),
    ] = None,
    per_ip: Annotated[
        int | None,
        typer.Option(min=0, help="Codes asked for from one client address per window."),
    ] = None,
    per_tenant: Annotated[
        int | None, typer.Option(min=0, help="Codes the tenant sends per window (0: no limit).")
    ] = None,
    window_seconds: Annotated[
        int | None, typer.Option(min=1, help="The window of the limits above, in seconds.")
    ] = None,
    daily_budget: Annotated[
        int | None,
        typer.Option(min=0, help="Codes the tenant sends per UTC day, in all (0: no budget)."),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """Show or change how many one-time codes (email, SMS, WhatsApp) a tenant sends."""
    given = {
        "perUser": per_user,
        "perDestination": per_destination,
        "perIp": per_ip,
        "perTenant": per_tenant,
        "windowSeconds": window_seconds,
        "dailyBudget": daily_budget,
    }
    changes = {name: value for name, value in given.items() if value is not None}

    async def work(db: Db) -> dict[str, int]:
        if not changes:
            return otp.SendLimits.of(await tenants.get_tenant(db, tenant_id)).wire()
        limits = (await otp.set_limits(db, tenant_id, changes)).wire()
        await audit.record(
            db,
            audit.cli_actor(),
            "tenant.otp_limits.changed",
            target_type="tenant",
            target_id=tenant_id,
            tenant_id=tenant_id,
            details=limits,
        )
        return limits

    shown = _database.run(database_url, work)
    if as_json:
        _output.print_json({"tenantId": tenant_id, "otpLimits": shown})
    else:
        for name, value in shown.items():
            typer.echo(f"{name}: {value}")
