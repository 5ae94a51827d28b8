"""What the web stack costs per request on a route shaped like the Server API's track route.

Starts uvicorn as `passgate serve` starts it (uvloop, httptools, no access log) in its own
process on a loopback port, once with a small FastAPI app and once with a small Starlette app,
and sends keep-alive requests from this process. The figure is the server's CPU time
(utime + stime of the server process, from /proc/<pid>/stat) per request. No database and no
token signing: only the web stack, validation and serialisation.

Variants (all take the same body and give the same JSON; checked before measuring):

  a  FastAPI as the Server API writes it: Annotated path and dependency parameters, a body
     model, `response_model_exclude_none=True`, returns a pydantic model
  b  FastAPI, same inputs, returns a Response: model_dump(mode="json") + stdlib json
  c  same as b with orjson
  f  same as b with model.model_dump_json(by_alias=True, exclude_none=True)
  g  FastAPI app, but the endpoint takes only the Request and does d's work by hand,
     answering with model_dump_json
  d  plain Starlette doing the same work by hand: Basic header, path checks,
     model_validate_json of the body, model_dump(mode="json") + orjson
  health-fastapi / health-starlette  GET /health returning {"status": "ok"}: the floor

    .venv/bin/pip install orjson      # for variants c and d; not a Passgate dependency
    .venv/bin/python benchmarks/request_stack.py --requests 5000 --rounds 7

Linux only (reads /proc). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import http.client
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Path, Request, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from starlette.applications import Starlette
from starlette.routing import Route

from passgate.server import json_values

# The models below have the shape of TrackAttributes and TrackResponse in
# src/passgate/server/schemas.py (same config, same field types and limits); they are copied
# so that the benchmark does not move with the data layer being rewritten.

ACTION_CODE_PATTERN = r"^[A-Za-z0-9_.:\-]{1,100}$"
_ACTION_CODE_RE = re.compile(ACTION_CODE_PATTERN)
ShortText = Annotated[str, StringConstraints(max_length=255)]


class ActionState(StrEnum):
    ALLOW = "ALLOW"
    BLOCK = "BLOCK"
    CHALLENGE_REQUIRED = "CHALLENGE_REQUIRED"


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_unstorable_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                if json_values.first_text_problem(name):
                    raise ValueError("a field name")
                if json_values.first_text_problem(value):
                    raise ValueError(name)
        return data


class TrackAttributes(WireModel):
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    redirect_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    redirect_to_settings: bool | None = None
    ip_address: Annotated[str, StringConstraints(max_length=64)] | None = None
    user_agent: Annotated[str, StringConstraints(max_length=1024)] | None = None
    device_id: Annotated[str, StringConstraints(max_length=255)] | None = None
    scope: Annotated[str, StringConstraints(max_length=255)] | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    phone_number: Annotated[str, StringConstraints(max_length=32)] | None = None
    username: Annotated[str, StringConstraints(max_length=255)] | None = None
    custom: json_values.StoredJsonObject | None = None
    challenge_id: ShortText | None = None
    locale: Annotated[str, StringConstraints(max_length=35)] | None = None
    custom_domain: ShortText | None = None


class TrackResponse(WireModel):
    idempotency_key: str
    state: ActionState
    url: str
    token: str
    is_enrolled: bool
    enrolled_verification_methods: list[str]
    allowed_verification_methods: list[str]
    default_verification_method: str | None = None
    rule_ids: list[str] = Field(default_factory=list)
    challenge_id: str | None = None
    verification_code: str | None = None


SECRET_KEY = "sk_bench_0123456789abcdef"
AUTHORIZATION = "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
TRACK_BODY = json.dumps(
    {
        "redirectUrl": "https://app.example.com/after-challenge?next=%2Fpayments",
        "ipAddress": "203.0.113.7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
        "deviceId": "device-5f2c9a1e",
        "scope": "add:authenticators",
        "email": "alice@example.com",
        "username": "alice",
        "locale": "en-GB",
        "custom": {"amount": 125.5, "currency": "EUR", "itemCount": 3},
    }
).encode()
TOKEN = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9." + "A" * 250 + "." + "B" * 86


def basic_username(authorization: str | None) -> str | None:
    """As server_api/auth.py: the username of a Basic header, or None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def track_response(user_id: str, action_code: str, attributes: TrackAttributes) -> TrackResponse:
    """What the service layer would hand back; the same for every variant."""
    return TrackResponse(
        idempotency_key="0b8f3c1e-6a4d-4f7a-9d2e-5c1b7a9e3f10",
        state=ActionState.CHALLENGE_REQUIRED,
        url=f"http://127.0.0.1/challenge?token={TOKEN}",
        token=TOKEN,
        is_enrolled=True,
        enrolled_verification_methods=["PASSKEY", "PUSH"],
        allowed_verification_methods=["PASSKEY", "PUSH"],
        default_verification_method="PASSKEY",
        challenge_id=None,
        verification_code=None,
    )


# The apps -----------------------------------------------------------------------------------


# At module level, as in server_api/paths.py and server_api/auth.py: FastAPI resolves the
# (postponed) annotations in the module's namespace.
UserId = Annotated[str, Path(min_length=1, max_length=255, alias="userId")]
ActionCode = Annotated[str, Path(max_length=100, pattern=ACTION_CODE_PATTERN, alias="action")]


async def _tenant(request: Request) -> str:
    username = basic_username(request.headers.get("authorization"))
    if username != SECRET_KEY:
        raise HTTPException(401)
    return username


Tenant = Annotated[str, Depends(_tenant)]


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/a/users/{userId}/actions/{action}", response_model_exclude_none=True)
    async def track_a(
        user_id: UserId,
        action_code: ActionCode,
        tenant: Tenant,
        attributes: TrackAttributes | None = None,
    ) -> TrackResponse:
        return track_response(user_id, action_code, attributes or TrackAttributes())

    @app.post(
        "/b/users/{userId}/actions/{action}",
        response_model=TrackResponse,
        response_model_exclude_none=True,
    )
    async def track_b(
        user_id: UserId,
        action_code: ActionCode,
        tenant: Tenant,
        attributes: TrackAttributes | None = None,
    ) -> Response:
        model = track_response(user_id, action_code, attributes or TrackAttributes())
        content = model.model_dump(mode="json", by_alias=True, exclude_none=True)
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(body, media_type="application/json")

    @app.post(
        "/c/users/{userId}/actions/{action}",
        response_model=TrackResponse,
        response_model_exclude_none=True,
    )
    async def track_c(
        user_id: UserId,
        action_code: ActionCode,
        tenant: Tenant,
        attributes: TrackAttributes | None = None,
    ) -> Response:
        model = track_response(user_id, action_code, attributes or TrackAttributes())
        content = model.model_dump(mode="json", by_alias=True, exclude_none=True)
        return Response(orjson.dumps(content), media_type="application/json")

    @app.post(
        "/f/users/{userId}/actions/{action}",
        response_model=TrackResponse,
        response_model_exclude_none=True,
    )
    async def track_f(
        user_id: UserId,
        action_code: ActionCode,
        tenant: Tenant,
        attributes: TrackAttributes | None = None,
    ) -> Response:
        model = track_response(user_id, action_code, attributes or TrackAttributes())
        body = model.model_dump_json(by_alias=True, exclude_none=True)
        return Response(body, media_type="application/json")

    @app.post("/g/users/{userId}/actions/{action}")
    async def track_g(request: Request) -> Response:
        # FastAPI app, but the endpoint takes only the Request and does d's work by hand.
        if basic_username(request.headers.get("authorization")) != SECRET_KEY:
            raise HTTPException(401)
        user_id = request.path_params["userId"]
        action_code = request.path_params["action"]
        if not 1 <= len(user_id) <= 255 or not _ACTION_CODE_RE.match(action_code):
            raise HTTPException(422)
        raw = await request.body()
        try:
            attributes = (
                TrackAttributes.model_validate_json(raw) if raw.strip() else TrackAttributes()
            )
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False)) from None
        model = track_response(user_id, action_code, attributes)
        body = model.model_dump_json(by_alias=True, exclude_none=True)
        return Response(body, media_type="application/json")

    return app


def starlette_app() -> Starlette:

    def error(status: int, detail: Any) -> Response:
        return Response(orjson.dumps({"detail": detail}), status, media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    async def track_d(request: Request) -> Response:
        if basic_username(request.headers.get("authorization")) != SECRET_KEY:
            return error(401, "Unauthorized")
        user_id = request.path_params["userId"]
        action_code = request.path_params["action"]
        if not 1 <= len(user_id) <= 255 or not _ACTION_CODE_RE.match(action_code):
            return error(422, "bad path")
        raw = await request.body()
        try:
            attributes = (
                TrackAttributes.model_validate_json(raw) if raw.strip() else TrackAttributes()
            )
        except ValidationError as exc:
            return error(422, exc.errors(include_url=False, include_context=False))
        model = track_response(user_id, action_code, attributes)
        content = model.model_dump(mode="json", by_alias=True, exclude_none=True)
        return Response(orjson.dumps(content), media_type="application/json")

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/d/users/{userId}/actions/{action}", track_d, methods=["POST"]),
        ]
    )


def serve(kind: str, port: int) -> None:
    import uvicorn

    app = fastapi_app() if kind == "fastapi" else starlette_app()
    # As `passgate serve` runs it (src/passgate/cli/_app.py): loop and http left to "auto",
    # which picks uvloop and httptools when installed.
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


# The client ---------------------------------------------------------------------------------

VARIANTS: dict[str, tuple[str, str, str]] = {
    # name: (server, method, path)
    "a": ("fastapi", "POST", "/a/users/user-42/actions/signIn"),
    "b": ("fastapi", "POST", "/b/users/user-42/actions/signIn"),
    "c": ("fastapi", "POST", "/c/users/user-42/actions/signIn"),
    "f": ("fastapi", "POST", "/f/users/user-42/actions/signIn"),
    "g": ("fastapi", "POST", "/g/users/user-42/actions/signIn"),
    "d": ("starlette", "POST", "/d/users/user-42/actions/signIn"),
    "health-fastapi": ("fastapi", "GET", "/health"),
    "health-starlette": ("starlette", "GET", "/health"),
}
DESCRIPTIONS = {
    "a": "FastAPI, response_model, returns the model",
    "b": "FastAPI, returns Response, stdlib json",
    "c": "FastAPI, returns Response, orjson",
    "f": "FastAPI, returns Response, model_dump_json",
    "g": "FastAPI app, endpoint takes Request, by hand",
    "d": "Starlette by hand, orjson",
    "health-fastapi": "FastAPI GET /health (floor)",
    "health-starlette": "Starlette GET /health",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # After the command: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(conn: http.client.HTTPConnection, method: str, path: str) -> tuple[int, bytes]:
    headers = {"Authorization": AUTHORIZATION}
    body = None
    if method == "POST":
        headers["Content-Type"] = "application/json"
        body = TRACK_BODY
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def start(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            status, _ = request(conn, "GET", "/health")
            conn.close()
            if status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the {kind} server did not start")
        time.sleep(0.1)


def run(pid: int, port: int, method: str, path: str, requests: int) -> float:
    """Server CPU µs per request over `requests` keep-alive requests, after a warm-up."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(200):
        request(conn, method, path)
    time.sleep(0.05)
    before = cpu_seconds(pid)
    for _ in range(requests):
        status, _ = request(conn, method, path)
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status}")
    after = cpu_seconds(pid)
    conn.close()
    return (after - before) / requests * 1e6


def check_same_json(servers: dict[str, tuple[subprocess.Popen[bytes], int]]) -> None:
    answers = {}
    for name, (kind, method, path) in VARIANTS.items():
        if name.startswith("health"):
            continue
        conn = http.client.HTTPConnection("127.0.0.1", servers[kind][1], timeout=10)
        status, body = request(conn, method, path)
        conn.close()
        if status != 200:
            raise SystemExit(f"variant {name}: HTTP {status}: {body[:300]!r}")
        answers[name] = json.loads(body)
    reference = answers["a"]
    for name, answer in answers.items():
        if answer != reference:
            raise SystemExit(f"variant {name} answers {answer}, variant a {reference}")


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def versions() -> str:
    from importlib.metadata import version

    names = ["fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools", "orjson"]
    return ", ".join(f"{name} {version(name)}" for name in names)


def response_step() -> dict[str, float]:
    """µs per call of the response step alone, in this process (no HTTP): what FastAPI does
    with a returned model (validate it against the response field, then dump it to JSON)
    beside the ways of building the body by hand."""
    import timeit

    route = next(
        route
        for route in fastapi_app().routes
        if getattr(route, "path", "") == "/a/users/{userId}/actions/{action}"
    )
    field = route.response_field  # type: ignore[attr-defined]
    model = track_response("user-42", "signIn", TrackAttributes())

    def fastapi_today() -> bytes:
        value, errors = field.validate(model, {}, loc=("response",))
        assert not errors
        body: bytes = field.serialize_json(value, by_alias=True, exclude_none=True)
        return body

    def stdlib_json() -> bytes:
        content = model.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()

    def with_orjson() -> bytes:
        return orjson.dumps(model.model_dump(mode="json", by_alias=True, exclude_none=True))

    def dump_json() -> str:
        return model.model_dump_json(by_alias=True, exclude_none=True)

    steps = {
        "a: validate + dump_json (FastAPI)": fastapi_today,
        "b: model_dump + json.dumps": stdlib_json,
        "c: model_dump + orjson.dumps": with_orjson,
        "f: model_dump_json": dump_json,
    }
    figures = {}
    for name, step in steps.items():
        best = min(timeit.repeat(step, number=2000, repeat=7))
        figures[name] = best / 2000 * 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs of every variant")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    parser.add_argument("--serve", choices=["fastapi", "starlette"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    servers = {kind: start(kind) for kind in ("fastapi", "starlette")}
    figures: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        check_same_json(servers)
        order = list(VARIANTS)
        for round_ in range(args.rounds):
            # Interleaved, and the order rotated each round, so that a noisy neighbour
            # spreads over all variants.
            shift = round_ % len(order)
            for name in order[shift:] + order[:shift]:
                kind, method, path = VARIANTS[name]
                proc, port = servers[kind]
                figures[name].append(run(proc.pid, port, method, path, args.requests))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)

    floor = statistics.median(figures["health-fastapi"])
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}")
    print(f"# {versions()}")
    print(f"# {args.requests} requests per run, {args.rounds} runs per variant, keep-alive")
    print()
    print("| Variant | Server CPU µs/request, median | range | ratio to FastAPI /health |")
    print("|---|---|---|---|")
    for name in VARIANTS:
        runs = figures[name]
        median = statistics.median(runs)
        print(
            f"| {name}: {DESCRIPTIONS[name]} | {median:.0f} | {min(runs):.0f} to {max(runs):.0f} "
            f"| {median / floor:.2f} |"
        )
    steps = response_step()
    print()
    print("| The response step alone, in process | µs per call (best of 7) |")
    print("|---|---|")
    for name, us in steps.items():
        print(f"| {name} | {us:.1f} |")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "machine": machine(),
                    "versions": versions(),
                    "requests": args.requests,
                    "rounds": args.rounds,
                    "runs_us": figures,
                    "response_step_us": steps,
                },
                out,
                indent=2,
            )


if __name__ == "__main__":
    main()
