"""One tenant's view of a Passgate server over plain httpx: its backend (the Server API with the
secret key) and its apps (the Client API: passkeys and push devices), one call per method.

Unlike `tests.passkeys.helpers.Ceremony` (which asserts as it goes and tracks through
Authsignal's SDK) every call here returns the raw response: the isolation matrix, the races and
the crash test judge refusals, concurrency losers and dead servers themselves. One client per
thread: httpx keeps its connections alive between calls."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.authenticators import SoftwareAuthenticator
from passgate.sdk._push_protocol import SIGNATURE_HEADER, public_key_param, sign
from passgate.sdk._push_protocol import public_key_base64 as device_public_key
from tests.live_server import Tenant
from tests.passkeys.helpers import basic, bearer

# Client API paths, under /v1/client.
PASSKEY_PATH = "/user-authenticators/passkey"
PUSH_PATH = "/user-authenticators/push"
ENROL_SCOPE = "add:authenticators"

__all__ = ["PUSH_PATH", "Enrolled", "TenantClient", "device_public_key", "new_device_key"]


@cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client (the servers are plain HTTP on loopback): making one
    per httpx client costs ~25 ms, seconds for a hundred racers."""
    return ssl.create_default_context()


def new_device_key() -> ec.EllipticCurvePrivateKey:
    """A push device's P-256 key, as the SDK's key store makes it."""
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Enrolled:
    """An acknowledged enrolment: what the server said it stored."""

    user_id: str
    authenticator_id: str
    credential_id: str | None = None


class TenantClient:
    """The tenant's backend and apps, over one keep-alive connection pool."""

    def __init__(self, api_url: str, tenant: Tenant, *, timeout: float = 30) -> None:
        self.tenant = tenant
        self.http = httpx.Client(base_url=api_url, timeout=timeout, verify=_tls())
        self.server_auth = httpx.BasicAuth(tenant.secret_key, "")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TenantClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # The backend: Server API with the secret key.

    def server(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, auth=self.server_auth, **kwargs)

    def track(self, user_id: str, action: str = "signIn", **attributes: Any) -> httpx.Response:
        return self.server("POST", f"/users/{user_id}/actions/{action}", json=attributes)

    def token(self, user_id: str, action: str = "signIn", **attributes: Any) -> str:
        """A fresh track token, failing loudly: for setting up, not for judging."""
        response = self.track(user_id, action, **attributes)
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def validate(self, token: str) -> httpx.Response:
        return self.server("POST", "/validate", json={"token": token})

    # Apps: Client API, Basic with the tenant id or Bearer with a token.

    def client(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {
            **kwargs.pop("headers", {}),
            **(bearer(token) if token else basic(self.tenant.id)),
        }
        return self.http.request(method, f"/client{path}", headers=headers, **kwargs)

    def registration_options(self, token: str, **body: Any) -> httpx.Response:
        return self.client("POST", f"{PASSKEY_PATH}/registration-options", token=token, json=body)

    def add_passkey(
        self, token: str, challenge_id: str, credential: dict[str, Any]
    ) -> httpx.Response:
        body = {"challengeId": challenge_id, "registrationCredential": credential}
        return self.client("POST", PASSKEY_PATH, token=token, json=body)

    def authentication_options(self, token: str | None = None, **body: Any) -> httpx.Response:
        """C4: with a token, for that token's user (its passkeys in allowCredentials)."""
        path = f"{PASSKEY_PATH}/authentication-options"
        return self.client("POST", path, token=token, json=body)

    def verify_passkey(
        self, challenge_id: str, credential: dict[str, Any], token: str | None = None
    ) -> httpx.Response:
        body = {"challengeId": challenge_id, "authenticationCredential": credential}
        return self.client("POST", "/verify/passkey", token=token, json=body)

    def register_passkey(self, device: SoftwareAuthenticator, user_id: str) -> Enrolled:
        """Track, C2, C3 with a token that may add authenticators; asserts each step."""
        token = self.token(user_id, "signUp", scope=ENROL_SCOPE)
        options = self.registration_options(token, username=user_id)
        assert options.status_code == 200, options.text
        body = options.json()
        added = self.add_passkey(token, body["challengeId"], device.create(body["options"]))
        assert added.status_code == 200, added.text
        return Enrolled(user_id, added.json()["userAuthenticatorId"], added.json()["credentialId"])

    def sign_in(self, device: SoftwareAuthenticator) -> httpx.Response:
        """C4 then C5 with the device's passkey; the C5 response (or C4's refusal)."""
        options = self.authentication_options()
        if options.status_code != 200:
            return options
        body = options.json()
        return self.verify_passkey(body["challengeId"], device.get(body["options"]))

    # Push devices: Basic with the tenant id and the device key's signatures.

    def enrol_device(self, key: ec.EllipticCurvePrivateKey, token: str) -> httpx.Response:
        body = {
            "publicKey": device_public_key(key),
            "deviceName": "test",
            "devicePlatform": "android",
        }
        return self.client("POST", PUSH_PATH, token=token, json=body)

    def add_device(self, key: ec.EllipticCurvePrivateKey, user_id: str) -> Enrolled:
        """Track with the enrolment scope, then P2; asserts."""
        enrolled = self.enrol_device(key, self.token(user_id, "enrollPush", scope=ENROL_SCOPE))
        assert enrolled.status_code == 200, enrolled.text
        return Enrolled(user_id, enrolled.json()["userAuthenticatorId"])

    def nonce(self, key: ec.EllipticCurvePrivateKey) -> httpx.Response:
        """P4: the message the device signs to read its pending challenge."""
        return self.client(
            "POST", f"{PUSH_PATH}/challenge/sign", params={"publicKey": public_key_param(key)}
        )

    def pending(self, key: ec.EllipticCurvePrivateKey) -> httpx.Response:
        """P4 then P5: the device's pending challenge (or P4's refusal)."""
        nonce = self.nonce(key)
        if nonce.status_code != 200:
            return nonce
        return self.client(
            "GET",
            f"{PUSH_PATH}/challenge",
            params={"publicKey": public_key_param(key)},
            headers={SIGNATURE_HEADER: sign(key, nonce.json()["message"])},
        )

    def answer(
        self,
        key: ec.EllipticCurvePrivateKey,
        challenge_id: str,
        *,
        approved: bool = True,
        code: str | None = None,
    ) -> httpx.Response:
        """P6: the device's decision, signed with its key."""
        body = {
            "publicKey": device_public_key(key),
            "challengeId": challenge_id,
            "signature": sign(key, challenge_id),
            "approved": approved,
            "verificationCode": code,
        }
        return self.client("POST", f"{PUSH_PATH}/challenge", json=body)

    def wait_for_verdict(self, tracked: dict[str, Any], wait: float = 25) -> httpx.Response:
        """W2 with `?wait=`: the page holding the track's token waits for the device's answer."""
        return self.client(
            "POST",
            "/verify/push",
            token=tracked["token"],
            params={"wait": wait},
            json={"challengeId": tracked["challengeId"]},
            timeout=wait + 15,
        )
