"""Addresses and numbers as the methods take them: `normalise_email` (email-validator, no DNS)
and `normalise_phone` (phonenumbers, E.164, a tenant's allowed country calling codes)."""

from __future__ import annotations

import pytest

from passgate.server.services.delivery import normalise_email, normalise_phone
from passgate.server.services.delivery.addresses import mask_email, mask_phone
from passgate.server.services.errors import InvalidRequest


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("uma@example.com", "uma@example.com"),
        ("  Uma.Smith@EXAMPLE.com ", "Uma.Smith@example.com"),
        ("uma@bücher.example", "uma@bücher.example"),
    ],
)
def test_email_addresses_are_normalised(given: str, stored: str) -> None:
    assert normalise_email(given) == stored


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "email is required"),
        ("uma", "not a valid email address"),
        ("uma@", "not a valid email address"),
        ("u ma@example.com", "not a valid email address"),
        ("uma@localhost", "not a valid email address"),
        ("a" * 250 + "@example.com", "longer than 254"),
    ],
)
def test_invalid_email_addresses_are_refused(given: str, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says) as refused:
        normalise_email(given)
    assert refused.value.status_code == 400


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("+64 21 123 4567", "+64211234567"),
        ("+1 (650) 253-0000", "+16502530000"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_numbers_come_out_in_e164(given: str, stored: str) -> None:
    assert normalise_phone(given) == stored


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "phoneNumber is required"),
        ("021 123 4567", "E.164"),
        ("+64 12", "not a valid phone number"),
        ("+999 1234 5678", "not a"),
        ("+64 abc", "not a"),
        ("+" + "1" * 40, "longer than"),
    ],
)
def test_invalid_phone_numbers_are_refused(given: str, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        normalise_phone(given)


def test_the_allow_list_of_country_calling_codes() -> None:
    assert normalise_phone("+64211234567", ["+64", "1"]) == "+64211234567"
    assert normalise_phone("+16502530000", ["+64", "1"]) == "+16502530000"
    with pytest.raises(InvalidRequest, match=r"country calling code \+44") as refused:
        normalise_phone("+442079460958", ["+64", "+1"])
    assert refused.value.error_code == "country_not_allowed"
    assert normalise_phone("+442079460958", []) == "+442079460958"  # empty: every country


def test_masks() -> None:
    assert mask_email("uma@example.com") == "u***@example.com"
    assert mask_phone("+64211234567") == "+64***67"
