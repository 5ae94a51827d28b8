"""Actions: rows and statements. The state machine is services/actions.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionRow:
    """A row of `actions` (store/tables.py says what each column means)."""

    id: str
    tenant_id: str
    user_id: str
    action_code: str
    idempotency_key: str
    state: str
    state_updated_at: datetime
    created_at: datetime
    updated_at: datetime
    verification_method: str | None
    verified_by_authenticator_id: str | None
    ip_address: str | None
    user_agent: str | None
    device_id: str | None
    custom: dict[str, Any] | None
    scope: str | None
    redirect_url: str | None
    locale: str | None
    validated_at: datetime | None
    origin: str
    authenticator_added_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> ActionRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})
