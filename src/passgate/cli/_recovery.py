"""`passgate tenant recovery`: which methods may recover an account (docs/recovery.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from passgate.cli import _database, _output
from passgate.cli._database import DatabaseUrl
from passgate.server.services import audit, recovery, tenants
from passgate.server.settings import DEFAULT_DATABASE_URL
from passgate.server.store.db import Db

_CHOICES = ", ".join(method.value for method in recovery.ELIGIBLE)


def tenant_recovery(
    tenant_id: Annotated[str, typer.Argument(metavar="TENANT")],
    method: Annotated[
        list[str] | None,
        typer.Option(
            help=f"A method that may recover an account (repeatable; replaces the list): "
            f"{_CHOICES}.",
            show_default=False,
        ),
    ] = None,
    none: Annotated[
        bool,
        typer.Option(
            "--none",
            help="No recovery: only a passkey, security key or push approval, or a token "
            "tracked with add:authenticators, adds an authenticator to an enrolled user.",
        ),
    ] = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show or set the methods whose fresh verification lets a user who lost their devices add
    a new authenticator (default EMAIL_OTP)."""
    if none and method:
        raise _database.CommandError("give --method or --none, not both")

    async def work(db: Db) -> list[str]:
        if none or method:
            chosen = await recovery.set_methods(db, audit.cli_actor(), tenant_id, method or [])
        else:
            chosen = recovery.methods(await tenants.get_tenant(db, tenant_id))
        return [chosen_method.value for chosen_method in chosen]

    shown = _database.run(database_url, work)
    if as_json:
        _output.print_json({"tenantId": tenant_id, "recoveryMethods": shown})
    else:
        typer.echo(f"recovery methods: {', '.join(shown) or 'none'}")
