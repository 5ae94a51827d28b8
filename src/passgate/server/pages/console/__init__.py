"""The admin console at /admin. Being built: see docs/web.md."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/admin", include_in_schema=False)
