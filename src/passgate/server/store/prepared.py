"""Statements run through the driver directly, compiled once (inline SQLite, see store/db.py).

SQLAlchemy Core executes a cached statement in about a hundred microseconds of Python on top
of the driver call: it looks the compiled form up by the statement's cache key, builds an
execution context, binds the parameters through the types' processors and wraps the cursor
in a result. For a statement that is executed again and again (the store's module-level
statements), all of that can be worked out once: the SQL text, the order of the positional
parameters with each one's bind processor, and the result columns with their result
processors. What is left per execution is one loop over the parameters, the driver call and
one loop over each row, with the same type processors SQLAlchemy would use, so the values
going in and coming out are the ones SQLAlchemy's own path gives
(tests/store/test_prepared.py compares the two on every hot statement).

A statement is prepared when it is seen a second time (module-level statements are the same
object every time; a statement built per call never is), and only when nothing in it needs
SQLAlchemy's execution context: no parameters expanded at execution (`IN` lists), no Python-
side column defaults, no parameters computed by a callable. Anything else goes through
SQLAlchemy as before."""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

# Statements seen once, by identity, holding a reference so that an id is never reused for
# another object while it is remembered; bounded, so statements built per call pass through.
_SEEN_LIMIT = 1024
# Prepared (or refused) statements, per dialect name; bounded the same way.
_PREPARED_LIMIT = 1024

_MISSING = object()


def sqlite_execute(
    target: sqlite3.Connection | sqlite3.Cursor, sql: str, parameters: Sequence[Any] = ()
) -> None:
    """Run `sql` on the sqlite3 driver itself, its errors raised as SQLAlchemy raises them
    (`OperationalError` for a busy database, `IntegrityError`, ...), so that callers and the
    app's error handlers see what SQLAlchemy's own path would give them."""
    try:
        target.execute(sql, parameters)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, parameters, exc, sqlite3.Error) from exc


class Prepared:
    """One statement compiled for one dialect, with what running it through the driver needs."""

    __slots__ = (
        "isdelete",
        "isinsert",
        "isupdate",
        "keys",
        "params",
        "results",
        "sql",
        "statement",
    )

    def __init__(
        self,
        statement: Executable,
        sql: str,
        params: Sequence[tuple[str, Any, Callable[[Any], Any] | None]],
        keys: Sequence[str],
        results: Sequence[Callable[[Any], Any] | None],
        *,
        isinsert: bool = False,
        isupdate: bool = False,
        isdelete: bool = False,
    ) -> None:
        self.statement = statement
        # What a `before_cursor_execute` listener reads of an execution context (the
        # read-only guard in store/database.py): it is given this object as the context.
        self.isinsert, self.isupdate, self.isdelete = isinsert, isupdate, isdelete
        self.sql = sql
        # (the parameter's key, its value when not given or _MISSING, its bind processor)
        self.params = tuple(params)
        self.keys = tuple(keys)
        self.results = tuple(results)

    def parameters(self, given: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """The positional parameters for the driver, processed as SQLAlchemy would."""
        given = given or {}
        values = []
        for key, default, process in self.params:
            value = given.get(key, default)
            if value is _MISSING:
                raise InvalidRequestError(f"A value is required for bind parameter {key!r}")
            # As SQLAlchemy does, None goes through the processor too (JSON writes it as
            # the JSON text null, not SQL NULL).
            values.append(value if process is None else process(value))
        return tuple(values)

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        """A result row as a mapping of column keys to processed values."""
        return {
            key: value if process is None or value is None else process(value)
            for key, process, value in zip(self.keys, self.results, values, strict=True)
        }


class PreparedStatements:
    """The per-process cache of prepared statements for one dialect (see the module text)."""

    __slots__ = ("_dialect", "_held", "_prepared", "_seen", "hits")

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        Key = tuple[int, tuple[str, ...] | None]
        self._seen: OrderedDict[Key, Executable] = OrderedDict()
        self._prepared: OrderedDict[Key, Prepared | None] = OrderedDict()
        # The statements behind `_prepared`'s keys, so that their ids are not reused.
        self._held: dict[Key, Executable] = {}
        # Executions that ran prepared (for tests and curiosity).
        self.hits = 0

    def get(self, statement: Executable, parameters: Mapping[str, Any] | None) -> Prepared | None:
        """The prepared form, or None when this statement is to run through SQLAlchemy."""
        # An INSERT or UPDATE compiles to the columns its parameters name (SQLAlchemy's
        # `column_keys`), so the names are part of what is prepared.
        names = tuple(parameters or ()) if getattr(statement, "is_dml", False) else None
        key = (id(statement), names)
        found = self._prepared.get(key, _MISSING)
        if found is not _MISSING:
            assert found is None or isinstance(found, Prepared)
            if found is not None:
                self.hits += 1
            return found
        seen = self._seen.get(key)
        if seen is not statement:
            self._seen[key] = statement
            if len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)
            return None
        del self._seen[key]
        prepared = prepare(statement, self._dialect, names)
        # A refused statement is remembered too (as None, beside a reference that keeps its
        # id from being reused), so it is not compiled again.
        self._prepared[key] = prepared
        self._held[key] = statement
        if len(self._prepared) > _PREPARED_LIMIT:
            dropped, _ = self._prepared.popitem(last=False)
            self._held.pop(dropped, None)
        return prepared


def prepare(
    statement: Executable, dialect: Dialect, column_keys: Sequence[str] | None = None
) -> Prepared | None:
    """Compile `statement` for `dialect` (an INSERT or UPDATE for the columns its parameters
    name), or None when it needs SQLAlchemy's execution."""
    compiled = cast(ClauseElement, statement).compile(
        dialect=dialect, column_keys=list(column_keys) if column_keys is not None else None
    )
    if not isinstance(compiled, SQLCompiler) or not _plain(compiled):
        return None
    names = compiled.positiontup
    if names is None:
        return None
    escaped: Mapping[str, str] = compiled.escaped_bind_names or {}
    by_name = {escaped.get(name, name): bind for bind, name in compiled.bind_names.items()}
    processors = compiled._bind_processors
    params: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
    for name in names:
        bind = by_name.get(name)
        process = processors.get(name)
        if bind is None or bind.callable is not None or not (process is None or callable(process)):
            return None
        default = _MISSING if bind.required else bind.value
        params.append((bind.key, default, process))
    keys, results = [], []
    for entry in compiled._result_columns:
        keys.append(entry.keyname)
        results.append(entry.type._cached_result_processor(dialect, None))
    if len(set(keys)) != len(keys):
        return None
    return Prepared(
        statement,
        compiled.string,
        params,
        keys,
        results,
        isinsert=compiled.isinsert,
        isupdate=compiled.isupdate,
        isdelete=compiled.isdelete,
    )


def _plain(compiled: SQLCompiler) -> bool:
    return not (
        # Textual SQL: its result columns are known only from the cursor.
        compiled.isplaintext
        or compiled._textual_ordered_columns
        or compiled._ad_hoc_textual
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or getattr(compiled, "_collected_params", None)
        or compiled.for_executemany
    )
