"""`passgate audit`: read a tenant's audit log (what the console's Activity page and the
Server API's `GET /v1/audit-events` show)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from passgate.cli import _database, _output
from passgate.cli._database import DatabaseUrl
from passgate.server.services import audit
from passgate.server.settings import DEFAULT_DATABASE_URL
from passgate.server.store.audit import AuditEventRow
from passgate.server.store.db import Db

audit_app = typer.Typer(help="The audit log: who changed what, and when.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def event_fields(event: AuditEventRow) -> dict[str, Any]:
    """An event as `GET /v1/audit-events` shows it (camelCase; absent values left out)."""
    fields = {
        "id": event.id,
        "occurredAt": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "actorType": event.actor_type,
        "actorId": event.actor_id,
        "action": event.action,
        "targetType": event.target_type,
        "targetId": event.target_id,
        "source": event.source,
        "details": event.details,
    }
    return {name: value for name, value in fields.items() if value is not None}


@audit_app.command("list")
def audit_list(
    tenant_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[TENANT]",
            help="A tenant id; without one, every event (master key rotations, admins, ...).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=audit.MAX_PAGE, help="Events to show, newest first.")
    ] = 50,
    before: Annotated[
        str | None,
        typer.Option(help="Show events older than this cursor (the last page's nextCursor)."),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    as_json: AsJson = False,
) -> None:
    """List a tenant's audit events, newest first: changes by admins and operators, the
    API's (authenticators added and removed) and what Passgate noticed (security.*)."""

    async def work(db: Db) -> audit.EventPage:
        if tenant_id is None:
            return await audit.list_events(db, before=before, limit=limit)
        return await audit.tenant_events(db, tenant_id, before=before, limit=limit)

    page = _database.run(database_url, work, read_only=True)
    events = [event_fields(event) for event in page.events]
    if as_json:
        _output.print_json({"events": events, "nextCursor": page.next_cursor})
        return
    rows = [
        (
            event["occurredAt"],
            " ".join(filter(None, (event["actorType"], event.get("actorId")))),
            event["action"],
            event.get("targetId", ""),
            json.dumps(event["details"], sort_keys=True) if "details" in event else "",
        )
        for event in events
    ]
    title = f"Audit log of tenant {tenant_id}" if tenant_id else "Audit log"
    _output.print_table(title, ["when", "who", "action", "target", "details"], rows)
    if page.next_cursor:
        typer.echo(f"older events: --before '{page.next_cursor}'")
