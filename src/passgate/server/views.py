"""Rows to wire shapes that more than one API returns."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from passgate.server.schemas import AaguidMapping, AuthenticatorResponse, WebauthnCredential
from passgate.server.services import aaguids


class Authenticator(Protocol):
    """What a response says of an authenticator (the store's `AuthenticatorRow` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def verification_method(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def verified_at(self) -> datetime | None: ...
    @property
    def last_verified_at(self) -> datetime | None: ...
    @property
    def is_default(self) -> bool: ...
    @property
    def email(self) -> str | None: ...
    @property
    def phone_number(self) -> str | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def display_name(self) -> str | None: ...


class Passkey(Protocol):
    """What a response says of a passkey credential (`PasskeyCredentialRow` has it)."""

    @property
    def credential_id(self) -> str: ...
    @property
    def device_id(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def aaguid(self) -> str: ...
    @property
    def backed_up(self) -> bool: ...
    @property
    def device_type(self) -> str: ...
    @property
    def authenticator_attachment(self) -> str | None: ...
    @property
    def flagged_at(self) -> datetime | None: ...
    @property
    def flag_reason(self) -> str | None: ...


def aaguid_mapping(aaguid: str | None) -> AaguidMapping | None:
    """Name and icons of the authenticator model, when the AAGUID list knows it."""
    model = aaguids.describe(aaguid)
    if model is None:
        return None
    return AaguidMapping(
        name=model.name, svg_icon_light=model.icon_light, svg_icon_dark=model.icon_dark
    )


def authenticator_response(
    authenticator: Authenticator, passkey: Passkey | None = None
) -> AuthenticatorResponse:
    webauthn = None
    if passkey is not None:
        mapping = aaguid_mapping(passkey.aaguid)
        webauthn = WebauthnCredential(
            credential_id=passkey.credential_id,
            device_id=passkey.device_id,
            # The name an operator gave it, else the model's ("iCloud Keychain").
            name=passkey.name or (mapping.name if mapping else None),
            aaguid=passkey.aaguid,
            aaguid_mapping=mapping,
            credential_backed_up=passkey.backed_up,
            credential_device_type=passkey.device_type,
            authenticator_attachment=passkey.authenticator_attachment,
            verified_at=authenticator.verified_at,
        )
    return AuthenticatorResponse(
        user_id=authenticator.user_id,
        user_authenticator_id=authenticator.id,
        verification_method=authenticator.verification_method,
        created_at=authenticator.created_at,
        verified_at=authenticator.verified_at,
        last_verified_at=authenticator.last_verified_at,
        is_default=authenticator.is_default,
        email=authenticator.email,
        phone_number=authenticator.phone_number,
        username=authenticator.username,
        display_name=authenticator.display_name,
        webauthn_credential=webauthn,
        errored_at=passkey.flagged_at if passkey else None,
        error_code=passkey.flag_reason if passkey else None,
    )
