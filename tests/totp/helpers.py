"""What a user's authenticator app does, written here from RFC 4226 and RFC 6238 apart from
the server's code (so the two agree only if both are right), and the tenant's backend and app
calling the authenticator app and recovery code routes over plain HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from tests.tenant_client import ENROL_SCOPE, TenantClient

PERIOD = 30
TOTP_PATH = "/user-authenticators/totp"
RECOVERY_PATH = "/user-authenticators/recovery-code"

__all__ = ["ENROL_SCOPE", "App", "CodesClient", "app_code"]


def app_code(secret: str, step: int, digits: int = 6) -> str:
    """The code an authenticator app shows for time step `step`."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha1).digest()
    start = digest[19] & 0xF
    number = int.from_bytes(digest[start : start + 4], "big") & 0x7FFFFFFF
    return f"{number % 10**digits:0{digits}d}"


def current_step() -> int:
    return int(time.time() // PERIOD)


def settled_step(margin: float = 3.0) -> int:
    """The current step, at least `margin` seconds before it ends (waiting for the next one
    if need be): a request sent now is checked in the same step."""
    left = PERIOD - time.time() % PERIOD
    if left < margin:
        time.sleep(left + 0.05)
    return current_step()


@dataclass
class App:
    """An authenticator app holding one secret: it hands out codes for steps the server has
    not accepted yet (a code is accepted once), waiting for the clock when it must."""

    secret: str
    last_step: int | None = None

    @property
    def used(self) -> int:
        """The last step whose code this app handed out."""
        assert self.last_step is not None
        return self.last_step

    def code(self, step: int) -> str:
        return app_code(self.secret, step)

    def next_code(self) -> str:
        """A code for the current step, or the next one when the current one's code was
        used (waiting for the clock after that), recorded as used. A request that reaches
        the server just after the step ends is still in its window."""
        step = current_step() if self.last_step is None else self.last_step + 1
        step = max(step, current_step())
        while step > current_step() + 1:
            time.sleep(0.5)
        self.last_step = step
        return self.code(step)


def parse_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """An otpauth URI's type, label and parameters."""
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth", uri
    params = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return parts.netloc, unquote(parts.path.removeprefix("/")), params


class CodesClient(TenantClient):
    """The tenant's backend and app, with the authenticator app and recovery code routes."""

    def __enter__(self) -> CodesClient:
        return self

    def enroll_totp(self, token: str) -> httpx.Response:
        """T1 as Authsignal's SDKs send it: no body."""
        return self.client("POST", TOTP_PATH, token=token)

    def verify_totp(self, token: str, code: str) -> httpx.Response:
        return self.client("POST", "/verify/totp", token=token, json={"verificationCode": code})

    def add_app(self, user_id: str, **track: Any) -> tuple[App, dict[str, Any]]:
        """Track, T1 and a first code (T2), asserting each: the app and T2's answer."""
        token = self.token(user_id, "enrollTotp", **track)
        enrolled = self.enroll_totp(token)
        assert enrolled.status_code == 200, enrolled.text
        app = App(enrolled.json()["secret"])
        verified = self.verify_totp(token, app.next_code())
        assert verified.status_code == 200 and verified.json()["isVerified"], verified.text
        return app, verified.json()

    def sign_in_with(self, app: App, user_id: str, action: str = "signIn") -> dict[str, Any]:
        """Track and T2 with the app's next code: T2's answer."""
        verified = self.verify_totp(self.token(user_id, action), app.next_code())
        assert verified.status_code == 200, verified.text
        return dict(verified.json())

    def enroll_recovery_codes(self, token: str) -> httpx.Response:
        return self.client("POST", RECOVERY_PATH, token=token)

    def verify_recovery_code(self, token: str, code: str) -> httpx.Response:
        body = {"verificationCode": code}
        return self.client("POST", "/verify/recovery-code", token=token, json=body)

    def authenticators(self, user_id: str) -> list[dict[str, Any]]:
        listed = self.server("GET", f"/users/{user_id}/authenticators")
        assert listed.status_code == 200, listed.text
        return list(listed.json())

    def user(self, user_id: str) -> dict[str, Any]:
        found = self.server("GET", f"/users/{user_id}")
        assert found.status_code == 200, found.text
        return dict(found.json())

    def action(self, user_id: str, action: str, idempotency_key: str) -> dict[str, Any]:
        found = self.server("GET", f"/users/{user_id}/actions/{action}/{idempotency_key}")
        assert found.status_code == 200, found.text
        return dict(found.json())
