"""Property tests for everything Passgate parses from a request, driven through a real server:
whatever the bytes, the answer is a 2xx or a 4xx in Authsignal's error shape, never a 5xx.

Hypothesis builds inputs that are almost right as well as plain noise: clientDataJSON with the
real challenge and origin but odd types, CBOR attestation objects around authenticator data
with a correct rp id hash and broken credential data, COSE keys with real and unknown
algorithms, base64 in every alphabet and padding, push public keys of every shape, and JSON
`custom` values with surrogates, huge numbers and deep nesting. The parsers under test:
clientDataJSON, authenticator data, CBOR, COSE keys, base64 variants, the push `publicKey`
and stored JSON values."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Iterator
from typing import Any

import cbor2
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passgate.authenticators import SoftwareAuthenticator
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import basic, bearer

EXAMPLES = 60
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
ORIGIN = "https://localhost"
RP_ID_HASH = hashlib.sha256(b"localhost").digest()
CHALLENGE = "__challenge__"


@pytest.fixture(scope="module")
def parser_server(database_url: str) -> Iterator[LiveServer]:
    """A server of its own: each example asks for a fresh challenge, which must not meet other
    tests' rate limits."""
    live = LiveServer(database_url, client_rate_limit_per_ip=0, client_rate_limit_per_tenant=0)
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def site(parser_server: LiveServer) -> Tenant:
    return parser_server.create_tenant()


@pytest.fixture(scope="module")
def api(parser_server: LiveServer, site: Tenant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=parser_server.api_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def enrolled(
    api: httpx.Client, site: Tenant, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A user with one real passkey, so assertions for its credential id reach the signature
    check instead of stopping at "unknown credential"."""
    device = SoftwareAuthenticator(tmp_path_factory.mktemp("passkey") / "keys", passphrase="x")
    token = _track(api, site, "parsed", scope="add:authenticators")
    options = api.post(
        "/client/user-authenticators/passkey/registration-options",
        headers=bearer(token),
        json={"username": "parsed"},
    ).json()
    added = api.post(
        "/client/user-authenticators/passkey",
        headers=bearer(token),
        json={
            "challengeId": options["challengeId"],
            "registrationCredential": device.create(options["options"]),
        },
    )
    assert added.status_code == 200, added.text
    return {"credentialId": added.json()["credentialId"], "userId": "parsed"}


def _track(api: httpx.Client, site: Tenant, user: str, **body: Any) -> str:
    response = api.post(f"/users/{user}/actions/signIn", json=body, auth=(site.secret_key, ""))
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _assert_handled(response: httpx.Response, seen: set[str] | None = None) -> None:
    """A 2xx, or a 4xx in the error shape; `seen` collects the error descriptions, to show a
    property got past the first check instead of bouncing off one refusal every time."""
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"], body
        if seen is not None:
            seen.add(str(body.get("errorDescription") or body["error"])[:40])


# Strategies --------------------------------------------------------------------------------


def _encode(data: bytes, variant: str) -> str:
    if variant == "url":
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    if variant == "url-padded":
        return base64.urlsafe_b64encode(data).decode()
    if variant == "standard":
        return base64.b64encode(data).decode()
    return base64.b64encode(data).decode().replace("=", "") + " \n"


encodings = st.sampled_from(["url", "url-padded", "standard", "broken"])
noise = st.binary(max_size=300)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)


@st.composite
def client_data_json(draw: st.DrawFn, kind: str) -> bytes:
    """clientDataJSON with `CHALLENGE` where the test puts the real challenge once it has one
    (drawing must not depend on the server's answers)."""
    challenge = CHALLENGE
    if draw(st.integers(0, 5)) == 0:
        return draw(noise)
    fields: dict[str, Any] = {
        "type": draw(
            st.sampled_from([kind, "webauthn.get", "webauthn.create", "", "x"]) | json_scalars
        ),
        "challenge": draw(st.sampled_from([challenge, challenge + "=", ""]) | json_scalars),
        "origin": draw(st.sampled_from([ORIGIN, "https://evil.example", "null"]) | json_scalars),
    }
    if draw(st.booleans()):
        fields["crossOrigin"] = draw(json_scalars)
    if draw(st.booleans()):
        fields["topOrigin"] = draw(st.sampled_from([ORIGIN, "https://evil.example"]) | json_scalars)
    if draw(st.booleans()):
        fields["tokenBinding"] = draw(
            st.dictionaries(st.text(max_size=8), json_scalars, max_size=3) | json_scalars
        )
    text = json.dumps(fields)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode()


cose_values = (
    st.integers(min_value=-(2**65), max_value=2**65) | st.binary(max_size=80) | st.text(max_size=8)
)


@st.composite
def cose_key(draw: st.DrawFn) -> bytes:
    key: dict[Any, Any] = {
        1: draw(st.sampled_from([1, 2, 3, 7, 0, -1]) | cose_values),
        3: draw(
            st.sampled_from([-7, -8, -35, -36, -37, -257, -48, -49, -50, 0, 999]) | cose_values
        ),
    }
    for label in draw(st.lists(st.sampled_from([-1, -2, -3, 4, 5]), max_size=4, unique=True)):
        key[label] = draw(
            st.sampled_from([1, 6, 7]) | st.binary(min_size=0, max_size=300) | cose_values
        )
    encoded = cbor2.dumps(key)
    if draw(st.integers(0, 6)) == 0:
        encoded = encoded[: draw(st.integers(0, len(encoded)))]
    return encoded


@st.composite
def authenticator_data(draw: st.DrawFn, with_credential: bool) -> bytes:
    if draw(st.integers(0, 6)) == 0:
        return draw(noise)
    rp_id_hash = draw(st.sampled_from([RP_ID_HASH]) | st.binary(min_size=32, max_size=32))
    flags = draw(st.integers(0, 255))
    if with_credential and draw(st.booleans()):
        flags |= 0x40
    data = rp_id_hash + bytes([flags]) + struct.pack(">I", draw(st.integers(0, 2**32 - 1)))
    if flags & 0x40:
        credential_id = draw(st.binary(max_size=80))
        declared = draw(st.sampled_from([len(credential_id)]) | st.integers(0, 65535))
        data += draw(st.binary(min_size=16, max_size=16)) + struct.pack(">H", declared)
        data += credential_id + draw(cose_key())
    if flags & 0x80:
        data += draw(st.binary(max_size=40) | st.builds(cbor2.dumps, json_scalars))
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.binary(max_size=64)
    | st.text(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def attestation_object(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 6)) == 0:
        return draw(noise)
    statement: dict[str, Any] = {
        "fmt": draw(
            st.sampled_from(["none", "packed", "fido-u2f", "tpm", "android-key", "apple"])
            | st.text(max_size=10)
            | st.integers()
        ),
        "attStmt": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "alg": st.sampled_from([-7, -257, -8]) | st.integers(),
                    "sig": st.binary(max_size=80),
                    "x5c": st.lists(st.binary(max_size=120), max_size=3) | cbor_values,
                    "ver": st.sampled_from(["2.0"]) | st.text(max_size=4),
                },
            )
            | cbor_values
        ),
        "authData": draw(authenticator_data(with_credential=True) | cbor_values),
    }
    return cbor2.dumps(statement)


def _with_challenge(client_data: bytes, challenge: str, variant: str) -> str:
    return _encode(client_data.replace(CHALLENGE.encode(), challenge.encode()), variant)


# Properties ---------------------------------------------------------------------------------


def test_registration_credentials_never_make_a_server_error(
    api: httpx.Client, site: Tenant
) -> None:
    token = _track(api, site, "registering", scope="add:authenticators")
    refusals: set[str] = set()

    @given(data=st.data())
    @PROPERTY
    def register(data: st.DataObject) -> None:
        variant = data.draw(encodings)
        client_data = data.draw(client_data_json("webauthn.create"))
        raw_id = data.draw(st.binary(max_size=64))
        credential: dict[str, Any] = {
            "id": data.draw(st.sampled_from([_encode(raw_id, "url")]) | st.text(max_size=20)),
            "rawId": _encode(raw_id, variant),
            "type": data.draw(st.sampled_from(["public-key", "x"])),
            "response": {
                "clientDataJSON": client_data,
                "attestationObject": _encode(data.draw(attestation_object()), variant),
                "transports": data.draw(
                    st.lists(st.sampled_from(["usb", "internal", "hybrid"]) | st.text(max_size=5))
                ),
            },
            "clientExtensionResults": data.draw(
                st.dictionaries(st.text(max_size=8), json_scalars, max_size=2)
            ),
        }
        if data.draw(st.booleans()):
            credential["authenticatorAttachment"] = data.draw(
                st.sampled_from(["platform", "cross-platform"]) | json_scalars
            )
        options = api.post(
            "/client/user-authenticators/passkey/registration-options",
            headers=bearer(token),
            json={},
        )
        assert options.status_code == 200, options.text
        credential["response"]["clientDataJSON"] = _with_challenge(
            client_data, options.json()["options"]["challenge"], variant
        )
        response = api.post(
            "/client/user-authenticators/passkey",
            headers=bearer(token),
            json={
                "challengeId": options.json()["challengeId"],
                "registrationCredential": credential,
            },
        )
        _assert_handled(response, refusals)

    register()
    assert len(refusals) >= 4, refusals


def test_assertions_never_make_a_server_error(
    api: httpx.Client, site: Tenant, enrolled: dict[str, Any]
) -> None:
    refusals: set[str] = set()

    @given(data=st.data())
    @PROPERTY
    def verify(data: st.DataObject) -> None:
        variant = data.draw(encodings)
        client_data = data.draw(client_data_json("webauthn.get"))
        credential_id = data.draw(
            st.sampled_from([enrolled["credentialId"]]) | st.text(max_size=30)
        )
        response_body: dict[str, Any] = {
            "clientDataJSON": "",
            "authenticatorData": _encode(
                data.draw(authenticator_data(with_credential=False)), variant
            ),
            "signature": _encode(data.draw(st.binary(max_size=300)), variant),
        }
        if data.draw(st.booleans()):
            response_body["userHandle"] = data.draw(
                st.sampled_from([None, ""]) | st.text(max_size=40)
            )
        credential = {
            "id": credential_id,
            "rawId": data.draw(st.sampled_from([credential_id]) | st.text(max_size=30)),
            "type": "public-key",
            "response": response_body,
            "clientExtensionResults": {},
        }
        options = api.post(
            "/client/user-authenticators/passkey/authentication-options",
            headers=basic(site.id),
            json={},
        )
        assert options.status_code == 200, options.text
        response_body["clientDataJSON"] = _with_challenge(
            client_data, options.json()["options"]["challenge"], variant
        )
        response = api.post(
            "/client/verify/passkey",
            headers=basic(site.id),
            json={
                "challengeId": options.json()["challengeId"],
                "authenticationCredential": credential,
            },
        )
        _assert_handled(response, refusals)

    verify()
    assert len(refusals) >= 4, refusals


@st.composite
def push_public_key(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return str(draw(st.text(max_size=200)))
    if kind == 1:
        # An SPKI-shaped prefix with a point that may not be on the curve.
        spki = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
        return _encode(spki + data_or(draw, 65), draw(encodings))
    return _encode(draw(noise), draw(encodings))


def data_or(draw: st.DrawFn, size: int) -> bytes:
    return bytes(draw(st.binary(min_size=size, max_size=size)))


def test_push_public_keys_never_make_a_server_error(api: httpx.Client, site: Tenant) -> None:
    token = _track(api, site, "pushing", scope="add:authenticators")

    @given(key=push_public_key(), route=st.integers(0, 3))
    @PROPERTY
    def probe(key: str, route: int) -> None:
        path = "/client/user-authenticators/push"
        if route == 0:
            response = api.get(path, params={"publicKey": key}, headers=basic(site.id))
        elif route == 1:
            response = api.post(path, json={"publicKey": key}, headers=bearer(token))
        elif route == 2:
            response = api.post(
                f"{path}/challenge/sign", params={"publicKey": key}, headers=basic(site.id)
            )
        else:
            response = api.post(
                f"{path}/remove",
                json={"publicKey": key, "signature": _encode(b"x" * 64, "standard")},
                headers=basic(site.id),
            )
        _assert_handled(response)

    probe()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(alphabet=st.characters(exclude_categories=()), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(exclude_categories=()), max_size=8), inner, max_size=4
        )
    ),
    max_leaves=30,
)


def test_custom_values_are_stored_and_read_back_or_refused(api: httpx.Client, site: Tenant) -> None:
    """Whatever `custom` a backend sends (NaN, 2**80, lone surrogates, nesting), track answers
    200 or 400; when it answered 200, reading the action back works and gives the same value."""
    auth = (site.secret_key, "")

    @given(
        custom=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
        nest=st.integers(0, 20),
    )
    @PROPERTY
    def store(custom: dict[str, Any], nest: int) -> None:
        value: Any = custom
        for _ in range(nest):
            value = {"n": value}
        # Python's encoder writes lone surrogates as \ud800 escapes and NaN as a bare literal,
        # exactly what a hostile client can send.
        body = json.dumps({"custom": value}).encode()
        tracked = api.post(
            "/users/customer/actions/pay",
            content=body,
            headers={"Content-Type": "application/json"},
            auth=auth,
        )
        _assert_handled(tracked)
        if tracked.status_code != 200:
            assert tracked.status_code == 400, tracked.text
            return
        key = tracked.json()["idempotencyKey"]
        read = api.get(f"/users/customer/actions/pay/{key}", auth=auth)
        assert read.status_code == 200, read.text
        assert read.json()["custom"] == json.loads(body)["custom"]

    store()
