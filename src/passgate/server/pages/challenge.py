"""The hosted challenge page (the `url` a track returns). Being built: see docs/web.md."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
