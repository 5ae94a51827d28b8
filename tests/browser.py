"""Debian's chromium driven by Playwright, with Chrome's virtual authenticator (CDP): the
parts every browser test shares. Chromium is never downloaded; CI installs Debian's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

CHROMIUM = Path(os.environ.get("PASSGATE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A platform authenticator that holds discoverable credentials and verifies its user.
PLATFORM_AUTHENTICATOR = {
    "protocol": "ctap2",
    "ctap2Version": "ctap2_1",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def require_chromium() -> None:
    """Skip the calling module when chromium is missing, except under CI, where it fails."""
    if not CHROMIUM.exists() and not IN_CI:
        pytest.skip(f"no chromium at {CHROMIUM} (CI installs it)", allow_module_level=True)


def add_virtual_authenticator(cdp: Any, **options: Any) -> str:
    cdp.send("WebAuthn.enable", {"enableUI": False})
    created = cdp.send(
        "WebAuthn.addVirtualAuthenticator", {"options": {**PLATFORM_AUTHENTICATOR, **options}}
    )
    return str(created["authenticatorId"])
