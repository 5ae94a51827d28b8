"""Users: rows and statements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class UserRow:
    """A row of `users` (store/tables.py says what each column means)."""

    tenant_id: str
    user_id: str
    handle: str
    email: str | None
    email_verified: bool
    phone_number: str | None
    phone_number_verified: bool
    username: str | None
    display_name: str | None
    custom: dict[str, Any] | None
    locale: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> UserRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})
