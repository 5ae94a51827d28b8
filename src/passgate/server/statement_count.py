"""Opt-in statement counting for benchmarks: with `PASSGATE_COUNT_STATEMENTS=1` every SQL
statement the app's engines send is counted (transaction control excluded) and the total is
served at `GET /debug/statements`. Off by default: nothing is attached and the route is absent."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

ENVIRONMENT_VARIABLE = "PASSGATE_COUNT_STATEMENTS"
_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END")


def enabled() -> bool:
    return os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


class StatementCounter:
    """Counts statements in one process (the event loop's thread; a plain int is enough)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip()[:9].upper().startswith(_TRANSACTION_CONTROL):
            self.count += 1


def install(app: FastAPI, *engines: AsyncEngine | Engine) -> None:
    """Attach the counter to each engine and add the route, when the variable is set."""
    if not enabled():
        return
    counter = StatementCounter()
    seen: set[int] = set()
    for engine in engines:
        sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        if id(sync_engine) in seen:
            continue
        seen.add(id(sync_engine))
        event.listen(sync_engine, "before_cursor_execute", counter)

    @app.get("/debug/statements", include_in_schema=False)
    async def statements() -> dict[str, int]:
        return {"statements": counter.count}
