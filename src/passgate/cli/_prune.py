"""`passgate db prune`: one pruning run now (services/pruning.py), as each server process does
on its own every few minutes; for cron, when the server's own runs are turned off
(`PASSGATE_PRUNE_INTERVAL_SECONDS=0`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from passgate.cli import _database, _output
from passgate.cli._database import DatabaseUrl
from passgate.server.services import pruning
from passgate.server.settings import DEFAULT_DATABASE_URL
from passgate.server.store.database import create_engine
from passgate.server.store.db import Engines
from passgate.server.store.migrate import upgrade

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def db_prune(database_url: DatabaseUrl = DEFAULT_DATABASE_URL, as_json: AsJson = False) -> None:
    """Delete expired challenges, nonces, rate-limit windows, console links and sessions, and
    actions past their retention (PASSGATE_ACTION_RETENTION_DAYS), and sent or given-up outbox
    messages past theirs (PASSGATE_OUTBOX_RETENTION_DAYS); print how many went."""
    settings = _database.load_settings(database_url=database_url)

    async def run() -> dict[str, int]:
        await upgrade(database_url)
        engines = Engines(create_engine(database_url))
        try:
            return await pruning.prune(
                engines,
                action_retention_days=settings.action_retention_days,
                outbox_retention_days=settings.outbox_retention_days,
            )
        finally:
            await engines.dispose()
            await engines.write.dispose()

    counts = _database.translate_errors(lambda: asyncio.run(run()))
    if as_json:
        _output.print_json(counts)
    else:
        _output.print_fields(counts)
