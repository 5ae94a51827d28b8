"""Authenticators (what a user verifies with): rows and statements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthenticatorRow:
    """A row of `authenticators` (store/tables.py says what each column means)."""

    id: str
    tenant_id: str
    user_id: str
    verification_method: str
    email: str | None
    phone_number: str | None
    username: str | None
    display_name: str | None
    is_default: bool
    created_at: datetime
    verified_at: datetime | None
    last_verified_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> AuthenticatorRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})
