"""`passgate admin ...`: the console's admins. The first admin can only be made here: the
command prints a one-time link (valid 15 minutes) where they make their passkey."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from passgate.cli import _database, _output
from passgate.cli._database import DatabaseUrl
from passgate.server.services import audit
from passgate.server.services.admins import accounts
from passgate.server.settings import DEFAULT_DATABASE_URL
from passgate.server.store.db import Db

admin_app = typer.Typer(
    help="Admins of the console at /admin: create, list, remove, new enrolment links.",
    no_args_is_help=True,
)

Email = Annotated[str, typer.Option("--email", help="The admin's email address.")]
PublicUrl = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="PASSGATE_PUBLIC_URL",
        help="The server's public URL, which the link starts with.",
    ),
]
DEV_URL = "http://localhost:8000"
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _public_url(url: str) -> str:
    """The URL checked as the server checks PASSGATE_PUBLIC_URL."""
    settings = _database.load_settings(public_url=url)
    assert settings.public_url is not None
    return settings.public_url


def _print_link(email: str, url: str) -> None:
    # Plain lines, never wrapped: the link must survive copying from a narrow terminal.
    typer.echo(f"Enrolment link for {email} (works once, for 15 minutes):")
    typer.echo(url)


@admin_app.command("create")
def admin_create(
    email: Email,
    url: PublicUrl = DEV_URL,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Create an admin and print their one-time enrolment link."""
    public_url = _public_url(url)

    async def work(db: Db) -> tuple[str, str]:
        admin, token = await accounts.create_admin(db, audit.cli_actor(), email)
        return admin.email, token

    address, token = _database.run(database_url, work)
    _print_link(address, accounts.enrolment_url(public_url, token))


@admin_app.command("link")
def admin_link(
    email: Email,
    url: PublicUrl = DEV_URL,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Print a new enrolment link for an admin (for example one who lost their passkeys)."""
    public_url = _public_url(url)

    async def work(db: Db) -> str:
        return await accounts.new_link(db, audit.cli_actor(), email)

    token = _database.run(database_url, work)
    _print_link(email.strip().lower(), accounts.enrolment_url(public_url, token))


@admin_app.command("list")
def admin_list(database_url: DatabaseUrl = DEFAULT_DATABASE_URL, as_json: AsJson = False) -> None:
    """List the admins and how many passkeys each has."""

    async def work(db: Db) -> list[dict[str, Any]]:
        return [
            {
                "email": summary.admin.email,
                "passkeys": summary.passkeys,
                "createdAt": summary.admin.created_at.isoformat(),
            }
            for summary in await accounts.list_admins(db)
        ]

    found = _database.run(database_url, work, read_only=True)
    if as_json:
        _output.print_json(found)
        return
    rows = [(a["email"], a["passkeys"], a["createdAt"]) for a in found]
    _output.print_table("Admins", ["email", "passkeys", "created"], rows)


@admin_app.command("remove")
def admin_remove(email: Email, database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """Remove an admin with their passkeys; their sessions end at once."""

    async def work(db: Db) -> None:
        await accounts.remove_admin(db, audit.cli_actor(), email)

    _database.run(database_url, work)
    typer.echo(f"removed {email.strip().lower()}")
