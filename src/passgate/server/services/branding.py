"""A tenant's look on the hosted challenge page: its name (the tenant's own) and an accent
colour, kept in `tenants.settings["branding"]` as `{"accentColor": "#rrggbb"}`.

Only a strict `#rrggbb` is stored: the value ends up inside a `<style>` block, so nothing but
six hex digits may ever reach it. The page derives two more colours from it so any accent
stays readable: the text on accent-coloured buttons (black or white, whichever contrasts
more) and the accent as text on the white card (the default text colour when the accent is
too light to read there)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from passgate.server.services import tenants
from passgate.server.services.errors import InvalidRequest
from passgate.server.store.db import Db
from passgate.server.store.tenants import TenantRow

SETTINGS_KEY = "branding"
ACCENT_COLOR = re.compile(r"^#[0-9a-f]{6}$")
BLACK, WHITE, DEFAULT_TEXT = "#000000", "#ffffff", "#1b1f24"
# WCAG 2 contrast for normal text.
READABLE_CONTRAST = 4.5


@dataclass(frozen=True, kw_only=True, slots=True)
class Accent:
    color: str
    # Text on a button filled with `color`.
    text_on_color: str
    # `color` used as text (links, secondary buttons) on the white card, or a readable stand-in.
    as_text: str


def check_accent_color(value: str) -> str:
    """`value` in lowercase `#rrggbb`, or `InvalidRequest`."""
    color = value.strip().lower()
    if not ACCENT_COLOR.match(color):
        raise InvalidRequest(f"accent colour {value!r} must be #rrggbb, e.g. #2456d6")
    return color


def _luminance(color: str) -> float:
    """WCAG 2 relative luminance of `#rrggbb`."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def accent(tenant: TenantRow) -> Accent | None:
    """The tenant's accent and its derived colours; None when it has not set one."""
    stored = (tenant.settings.get(SETTINGS_KEY) or {}).get("accentColor")
    if not isinstance(stored, str) or not ACCENT_COLOR.match(stored):
        return None
    text = BLACK if contrast(stored, BLACK) >= contrast(stored, WHITE) else WHITE
    as_text = stored if contrast(stored, WHITE) >= READABLE_CONTRAST else DEFAULT_TEXT
    return Accent(color=stored, text_on_color=text, as_text=as_text)


async def set_accent_color(db: Db, tenant_id: str, color: str | None) -> TenantRow:
    """Set (or with None, clear) the tenant's accent colour on the hosted page."""
    tenant = await tenants.get_tenant(db, tenant_id)
    branding = dict(tenant.settings.get(SETTINGS_KEY) or {})
    if color is None:
        branding.pop("accentColor", None)
    else:
        branding["accentColor"] = check_accent_color(color)
    if branding == (tenant.settings.get(SETTINGS_KEY) or {}):
        return tenant  # nothing to save
    return await tenants.save_settings(db, tenant_id, {**tenant.settings, SETTINGS_KEY: branding})
