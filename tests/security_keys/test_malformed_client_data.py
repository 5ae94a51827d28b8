"""clientDataJSON whose `challenge` is JSON but not a string (a number, a list, an object,
null): SK2 and SK4 answer 400 `challenge_not_found` in Authsignal's shape, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from authsignal.client import AuthsignalClient

from tests.live_server import LiveServer
from tests.passkeys.helpers import b64url
from tests.security_keys.helpers import SecurityKeys
from tests.server.test_refusals import assert_error


@pytest.fixture
def keys(server: LiveServer, authsignal: AuthsignalClient) -> Iterator[SecurityKeys]:
    flow = SecurityKeys(server.api_url, authsignal)
    yield flow
    flow.close()


@pytest.mark.parametrize("challenge", [1, 1.5, True, [1], {"a": 1}, None])
def test_a_challenge_that_is_not_a_string_is_refused(keys: SecurityKeys, challenge: object) -> None:
    token = keys.track("sk-malformed")
    client_data = b64url(json.dumps({"type": "webauthn.get", "challenge": challenge}).encode())
    credential = {
        "id": "AA",
        "rawId": "AA",
        "type": "public-key",
        "response": {
            "clientDataJSON": client_data,
            "authenticatorData": "AA",
            "signature": "AA",
            "attestationObject": "AA",
        },
    }
    assert_error(keys.verify(token, credential), 400, "challenge_not_found")
    assert_error(keys.add(token, credential), 400, "challenge_not_found")
