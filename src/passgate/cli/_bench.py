"""`passgate bench`: server CPU, throughput and latency of full flows against a floor."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def bench(
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Benchmark only this database (it is migrated and filled). Default: SQLite in "
            "a temporary folder, then a scratch database on PostgreSQL at 127.0.0.1:5432 when "
            "reachable.",
            show_default=False,
        ),
    ] = None,
    seconds: Annotated[float, typer.Option(min=0.5, help="Length of each measured run.")] = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Client processes.")] = 4,
    runs: Annotated[int, typer.Option(min=1, help="Runs per flow (medians and ranges).")] = 3,
    users: Annotated[int, typer.Option(min=0, help="Users preloaded.")] = 100_000,
    actions: Annotated[int, typer.Option(min=0, help="Actions preloaded.")] = 1_000_000,
    flows: Annotated[
        list[str] | None,
        typer.Option(
            help="Flows to run (repeatable or comma-separated): track, passkey_sign_up, "
            "passkey_sign_in, push_round_trip. Default: all.",
            show_default=False,
        ),
    ] = None,
    peer: Annotated[
        str | None, typer.Option(help="Also run a peer server for comparison: privacyidea.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the figures as JSON to this file.")
    ] = None,
) -> None:
    """Benchmark full flows against `passgate serve` on a preloaded database (Linux only;
    docs/performance.md#running-the-benchmark)."""
    from passgate.bench.flows import FLOWS
    from passgate.bench.harness import BenchOptions, run_bench
    from passgate.bench.report import table

    chosen = [name.strip() for item in flows or [] for name in item.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in FLOWS]
    if unknown:
        raise typer.BadParameter(
            f"unknown flow {', '.join(unknown)}; known: {', '.join(FLOWS)}", param_hint="--flows"
        )
    if actions and not users:
        raise typer.BadParameter("actions need at least one user", param_hint="--users")
    options = BenchOptions(
        database_url=database_url,
        seconds=seconds,
        concurrency=concurrency,
        runs=runs,
        users=users,
        actions=actions,
        flows=chosen or list(FLOWS),
        peer=peer,
        json_path=json_path,
        command=["passgate", *sys.argv[1:]],
    )
    document = run_bench(options)
    typer.echo(table(document))
    if json_path is not None:
        json_path.write_text(json.dumps(document, indent=2) + "\n")
        typer.echo(f"\nfigures written to {json_path}")
