"""Reading the console's forms into typed values, and saving them all-or-nothing.

Parsing errors are `InvalidRequest`s naming the field, like the services' own refusals, so a
form shows either the same way: inline, above the form, with what was typed kept."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from passgate.server.database import Database
from passgate.server.services.errors import Conflict, InvalidRequest

T = TypeVar("T")
_SEPARATORS = re.compile(r"[\s,]+")
# Grace periods offered for key rotations, in seconds, with their labels.
GRACE_CHOICES = {
    0: "none: the old one stops now",
    3600: "1 hour",
    86_400: "24 hours",
    7 * 86_400: "7 days",
    30 * 86_400: "30 days",
}


Refusal = InvalidRequest | Conflict


async def attempt(
    db: Database, work: Callable[[], Awaitable[T]]
) -> tuple[T | None, Refusal | None]:
    """Run `work` in a savepoint. When it refuses the input (`InvalidRequest`, `Conflict`),
    everything it wrote is undone and the refusal is returned for the form to show; the page
    then renders normally and the request's transaction commits nothing of the change."""
    try:
        async with db.savepoint():
            return await work(), None
    except (InvalidRequest, Conflict) as exc:
        return None, exc


def lines(text: str) -> list[str]:
    """One value per line; blank lines ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def whole_number(text: str, label: str) -> int | None:
    """An optional whole number; None when the field is empty."""
    value = text.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(f"{label} must be a whole number, not {value!r}") from None


def required_number(text: str, label: str) -> int:
    value = whole_number(text, label)
    if value is None:
        raise InvalidRequest(f"{label} is required")
    return value


def android_apps(text: str) -> list[dict[str, Any]]:
    """Lines of `package.name FINGERPRINT[, FINGERPRINT...]` as the passkey settings spell
    Android apps; the fingerprints themselves are checked by those settings."""
    apps = []
    for number, line in enumerate(lines(text), start=1):
        package, *fingerprints = [part for part in _SEPARATORS.split(line) if part]
        if not fingerprints:
            raise InvalidRequest(
                f"Android apps, line {number}: give the package name, then its SHA-256 "
                "signing-certificate fingerprints (AA:BB:...)"
            )
        apps.append({"packageName": package, "sha256CertFingerprints": fingerprints})
    return apps


def android_lines(apps: list[dict[str, Any]]) -> str:
    """The textarea form of stored Android apps."""
    return "\n".join(
        f"{app['packageName']} {', '.join(app['sha256CertFingerprints'])}" for app in apps
    )


def grace(text: str) -> timedelta:
    seconds = whole_number(text, "The grace period")
    if seconds is None or seconds not in GRACE_CHOICES:
        raise InvalidRequest("choose one of the grace periods offered")
    return timedelta(seconds=seconds)
