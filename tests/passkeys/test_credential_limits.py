"""Limits on what a registration stores, through the real server: credential ids up to
WebAuthn's 1,023 bytes (which fit the column on both databases), and `transports`."""

from __future__ import annotations

from typing import Any

from passgate.server import limits
from passgate.server.services.relying_party import MAX_CREDENTIAL_ID_BYTES, b64decode_any
from tests.live_server import LiveServer
from tests.passkeys.helpers import Ceremony, b64url
from tests.passkeys.test_attestation import make_assertion, make_registration, stored
from tests.server.test_refusals import assert_error


def none_statement(*_: Any) -> dict[str, Any]:
    return {}


def test_credential_ids_up_to_1023_bytes(server: LiveServer, ceremony: Ceremony) -> None:
    assert len(b64url(bytes(MAX_CREDENTIAL_ID_BYTES))) <= limits.CREDENTIAL_ID
    longest = bytes([7]) * MAX_CREDENTIAL_ID_BYTES
    token, challenge_id, options = ceremony.registration_options("u-long-id")
    made = make_registration(
        options, "https://localhost", "none", none_statement, credential_id=longest
    )
    added = ceremony.add(token, challenge_id, made.credential)
    assert added.status_code == 200, added.text
    assert stored(server, longest).credential_id == b64url(longest)
    challenge_id, options = ceremony.authentication_options()
    verified = ceremony.verify(challenge_id, make_assertion(made, options, "https://localhost"))
    assert verified.status_code == 200, verified.text

    too_long = bytes([8]) * (MAX_CREDENTIAL_ID_BYTES + 1)
    token, challenge_id, options = ceremony.registration_options("u-too-long-id")
    made = make_registration(
        options, "https://localhost", "none", none_statement, credential_id=too_long
    )
    refused = ceremony.add(token, challenge_id, made.credential)
    assert_error(refused, 400, "malformed_credential")
    assert "1023" in refused.json()["errorDescription"]
    challenge_id, options = ceremony.authentication_options()
    refused = ceremony.verify(challenge_id, make_assertion(made, options, "https://localhost"))
    assert_error(refused, 400, "malformed_credential")


def _register(ceremony: Ceremony, user_id: str, transports: Any) -> Any:
    token, challenge_id, options = ceremony.registration_options(user_id)
    made = make_registration(options, "https://localhost", "none", none_statement)
    credential = {**made.credential, "response": {**made.credential["response"]}}
    credential["response"]["transports"] = transports
    return ceremony.add(token, challenge_id, credential)


def test_transports_known_names_kept_unknown_dropped(
    server: LiveServer, ceremony: Ceremony
) -> None:
    """Known transports are stored in order, once each; names WebAuthn does not define are
    dropped (they are only hints for later sign-ins); null means none."""
    cases = [
        (
            ["internal", "hybrid", "carrier-pigeon", "internal", "usb"],
            ["internal", "hybrid", "usb"],
        ),
        (["nfc", "ble", "smart-card", "cable"], ["nfc", "ble", "smart-card", "cable"]),
        (None, []),
        ([], []),
    ]
    for number, (sent, kept) in enumerate(cases):
        added = _register(ceremony, f"u-transports-{number}", sent)
        assert added.status_code == 200, added.text
        row = stored(server, b64decode_any(added.json()["credentialId"]))
        assert row.transports == kept


def test_transports_beyond_the_limits_are_refused(ceremony: Ceremony) -> None:
    for number, sent in enumerate(
        [
            ["usb"] * 9,
            ["usb", "x" * 33],
            "usb",
            ["usb", 1],
            {"usb": True},
        ]
    ):
        refused = _register(ceremony, f"u-bad-transports-{number}", sent)
        assert_error(refused, 400, "malformed_credential")
        assert "transports" in refused.json()["errorDescription"]
