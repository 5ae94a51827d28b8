"""What a JSON value must be before we store it: something the response encoder and both
databases can write back out (docs/wire.md#limits-on-stored-values).

Python's `json` parser accepts more than JSON: `NaN` and `Infinity` literals, `1e999` (read as
infinity), lone surrogates from `"\\ud800"` and integers of any size. Stored as they are, such
values make PostgreSQL refuse the write with a 500, make SQLite store `null` in their place,
or make every later read fail as it serialises them. So they are refused at the door, as is
text PostgreSQL cannot hold (NUL) and nesting or size that would make every read expensive.

Every walk here is iterative: a hostile body nested thousands of levels deep must get a 400,
never a `RecursionError`."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_DEPTH = 16
MAX_BYTES = 16 * 1024
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (a NUL, or a lone surrogate), else None."""
    if "\x00" in text:
        return "text may not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text must be valid Unicode (no lone surrogates such as \\ud800)"
    return None


def first_text_problem(value: Any) -> str | None:
    """The first `text_problem` of any string or object key anywhere in a parsed JSON body."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def stored_json_problem(value: Any) -> str | None:
    """Why `value` (parsed JSON) cannot be stored as it is, else None."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return f"is nested more than {MAX_DEPTH} levels deep"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                return "integers must fit in 64 bits (-2**63 to 2**63-1)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "numbers must be finite (no NaN, Infinity or values such as 1e999)"
        else:
            return f"{type(item).__name__} is not a JSON value"
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_BYTES:
        return f"is {size} bytes as JSON, over the limit of {MAX_BYTES}"
    return None


def _check(value: Any) -> Any:
    problem = stored_json_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# A JSON object a request stores (track and user `custom`): use it in every request schema.
StoredJsonObject = Annotated[dict[str, Any], AfterValidator(_check)]
