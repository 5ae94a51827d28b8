"""The security-key routes (SK1-SK4) driven step by step with bare WebAuthn JSON, as
Authsignal's browser SDK sends them."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from authsignal.client import AuthsignalClient

from passgate.authenticators import SoftwareAuthenticator
from tests.passkeys.helpers import bearer

SECURITY_KEY = "/client/user-authenticators/security-key"


def message_of(options: dict[str, Any]) -> str:
    """The signed challenge message options carry (their challenge bytes are the message)."""
    challenge = options["challenge"]
    return base64.urlsafe_b64decode(challenge + "=" * (-len(challenge) % 4)).decode()


def challenge_in(credential: dict[str, Any]) -> str:
    raw = credential["response"]["clientDataJSON"]
    return str(json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["challenge"])


class SecurityKeys:
    """One tenant's SK1-SK4."""

    def __init__(self, api_url: str, authsignal: AuthsignalClient) -> None:
        self.http = httpx.Client(base_url=api_url, timeout=10)
        self.authsignal = authsignal

    def track(self, user_id: str, action: str = "signIn", **attributes: Any) -> str:
        return str(self.authsignal.track(user_id, action, attributes or None)["token"])

    def registration_options(self, token: str) -> httpx.Response:
        return self.http.post(
            f"{SECURITY_KEY}/registration-options", headers=bearer(token), json={}
        )

    def add(self, token: str, credential: dict[str, Any]) -> httpx.Response:
        return self.http.post(SECURITY_KEY, headers=bearer(token), json=credential)

    def authentication_options(self, token: str) -> httpx.Response:
        return self.http.post(
            f"{SECURITY_KEY}/authentication-options", headers=bearer(token), json={}
        )

    def verify(self, token: str, credential: dict[str, Any]) -> httpx.Response:
        return self.http.post("/client/verify/security-key", headers=bearer(token), json=credential)

    def options(self, token: str, *, registration: bool) -> dict[str, Any]:
        call = self.registration_options if registration else self.authentication_options
        response = call(token)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def enrol(
        self, key: SoftwareAuthenticator, user_id: str, action: str = "signUp", **attributes: Any
    ) -> dict[str, Any]:
        token = self.track(user_id, action, **attributes)
        added = self.add(token, key.create(self.options(token, registration=True)))
        assert added.status_code == 200, added.text
        return dict(added.json())

    def assertion(self, key: SoftwareAuthenticator, token: str) -> dict[str, Any]:
        return key.get(self.options(token, registration=False))

    def close(self) -> None:
        self.http.close()
