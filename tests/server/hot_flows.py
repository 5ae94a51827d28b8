"""The hot request paths, driven over HTTP against a live server, with every SQL statement the
server runs for each request recorded: shared by tests/server/test_statement_budgets.py
(how many statements and transactions each operation costs) and
tests/server/test_hot_statements_use_indexes.py (whether each statement has an index to use).

`Recorder` listens on the app's engines (`before_cursor_execute` and `begin` on each engine's
`sync_engine`) while it is open. The flows send their requests one after another and wait for
each answer, and the server commits before it answers (server/database.py), so what the
engines ran between sending a request and reading its answer is that request's work.

Each operation is measured in steady state: the tenant is already in the process's tenant
cache (services/tenants.py keeps a loaded tenant for a few seconds), as it is for any tenant
with traffic, so a budget counts the operation's own statements and not a cold cache's."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from passgate.authenticators import SoftwareAuthenticator
from passgate.sdk._push_protocol import SIGNATURE_HEADER, public_key_param, sign
from tests.live_server import LiveServer, Tenant
from tests.tenant_client import ENROL_SCOPE, TenantClient, new_device_key

# Transaction control, not work: not counted as statements (SQLite's BEGIN IMMEDIATE comes
# from an event hook in store/database.py through exec_driver_sql, so it shows up as text).
CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)
SHOWN_CHARS = 200
# The server's own background work (services/pruning.py, push deliveries in
# services/push/hub.py, the outbox's polls and sends in services/outbox.py), told apart by
# its asyncio task: it may run while a request is measured, and is no request's statements.
BACKGROUND_TASKS = frozenset({"passgate-pruning", "passgate-outbox"})
BACKGROUND_COROUTINES = frozenset({"Pruner._run", "PushHub._run", "Outbox._run", "Outbox._send"})


def _in_background() -> bool:
    """True when the listener runs for one of the server's background tasks (SQLAlchemy's
    async engines call listeners on the awaiting task's step, so it is the current task)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    if task is None:
        return False
    coroutine = getattr(task.get_coro(), "__qualname__", "")
    return task.get_name() in BACKGROUND_TASKS or coroutine in BACKGROUND_COROUTINES


@dataclass(frozen=True)
class Statement:
    """One statement as the driver received it: `?` placeholders on SQLite, `$1` on asyncpg."""

    sql: str
    parameters: Any

    def shown(self) -> str:
        return " ".join(self.sql.split())[:SHOWN_CHARS]


@dataclass
class Request:
    """One HTTP request and what the database did for it."""

    label: str
    status: int
    statements: list[Statement] = field(default_factory=list)
    transactions: int = 0


@dataclass
class Operation:
    """One budgeted operation: its requests, in order."""

    name: str
    requests: list[Request] = field(default_factory=list)

    @property
    def statements(self) -> list[Statement]:
        return [statement for request in self.requests for statement in request.statements]

    def describe(self) -> str:
        lines = []
        for request in self.requests:
            lines.append(
                f"  {request.label} -> {request.status}: {len(request.statements)} statements, "
                f"{request.transactions} transactions"
            )
            lines.extend(f"    {statement.shown()}" for statement in request.statements)
        return "\n".join(lines)


def _engines(app: FastAPI) -> list[Engine]:
    """The app's database engines, as sync engines to listen on, one per connection pool's
    owner. Looks for AsyncEngine instances on app.state and in the attributes (and attribute
    dicts, such as a sessionmaker's `kw`) of objects there, one level deep. A read engine made
    with `execution_options` shares its parent's events, so it resolves to the parent: listening
    on both would count each statement twice."""
    found: dict[int, Engine] = {}

    def take(value: Any) -> None:
        if isinstance(value, tuple):  # the inline SQLite engines (store.db.Engines.inline)
            for item in value:
                take(item)
            return
        if isinstance(value, AsyncEngine | Engine):
            engine: Any = value.sync_engine if isinstance(value, AsyncEngine) else value
            while getattr(engine, "_proxied", None) is not None:  # an OptionEngine
                engine = engine._proxied
            found[id(engine)] = engine

    def attributes(value: Any) -> list[Any]:
        names = set(getattr(value, "__dict__", {}))
        for cls in type(value).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            names.update([slots] if isinstance(slots, str) else slots)
        values = []
        for name in names:
            try:
                values.append(getattr(value, name))
            except AttributeError:
                continue
        return values

    for value in vars(app.state)["_state"].values():
        take(value)
        if isinstance(value, AsyncEngine):
            continue
        for attribute in attributes(value):
            take(attribute)
            if isinstance(attribute, dict):
                for item in attribute.values():
                    take(item)
    if not found:
        raise AssertionError(
            "no AsyncEngine on app.state (nor on an object there): the statement tests "
            "cannot see the database; teach tests/server/hot_flows.py:_engines where it went"
        )
    return list(found.values())


class Recorder:
    """Every statement and transaction the app's engines run while open (see module doc)."""

    def __init__(self, app: FastAPI) -> None:
        self.engines = _engines(app)
        self.statements: list[Statement] = []
        self.transactions = 0
        self.background: list[Statement] = []
        self._lock = threading.Lock()

    def _statement(
        self, _conn: Any, _cursor: Any, sql: str, parameters: Any, _context: Any, many: bool
    ) -> None:
        if CONTROL.match(sql):
            return
        if many and parameters:
            parameters = parameters[0]
        with self._lock:
            found = self.background if _in_background() else self.statements
            found.append(Statement(sql, parameters))

    def _begin(self, _conn: Any) -> None:
        if _in_background():
            return
        with self._lock:
            self.transactions += 1

    @contextmanager
    def listening(self) -> Iterator[Recorder]:
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "begin", self._begin)
        try:
            yield self
        finally:
            for engine in self.engines:
                event.remove(engine, "before_cursor_execute", self._statement)
                event.remove(engine, "begin", self._begin)

    def measure(self, label: str, send: Callable[[], httpx.Response]) -> tuple[Request, Any]:
        """Send one request; its answer and what the database did for it."""
        with self._lock:
            first, began = len(self.statements), self.transactions
        response = send()
        with self._lock:
            request = Request(
                label,
                response.status_code,
                self.statements[first:],
                self.transactions - began,
            )
        return request, response


class Flows:
    """A fresh tenant's backend and apps, measured request by request."""

    def __init__(self, server: LiveServer, tenant: Tenant, recorder: Recorder, tmp: Path):
        self.server = server
        self.tenant = tenant
        self.recorder = recorder
        self.tmp = tmp
        self.client = TenantClient(server.api_url, tenant)

    def close(self) -> None:
        self.client.close()

    def _drain(self) -> None:
        """Let push deliveries a request started finish, so none runs into the next request."""
        hub = self.server.app.state.push_hub
        loop = self.server._loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(hub.drain(), loop).result(timeout=30)

    def warm(self) -> None:
        """Load the tenant into the process's tenant cache (services/tenants.py keeps it by
        secret key and by id), so the next measured request finds it there."""
        self.client.server("GET", "/users/cache-warmer")

    def step(self, operation: Operation, label: str, send: Callable[[], httpx.Response]) -> Any:
        """One measured request of `operation`; fails unless it answers 200."""
        request, response = self.recorder.measure(label, send)
        self._drain()
        operation.requests.append(request)
        assert response.status_code == 200, f"{label}: {response.status_code} {response.text}"
        return response.json()

    # The operations. Each starts from its own setup (not measured) and warms the caches.

    def track_existing_user(self) -> Operation:
        self.client.token("existing")
        self.warm()
        operation = Operation("track_existing_user")
        self.step(operation, "track", lambda: self.client.track("existing"))
        return operation

    def track_new_user(self) -> Operation:
        self.warm()
        operation = Operation("track_new_user")
        self.step(operation, "track", lambda: self.client.track("newcomer"))
        return operation

    def validate(self) -> Operation:
        """The backend redeems the access token a passkey sign-up returned (docs/wire.md,
        Passkey sign-up)."""
        device = SoftwareAuthenticator(self.tmp / "validate.bin")
        token = self._sign_up(Operation("setup"), device, "validator")["accessToken"]
        self.warm()
        operation = Operation("validate")
        body = self.step(operation, "validate", lambda: self.client.validate(token))
        assert body["isValid"] is True, body
        return operation

    def _push_user(self, user_id: str) -> Any:
        key = new_device_key()
        self.client.add_device(key, user_id)
        return key

    def track_push_user(self) -> Operation:
        self._push_user("pusher")
        self.warm()
        operation = Operation("track_push_user")
        body = self.step(operation, "track", lambda: self.client.track("pusher"))
        assert body["state"] == "CHALLENGE_REQUIRED" and body.get("challengeId"), body
        return operation

    def push_challenge_message(self) -> Operation:
        """P4 alone: the one-time message the device signs before P5."""
        key = self._push_user("pusher")
        self.client.track("pusher")
        self.warm()
        operation = Operation("push_challenge_message")
        self.step(operation, "P4 challenge/sign", lambda: self.client.nonce(key))
        return operation

    def push_round_trip(self) -> Operation:
        """track (starts the push challenge), P4 (the device's one-time message), P5 (the
        device reads the challenge with its signature over the message), P6 (the device
        approves), validate (the backend redeems)."""
        key = self._push_user("pusher")
        self.warm()
        operation = Operation("push_round_trip")
        tracked = self.step(operation, "track", lambda: self.client.track("pusher"))
        message = self.step(operation, "P4 challenge/sign", lambda: self.client.nonce(key))
        signature = sign(key, message["message"])
        pending = self.step(
            operation,
            "P5 GET challenge",
            lambda: self.client.client(
                "GET",
                "/user-authenticators/push/challenge",
                params={"publicKey": public_key_param(key)},
                headers={SIGNATURE_HEADER: signature},
            ),
        )
        assert pending.get("challengeId") == tracked["challengeId"], pending
        code = tracked.get("verificationCode")
        answer = self.step(
            operation,
            "P6 answer",
            lambda: self.client.answer(key, tracked["challengeId"], code=code),
        )
        assert answer["isVerified"] is True, answer
        valid = self.step(operation, "validate", lambda: self.client.validate(tracked["token"]))
        assert valid["isValid"] is True, valid
        return operation

    def _sign_up(self, operation: Operation, device: SoftwareAuthenticator, user: str) -> Any:
        token = self.client.token(user, "signUp", scope=ENROL_SCOPE)
        self.warm()
        options = self.step(
            operation,
            "C2 registration-options",
            lambda: self.client.registration_options(token, username=user),
        )
        credential = device.create(options["options"])
        return self.step(
            operation,
            "C3 add passkey",
            lambda: self.client.add_passkey(token, options["challengeId"], credential),
        )

    def passkey_sign_up(self) -> Operation:
        operation = Operation("passkey_sign_up")
        self._sign_up(operation, SoftwareAuthenticator(self.tmp / "signup.bin"), "signer")
        return operation

    def passkey_sign_in(self) -> Operation:
        """A discoverable sign-in (C4 Basic, then C5 Basic) with a registered passkey."""
        device = SoftwareAuthenticator(self.tmp / "signin.bin")
        self._sign_up(Operation("setup"), device, "signer")
        self.warm()
        operation = Operation("passkey_sign_in")
        options = self.step(
            operation, "C4 authentication-options", lambda: self.client.authentication_options()
        )
        assertion = device.get(options["options"])
        body = self.step(
            operation,
            "C5 verify passkey",
            lambda: self.client.verify_passkey(options["challengeId"], assertion),
        )
        assert body["isVerified"] is True, body
        return operation

    def cached_preflight(self) -> Operation:
        """A CORS preflight for a listed origin, the origin index already built."""
        origin = f"https://{self.tenant.rp_id}"
        headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        path = "/client/user-authenticators/passkey/authentication-options"

        def preflight() -> httpx.Response:
            return self.client.http.options(path, headers=headers)

        assert preflight().status_code == 200
        operation = Operation("cached_preflight")
        self.step(operation, "OPTIONS preflight", preflight)
        return operation


# Every operation's flow, by name.
OPERATIONS: dict[str, Callable[[Flows], Operation]] = {
    "track_existing_user": Flows.track_existing_user,
    "track_new_user": Flows.track_new_user,
    "track_push_user": Flows.track_push_user,
    "validate": Flows.validate,
    "passkey_sign_in": Flows.passkey_sign_in,
    "passkey_sign_up": Flows.passkey_sign_up,
    "push_challenge_message": Flows.push_challenge_message,
    "push_round_trip": Flows.push_round_trip,
    "cached_preflight": Flows.cached_preflight,
}


@contextmanager
def flows(server: LiveServer, tenant: Tenant, tmp: Path) -> Iterator[Flows]:
    """The tenant's flows, recorded on the server's engines until the block ends."""
    recorder = Recorder(server.app)
    with recorder.listening():
        driver = Flows(server, tenant, recorder, tmp)
        try:
            yield driver
        finally:
            driver.close()
