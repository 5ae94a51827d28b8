"""Cookies that bind a challenge to one browser: a random value in an HttpOnly cookie, and
only its SHA-256 stored with the challenge, so neither a leaked challenge id nor a copy of the
database lets another browser answer it. Used by the Client API's `/web` routes and by the
console's passkey ceremonies (each with its own cookie name and attributes)."""

from __future__ import annotations

import hashlib
import re
import secrets

from starlette.requests import Request

_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_value() -> str:
    return secrets.token_urlsafe(32)


def is_value(value: str | None) -> bool:
    """True for a value `new_value` could have made (anything else is ignored)."""
    return bool(value and _VALUE.match(value))


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def presented(request: Request, name: str) -> str | None:
    """The digest of the cookie `name` this request carries, if it is a well-formed value."""
    value = request.cookies.get(name)
    return digest(value) if value is not None and is_value(value) else None
