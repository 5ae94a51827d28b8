"""All of the command line's printing: JSON for scripts, Rich tables for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) if cell is not None else "" for cell in row))
    console.print(table)


def print_fields(fields: dict[str, Any]) -> None:
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        # Values are data: no Rich markup or :emoji: codes (fingerprints are full of ":cd:").
        console.print(
            f"[bold]{name.ljust(width)}[/bold]  {escape(str(value))}", highlight=False, emoji=False
        )
