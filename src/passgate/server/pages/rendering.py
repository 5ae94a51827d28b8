"""Server-rendered HTML for the hosted challenge pages and the admin console: one Jinja2
environment, and the security headers every page carries.

Every page gets a strict Content-Security-Policy (scripts and styles only from Passgate's own
`/static/`, plus one `<style>` block per page allowed by a nonce, for a tenant's accent
colour), `Referrer-Policy: no-referrer` and `Cache-Control: no-store`, so the tokens in page
URLs never leak to other hosts or caches."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from passgate import __version__

PAGES = Path(__file__).parent
STATIC = PAGES / "static"

environment = Environment(
    loader=FileSystemLoader(PAGES / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def content_security_policy(
    nonce: str, *, frame_ancestors: Sequence[str] = (), connect: Sequence[str] = ()
) -> str:
    """No inline script at all; styles from /static and the nonce'd block; requests only to
    Passgate itself (plus `connect`); framing only by `frame_ancestors` (none by default)."""
    directives = {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": f"'self' 'nonce-{nonce}'",
        "img-src": "'self' data:",
        "connect-src": " ".join(["'self'", *connect]),
        "form-action": "'self'",
        "base-uri": "'none'",
        "frame-ancestors": " ".join(frame_ancestors) or "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    frame_ancestors: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """`template` rendered with `context`, a fresh CSP nonce (`csp_nonce`) and the standard
    security headers. `frame_ancestors` are the origins that may frame the page."""
    nonce = secrets.token_urlsafe(16)
    html = environment.get_template(template).render(
        {**context, "csp_nonce": nonce, "version": __version__, "request": request}
    )
    response = HTMLResponse(html, status_code=status_code)
    response.headers.update(
        {
            "Content-Security-Policy": content_security_policy(
                nonce, frame_ancestors=frame_ancestors
            ),
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            **(headers or {}),
        }
    )
    if not frame_ancestors:
        response.headers["X-Frame-Options"] = "DENY"
    return response
