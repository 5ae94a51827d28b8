"""`passgate db backup PATH`: a consistent copy of a live SQLite database, taken with SQLite's
online backup API while servers keep writing. Copying the database file alone under WAL misses
the commits still in `-wal`, and copying the three files while a server writes can pair a
database with a WAL from a different moment. PostgreSQL has its own tools (pg_dump)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Annotated

import typer

from passgate.cli import _database
from passgate.cli._database import DatabaseUrl
from passgate.server.settings import DEFAULT_DATABASE_URL
from passgate.server.store.database import async_url, is_sqlite

# How long the backup waits for a lock (SQLite's busy timeout). In WAL mode a reader never
# waits for writers; this covers a database that is not (yet) in WAL mode, or a checkpoint
# that truncates the WAL.
BUSY_TIMEOUT_SECONDS = 30.0


def db_backup(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="The backup file to write; it must not exist. Its directory must.",
        ),
    ],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Copy a live SQLite database to PATH with SQLite's online backup (consistent while
    servers write; one self-contained file, checked with PRAGMA integrity_check). For
    PostgreSQL, use pg_dump."""
    source = _sqlite_source(database_url)
    if path.exists() or path.is_symlink():
        raise _database.CommandError(f"{path} exists: give a new file name")
    if not path.parent.is_dir():
        raise _database.CommandError(f"no directory {path.parent} for the backup")
    size = _database.translate_errors(lambda: backup(source, path))
    typer.echo(f"backed up {source} to {path} ({size} bytes, integrity ok)")


def _sqlite_source(database_url: str) -> Path:
    """The SQLite file to back up; a one-line refusal for anything else."""
    url = _database.translate_errors(lambda: async_url(database_url))
    if not is_sqlite(url):
        raise _database.ConfigError(
            "passgate db backup copies SQLite databases; for PostgreSQL use pg_dump "
            "(docs/deployment.md#backup-and-restore)"
        )
    if not url.database or url.database == ":memory:":
        raise _database.ConfigError("an in-memory SQLite database has nothing to back up")
    _database.require_existing(database_url)
    return Path(url.database)


def backup(source: Path, target: Path) -> int:
    """Copy `source` into a new file `target` (mode 0600) in one step of SQLite's backup API:
    one read transaction, so the copy is the database as of one commit, and in WAL mode
    writers carry on meanwhile. The copy is written beside `target` under a temporary name,
    switched out of WAL mode (one file, no -wal or -shm), checked, synced and only then
    linked to `target` (never over an existing file). Returns its size in bytes."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        # 0600 from the start: the database holds encrypted secrets and hashed keys.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError as exc:
        raise _database.CommandError(
            f"{partial} exists: another backup to {target} is running, or one was killed "
            "(then delete it)"
        ) from exc
    try:
        check = _copy(source, partial)
        if check != ["ok"]:
            raise _database.CommandError(
                f"the copy failed PRAGMA integrity_check: {check[0]}; the database itself "
                "may be damaged (run PRAGMA integrity_check on it)"
            )
        _fsync(partial)
        try:
            # A hard link, not a rename: it never replaces a file that appeared meanwhile.
            os.link(partial, target)
        except FileExistsError as exc:
            raise _database.CommandError(f"{target} appeared during the backup: kept") from exc
        _fsync(target.parent)
        return target.stat().st_size
    finally:
        partial.unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> list[str]:
    """The backup itself; returns what PRAGMA integrity_check says of the copy."""
    try:
        # mode=rw: never create the source (a mistyped path is refused before this).
        reader = sqlite3.connect(
            f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_SECONDS
        )
        try:
            writer = sqlite3.connect(target, timeout=BUSY_TIMEOUT_SECONDS)
            try:
                reader.backup(writer, pages=-1)
                writer.execute("PRAGMA journal_mode=DELETE")
                return [row[0] for row in writer.execute("PRAGMA integrity_check")]
            finally:
                writer.close()
        finally:
            reader.close()
    except sqlite3.Error as exc:
        raise _database.CommandError(f"cannot back up {source}: {exc}") from exc


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        # Some file systems refuse to sync a directory; the rename is still done.
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
