"""Raw Client API ceremonies for tests that need to bend a request on its way."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from authsignal.client import AuthsignalClient

from passgate.authenticators import SoftwareAuthenticator


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def basic(tenant_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{tenant_id}:".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client_data(credential: dict[str, Any]) -> dict[str, Any]:
    raw = credential["response"]["clientDataJSON"]
    return dict(json.loads(base64.urlsafe_b64decode(raw + "==")))


def with_client_data(credential: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = {**client_data(credential), **changes}
    response = {**credential["response"], "clientDataJSON": b64url(json.dumps(data).encode())}
    return {**credential, "response": response}


class Ceremony:
    """One tenant's Client API, driven step by step."""

    def __init__(self, api_url: str, tenant_id: str, authsignal: AuthsignalClient) -> None:
        self.http = httpx.Client(base_url=api_url, timeout=10)
        self.tenant_id = tenant_id
        self.authsignal = authsignal

    def registration_options(self, user_id: str) -> tuple[str, str, dict[str, Any]]:
        token = self.authsignal.track(user_id, "signUp")["token"]
        response = self.http.post(
            "/client/user-authenticators/passkey/registration-options",
            headers=bearer(token),
            json={"username": user_id},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return token, body["challengeId"], body["options"]

    def add(self, token: str, challenge_id: str, credential: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            "/client/user-authenticators/passkey",
            headers=bearer(token),
            json={"challengeId": challenge_id, "registrationCredential": credential},
        )

    def register(self, device: SoftwareAuthenticator, user_id: str) -> dict[str, Any]:
        token, challenge_id, options = self.registration_options(user_id)
        response = self.add(token, challenge_id, device.create(options))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def authentication_options(self) -> tuple[str, dict[str, Any]]:
        response = self.http.post(
            "/client/user-authenticators/passkey/authentication-options",
            headers=basic(self.tenant_id),
            json={},
        )
        assert response.status_code == 200, response.text
        return response.json()["challengeId"], response.json()["options"]

    def verify(self, challenge_id: str, credential: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            "/client/verify/passkey",
            headers=basic(self.tenant_id),
            json={"challengeId": challenge_id, "authenticationCredential": credential},
        )

    def assertion(self, device: SoftwareAuthenticator) -> tuple[str, dict[str, Any]]:
        challenge_id, options = self.authentication_options()
        return challenge_id, device.get(options)

    def close(self) -> None:
        self.http.close()
