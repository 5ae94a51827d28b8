"""Every statement the hot routes run has an index to use, on SQLite and on PostgreSQL.

The flows of tests/server/hot_flows.py (track, validate, passkey sign-up and sign-in, the push
round trip) run against the live server while its engines record each statement as the driver
received it, with its parameters. Each distinct statement is then explained on a separate
connection to the same database, with the parameters it ran with:

- SQLite: `EXPLAIN QUERY PLAN` must not `SCAN` a table without an index (`SEARCH`, and a
  `SCAN ... USING [COVERING] INDEX`, are fine). A statement without a plan (a plain INSERT)
  has nothing to check.
- PostgreSQL: `EXPLAIN` with `enable_seqscan = off` must not hold a `Seq Scan`. With
  sequential scans priced out, the planner still picks one only where no index can serve
  the statement, so the check holds whatever the tables' sizes.

Neither EXPLAIN runs the statement; each runs in a transaction that is rolled back anyway."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from passgate.server.store.database import sqlite_path
from tests.live_server import LiveServer, Tenant
from tests.server.hot_flows import OPERATIONS, Statement, flows

# Operations answered without the database have nothing to explain.
HOT = [name for name in OPERATIONS if not name.startswith("cached_")]
EXPLAINED = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
# `SCAN <table or alias>` without an index (`SCAN t USING [COVERING] INDEX i` uses one).
SQLITE_SCAN = re.compile(r"^SCAN (\S+)(?!.*USING (COVERING )?INDEX)")
CONSTANT_ROWS = re.compile(r"^SCAN \d+ CONSTANT ROWS$")


def _distinct(statements: list[Statement]) -> Iterator[Statement]:
    seen: set[str] = set()
    for statement in statements:
        if statement.sql not in seen and EXPLAINED.match(statement.sql):
            seen.add(statement.sql)
            yield statement


def _sqlite_scans(database: Path, statements: list[Statement]) -> list[str]:
    found = []
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        for statement in statements:
            connection.execute("BEGIN")
            try:
                plan = connection.execute(
                    f"EXPLAIN QUERY PLAN {statement.sql}", statement.parameters or ()
                ).fetchall()
            finally:
                connection.execute("ROLLBACK")
            details = [str(row[-1]) for row in plan]
            if any(_sqlite_scan(detail, details) for detail in details):
                found.append(f"{statement.shown()}\n      plan: {' | '.join(details)}")
    finally:
        connection.close()
    return found


def _sqlite_scan(detail: str, details: list[str]) -> bool:
    """A full scan of a table (by its name or its alias: SQLite prints the alias). Not one:
    `SCAN CONSTANT ROW` (or `SCAN 2 CONSTANT ROWS`: a multi-row VALUES), a scan of a
    subquery's or CTE's own rows (whose tables show up on lines of their own)."""
    match = SQLITE_SCAN.match(detail)
    if match is None:
        return False
    name = match.group(1)
    made_here = {
        words[1]
        for line in details
        if (words := line.split()) and words[0] in ("MATERIALIZE", "CO-ROUTINE") and len(words) > 1
    }
    constant = detail.startswith("SCAN CONSTANT ROW") or CONSTANT_ROWS.match(detail) is not None
    return not (constant or name.startswith("(") or name in made_here)


def _seq_scans(plan: Any) -> Iterator[str]:
    if isinstance(plan, dict):
        if plan.get("Node Type") == "Seq Scan":
            yield str(plan.get("Relation Name"))
        for value in plan.values():
            yield from _seq_scans(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from _seq_scans(item)


async def _postgresql_scans(database_url: str, statements: list[Statement]) -> list[str]:
    found = []
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        for statement in statements:
            transaction = connection.transaction()
            await transaction.start()
            try:
                await connection.execute("SET LOCAL enable_seqscan = off")
                plan = await connection.fetchval(
                    f"EXPLAIN (FORMAT JSON) {statement.sql}", *(statement.parameters or ())
                )
            finally:
                await transaction.rollback()
            tables = sorted(set(_seq_scans(json.loads(plan))))
            if tables:
                found.append(f"{statement.shown()}\n      Seq Scan on {', '.join(tables)}")
    finally:
        await connection.close()
    return found


@pytest.mark.parametrize("name", HOT)
def test_hot_statements_use_indexes(
    name: str, server: LiveServer, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    with flows(server, tenant, tmp_path) as driver:
        operation = OPERATIONS[name](driver)
    statements = list(_distinct(operation.statements))
    assert statements, f"{name} ran no statement to explain"

    database = sqlite_path(database_url)
    if database is not None:
        scans = _sqlite_scans(database, statements)
    else:
        scans = asyncio.run(_postgresql_scans(database_url, statements))
    dialect = "sqlite" if database is not None else "postgresql"
    print(f"\n[{dialect}] {name}: {len(statements)} distinct statements, {len(scans)} scan")
    for scan in scans:
        print(f"    {scan}")
    assert not scans, f"{name} on {dialect}: statements without an index:\n" + "\n".join(
        f"  {scan}" for scan in scans
    )
