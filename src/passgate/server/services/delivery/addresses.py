"""Checking and normalising where a message goes: email addresses with `email-validator`
(syntax only: its DNS deliverability check is off, since nothing is fetched at run time) and
phone numbers with `phonenumbers`, written out in E.164 (`+64211234567`).

A tenant may limit the countries it sends SMS and WhatsApp codes to (SMS pumping: fraudsters
make a site text premium-rate numbers they are paid for): `settings["sms"]["allowedCountryCodes"]`,
a list of country calling codes such as `["+64", "+1"]`. Without one every country is allowed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from passgate.server.services.errors import InvalidRequest
from passgate.server.store.tenants import TenantRow

# Longer than any real address or number: refused before the parsers see it.
MAX_EMAIL = 254
MAX_PHONE = 32


def normalise_email(text: str) -> str:
    """The address as it should be stored and sent to (the domain lower-cased and
    IDNA-normalised, the local part as given); `InvalidRequest` says what is wrong."""
    value = text.strip()
    if not value:
        raise InvalidRequest("email is required")
    if len(value) > MAX_EMAIL:
        raise InvalidRequest(f"email is longer than {MAX_EMAIL} characters")
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidRequest(f"email is not a valid email address: {exc}") from exc
    return checked.normalized


def normalise_phone(text: str, allowed_country_codes: Iterable[str] | None = None) -> str:
    """The number in E.164. It must start with `+` and its country calling code; it must be a
    valid number for that country; and with `allowed_country_codes` (e.g. `["+64", "+1"]`;
    None or empty allows all) its calling code must be one of them."""
    value = text.strip()
    if not value:
        raise InvalidRequest("phoneNumber is required")
    if len(value) > MAX_PHONE:
        raise InvalidRequest(f"phoneNumber is longer than {MAX_PHONE} characters")
    if not value.startswith("+"):
        raise InvalidRequest(
            "phoneNumber must be in E.164 format: + and the country calling code, e.g. +64211234567"
        )
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidRequest(f"phoneNumber is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidRequest("phoneNumber is not a valid phone number")
    calling_code = f"+{number.country_code}"
    allowed = {_calling_code(code) for code in allowed_country_codes or ()}
    if allowed and calling_code not in allowed:
        raise InvalidRequest(
            f"phoneNumber: this tenant does not send to country calling code {calling_code}",
            error_code="country_not_allowed",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def allowed_country_codes(tenant: TenantRow) -> list[str] | None:
    """The tenant's allow-list of country calling codes for SMS and WhatsApp, or None (all)."""
    sms = tenant.settings.get("sms")
    codes = sms.get("allowedCountryCodes") if isinstance(sms, Mapping) else None
    if not isinstance(codes, list) or not codes:
        return None
    return [_calling_code(str(code)) for code in codes]


def _calling_code(code: str) -> str:
    """`+64`, `64` and ` +64 ` all mean +64."""
    return "+" + code.strip().lstrip("+")


def mask_email(address: str) -> str:
    """For logs and the audit log: `a***@example.com`."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"


def mask_phone(number: str) -> str:
    """For logs and the audit log: the calling code's start and the last two digits."""
    return f"{number[:3]}***{number[-2:]}" if len(number) > 5 else "***"


def tidy_attribute(text: str, *, phone: bool) -> str:
    """A user's email or phone number as the backend gave it (track, PATCH /users): stored
    normalised when it is a valid address or E.164 number, else as given (trimmed), as
    Authsignal stores it (its own SDK's tests send `1234567890`). It is checked for real when
    a code is sent to it (`normalise_email` / `normalise_phone`)."""
    try:
        return normalise_phone(text) if phone else normalise_email(text)
    except InvalidRequest:
        return text.strip()
