"""The benchmark's flows, as an app and its backend run them, over raw HTTP with keep-alive.

Each flow is one operation; `FLOWS` says how many HTTP requests it makes and how many ES256
verifications and signatures the server does for it (its floor, docs/performance.md). Routes
and bodies: docs/wire.md (Server API, C2-C5, P2 and P4-P6)."""

from __future__ import annotations

import base64
import http.client
import json
import random
from dataclasses import dataclass
from typing import Any

from passgate.bench.authenticator import DeviceKey, Passkey, assert_passkey, register
from passgate.bench.preload import user_id as preloaded_user_id


@dataclass(frozen=True, slots=True)
class FlowCost:
    """What the server must do at least for one operation of a flow."""

    requests: int
    verifications: int  # ES256 signature verifications (tokens, assertions, device signatures)
    signatures: int  # ES256 signatures (tokens issued)
    description: str


FLOWS: dict[str, FlowCost] = {
    "track": FlowCost(1, 0, 1, "track (issues 1 token)"),
    "passkey_sign_up": FlowCost(
        4,
        3,
        2,
        "track with add:authenticators (token), C2 registration options (verifies token), "
        "C3 add passkey with 'none' attestation (verifies token, issues accessToken), "
        "validate (verifies accessToken)",
    ),
    "passkey_sign_in": FlowCost(
        3,
        2,
        1,
        "C4 discoverable authentication options (Basic), C5 verify passkey (verifies the "
        "assertion, issues accessToken), validate (verifies accessToken)",
    ),
    "push_round_trip": FlowCost(
        5,
        3,
        1,
        "track that starts a push challenge (issues token), P4 one-time message, P5 pending "
        "challenge (verifies device signature), P6 approve (verifies device signature), "
        "validate (verifies token)",
    ),
}
# The floor's own measurement: a do-nothing request.
HEALTH = "health"


class FlowError(Exception):
    """A request that did not answer as the flow needs."""

    def __init__(self, step: str, status: int, detail: str) -> None:
        super().__init__(f"{step}: HTTP {status} {detail[:200]}")
        self.status = status


class Http:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.host, self.port = host, port
        self.source = None if source is None else (source, 0)
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self.host, self.port, timeout=60, source_address=self.source
        )

    def call(
        self,
        step: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if data is not None else {}
        sent.update(headers or {})
        try:
            self.connection.request(method, path, body=data, headers=sent)
            response = self.connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.connection.close()
            self.connection = self._connect()
            raise FlowError(step, 0, f"transport error: {exc!r}") from exc
        if response.status != 200:
            raise FlowError(step, response.status, raw.decode(errors="replace"))
        return json.loads(raw) if raw else None

    def close(self) -> None:
        self.connection.close()


def _basic(username: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:".encode()).decode()}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _expect(step: str, condition: bool, answer: Any) -> None:
    if not condition:
        raise FlowError(step, 200, f"unexpected answer {json.dumps(answer)[:200]}")


@dataclass(slots=True)
class PushUser:
    user_id: str
    device: DeviceKey


class Client:
    """One client process's view: the tenant, its own users and keys, one connection."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tenant_id: str,
        secret_key: str,
        name: str,
        preloaded_users: int,
        seed: int,
    ) -> None:
        # Each client process calls from an address of its own, as an app's users do (the
        # Client API counts calls per address: one shared address would be one hot row).
        source = f"127.0.0.{10 + seed % 240}" if host == "127.0.0.1" else None
        self.http = Http(host, port, source)
        self.tenant_id = tenant_id
        self.backend = _basic(secret_key)
        self.client = _basic(tenant_id)
        self.name = name
        self.preloaded_users = preloaded_users
        self.random = random.Random(seed)
        self.serial = 0
        self.passkeys: list[Passkey] = []
        self.push_users: list[PushUser] = []

    def close(self) -> None:
        self.http.close()

    def new_user_id(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.name}-{self.serial}"

    # Backend calls (Server API) --------------------------------------------------------------

    def track(self, user_id: str, action: str, **body: Any) -> dict[str, Any]:
        answer = self.http.call(
            "track", "POST", f"/v1/users/{user_id}/actions/{action}", body, self.backend
        )
        _expect("track", isinstance(answer, dict) and "token" in answer, answer)
        return dict(answer)

    def validate(self, token: str) -> None:
        answer = self.http.call("validate", "POST", "/v1/validate", {"token": token}, self.backend)
        _expect("validate", isinstance(answer, dict) and answer.get("isValid") is True, answer)

    # Preparation -----------------------------------------------------------------------------

    def prepare(self, flow: str, *, sign_in_users: int, push_users: int) -> None:
        """Make what the flow needs before it is measured (registered passkeys, enrolled push
        devices), outside the measurement."""
        if flow == "passkey_sign_in":
            while len(self.passkeys) < sign_in_users:
                self.sign_up(self.new_user_id("signin"), keep=True)
        elif flow == "push_round_trip":
            while len(self.push_users) < push_users:
                self.enrol_push(self.new_user_id("push"))

    def enrol_push(self, user_id: str) -> None:
        tracked = self.track(user_id, "enrolPush", scope="add:authenticators")
        device = DeviceKey()
        body = {"publicKey": device.public_key, "deviceName": "bench", "devicePlatform": "android"}
        answer = self.http.call(
            "P2 add credential",
            "POST",
            "/v1/client/user-authenticators/push",
            body,
            _bearer(tracked["token"]),
        )
        _expect("P2", isinstance(answer, dict) and "userAuthenticatorId" in answer, answer)
        self.push_users.append(PushUser(user_id, device))

    # Flows -----------------------------------------------------------------------------------

    def run(self, flow: str) -> None:
        if flow == HEALTH:
            self.http.call("health", "GET", "/health")
        elif flow == "track":
            self.track_once()
        elif flow == "passkey_sign_up":
            self.sign_up(self.new_user_id("signup"), keep=False)
        elif flow == "passkey_sign_in":
            self.sign_in()
        elif flow == "push_round_trip":
            self.push_round_trip()
        else:
            raise ValueError(f"unknown flow {flow!r}")

    def track_once(self) -> None:
        """Track a sign-in of an existing (preloaded) user, or of a new one without preload."""
        if self.preloaded_users:
            user_id = preloaded_user_id(self.random.randrange(self.preloaded_users))
        else:
            user_id = self.new_user_id("track")
        self.track(user_id, "signIn")

    def sign_up(self, user_id: str, *, keep: bool) -> None:
        tracked = self.track(user_id, "signUp", scope="add:authenticators")
        token = _bearer(tracked["token"])
        options = self.http.call(
            "C2 registration options",
            "POST",
            "/v1/client/user-authenticators/passkey/registration-options",
            {"username": user_id},
            token,
        )
        passkey, credential = register(options["options"])
        added = self.http.call(
            "C3 add passkey",
            "POST",
            "/v1/client/user-authenticators/passkey",
            {"challengeId": options["challengeId"], "registrationCredential": credential},
            token,
        )
        _expect("C3", isinstance(added, dict) and added.get("isVerified") is True, added)
        self.validate(added["accessToken"])
        if keep:
            self.passkeys.append(passkey)

    def sign_in(self) -> None:
        """Discoverable (usernameless) sign-in: C4 with Basic and no body fields, C5 Basic."""
        options = self.http.call(
            "C4 authentication options",
            "POST",
            "/v1/client/user-authenticators/passkey/authentication-options",
            {},
            self.client,
        )
        passkey = self.passkeys[self.random.randrange(len(self.passkeys))]
        credential = assert_passkey(passkey, options["options"])
        verified = self.http.call(
            "C5 verify passkey",
            "POST",
            "/v1/client/verify/passkey",
            {"challengeId": options["challengeId"], "authenticationCredential": credential},
            self.client,
        )
        _expect("C5", isinstance(verified, dict) and verified.get("isVerified") is True, verified)
        self.validate(verified["accessToken"])

    def push_round_trip(self) -> None:
        user = self.push_users[self.serial % len(self.push_users)]
        self.serial += 1
        tracked = self.track(user.user_id, "approvePayment", custom={"amount": 10})
        _expect("track (push)", "challengeId" in tracked, tracked)
        path = "/v1/client/user-authenticators/push/challenge"
        query = f"?publicKey={user.device.query}"
        message = self.http.call("P4 message", "POST", f"{path}/sign{query}", None, self.client)
        headers = {**self.client, "X-Authsignal-Signature": user.device.sign(message["message"])}
        pending = self.http.call("P5 get challenge", "GET", f"{path}{query}", None, headers)
        challenge_id = pending.get("challengeId")
        _expect("P5", challenge_id == tracked["challengeId"], pending)
        body = {
            "publicKey": user.device.public_key,
            "challengeId": challenge_id,
            "signature": user.device.sign(challenge_id),
            "approved": True,
            "verificationCode": tracked.get("verificationCode"),
        }
        decided = self.http.call("P6 approve", "POST", path, body, self.client)
        _expect("P6", decided.get("isVerified") is True, decided)
        self.validate(tracked["token"])
