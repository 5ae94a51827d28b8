"""deploy/nginx/passgate.conf in front of real `passgate serve` processes on one PostgreSQL
database, with Debian's nginx on loopback ports.

The test's nginx config is derived from the shipped one: its `upstream` and TLS `server` blocks
are copied as they are (proxy headers, timeouts, keepalive), with plain HTTP on a loopback port
instead of TLS, and the upstream's servers replaced by the test's processes. Each pair of
processes gets three entrances: one balanced over both (as shipped) and one through each, so
that a test can say "created through A, answered through B" and still go through nginx.
nginx runs with its own prefix, pid, temp and log paths in the test's directory, in the
foreground under a subprocess, so the test needs no root paths and leaves nothing running.

Two pairs: one without Redis (wake-ups through PostgreSQL's LISTEN/NOTIFY) and one with
Redis; every process rechecks the database for long-polls (and waiting pages) only every 30 s,
so a wait answered within a second was woken by the other process."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from passgate.sdk._push_protocol import SIGNATURE_HEADER, public_key_param, sign
from passgate.server.services import tenants
from passgate.server.services.push.challenges import MAX_WAIT_SECONDS
from passgate.server.services.push.settings import PushSettings
from passgate.server.store.database import create_engine
from passgate.server.store.db import Engines
from passgate.server.store.migrate import upgrade
from tests.conftest import IN_CI, PATIENT_DATABASE
from tests.fresh_postgres import fresh_postgres_database
from tests.live_server import Tenant
from tests.tenant_client import PUSH_PATH, TenantClient, new_device_key

SHIPPED = Path(__file__).parents[2] / "deploy" / "nginx" / "passgate.conf"
REDIS_URL = os.environ.get("PASSGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RECHECK_SECONDS = 30
PER_IP = 2  # the Client API's per-address limit on the pair without Redis
RACERS = 100
# The client addresses of the client-IP test (Linux routes all of 127.0.0.0/8 to loopback).
CLIENT, OTHER_CLIENT = "127.0.0.5", "127.0.0.6"


_prctl = ctypes.CDLL(None).prctl  # looked up before any fork
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec: SIGTERM when the test process dies, so that a killed test run
    leaves no nginx or Passgate behind (Linux)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        if IN_CI:
            pytest.fail("nginx is required under CI (.ci/run installs it)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


def block(text: str, opening: str, containing: str) -> str:
    """The first `opening { ... }` block (braces balanced) whose text contains `containing`."""
    for match in re.finditer(re.escape(opening) + r"\s*\{", text):
        depth = 0
        for index in range(match.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                found = text[match.start() : index + 1]
                if containing in found:
                    return found
                break
    raise AssertionError(f"no {opening!r} block with {containing!r} in {SHIPPED}")


def derive(shipped: str, entrances: dict[str, tuple[int, list[int]]]) -> str:
    """The http-block contents for the test: per entrance (name: listen port, process ports)
    the shipped upstream with those processes and the shipped TLS server on plain HTTP."""
    upstream = block(shipped, "upstream passgate", "keepalive")
    server = block(shipped, "server", "ssl_certificate")
    servers_line = re.compile(r"^\s*server\s+\S+(\s[^;]*)?;\n", re.MULTILINE)
    options = servers_line.search(upstream)
    assert options is not None, "the shipped upstream names no server"
    plain = re.sub(r"^\s*(ssl_\w+|listen)\s[^;]*;\n", "", server, flags=re.MULTILINE)
    assert "proxy_pass http://passgate;" in plain and "ssl_certificate" not in plain
    parts = []
    for name, (listen, ports) in entrances.items():
        lines = "".join(f"    server 127.0.0.1:{port}{options.group(1) or ''};\n" for port in ports)
        copy = servers_line.sub("", upstream).replace("upstream passgate", f"upstream {name}")
        parts.append(copy.replace("{\n", "{\n" + lines, 1))
        served = plain.replace("proxy_pass http://passgate;", f"proxy_pass http://{name};")
        parts.append(served.replace("{\n", f"{{\n    listen 127.0.0.1:{listen};\n", 1))
    return "\n".join(parts)


class Nginx:
    def __init__(
        self, binary: str, directory: Path, http_block: str, *, start: bool = True
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        temp = {kind: directory / kind for kind in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        # As root, nginx's workers would drop to `nobody`, who cannot enter pytest's 0700
        # directories: keep the workers as the user running the test.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        self.error_log = directory / "error.log"
        self.config = directory / "nginx.conf"
        self.config.write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {directory}/nginx.pid;\n"
            f"error_log {self.error_log} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    access_log {directory}/access.log;\n"
            f"    client_body_temp_path {temp['body']};\n    proxy_temp_path {temp['proxy']};\n"
            f"    fastcgi_temp_path {temp['fastcgi']};\n    uwsgi_temp_path {temp['uwsgi']};\n"
            f"    scgi_temp_path {temp['scgi']};\n"
            f"{http_block}\n}}\n"
        )
        command = [binary, "-p", str(directory), "-c", str(self.config), "-e", str(self.error_log)]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        if not start:
            return
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )

    def wait_listening(self, ports: list[int]) -> None:
        deadline = time.monotonic() + 10
        for port in ports:
            while True:
                assert self.process.poll() is None, self.error_log.read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"nginx is not listening on {port}"
                    time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Passgate:
    """One `passgate serve` process, as an operator starts it (its settings in PASSGATE_*)."""

    def __init__(self, database_url: str, log: Path, **settings: object) -> None:
        self.port = free_port()
        self.log = log
        self.arguments = ["--port", str(self.port), "--database-url", database_url]
        self.env = {f"PASSGATE_{k.upper()}": str(v) for k, v in settings.items()}

    def wait_ready(self, launcher: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 90
        while True:
            log = self.log.read_text() if self.log.exists() else ""
            assert launcher.poll() is None, log
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log
            time.sleep(0.1)


def launch(processes: list[Passgate], spec: Path) -> subprocess.Popen[str]:
    """All of them from one import (tests/deploy/launch.py)."""
    spec.write_text(
        json.dumps([{"arguments": p.arguments, "env": p.env, "log": str(p.log)} for p in processes])
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tests.deploy.launch", str(spec)],
        cwd=Path(__file__).parents[2],
        stdout=subprocess.DEVNULL,
        text=True,
        preexec_fn=die_with_parent,
    )


def stop(launcher: subprocess.Popen[str]) -> None:
    launcher.terminate()
    try:
        launcher.wait(timeout=30)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.wait()


@dataclass
class Pair:
    """Two processes behind nginx: `balanced` over both, `via_a` and `via_b` to one each."""

    balanced: str
    via_a: str
    via_b: str
    tenant: Tenant


def create_tenant(database_url: str, name: str) -> Tenant:
    async def work() -> Tenant:
        engines = Engines(create_engine(database_url))
        try:
            async with engines.transaction() as db:
                tenant, secret = await tenants.create_tenant(db, name=name, rp_id="localhost")
        finally:
            await engines.write.dispose()
        return Tenant(tenant.id, secret, "localhost")

    return asyncio.run(work())


def redis_available() -> bool:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is required under CI: {exc}")
        return False
    return True


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A PostgreSQL database of this module's (the processes share it; SQLite is one host)."""
    with fresh_postgres_database("passgate_nginx") as url:
        yield url


@pytest.fixture(scope="module")
def pairs(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Pair]]:
    binary = nginx_binary()
    directory = tmp_path_factory.mktemp("nginx")
    asyncio.run(upgrade(database_url))  # once, before the processes start
    common: dict[str, object] = {
        "push_recheck_seconds": RECHECK_SECONDS,
        "prune_interval_seconds": 0,
        **PATIENT_DATABASE,
    }
    kinds: dict[str, dict[str, object]] = {
        "postgres": {"client_rate_limit_per_ip": PER_IP, "client_rate_limit_window_seconds": 3600}
    }
    if redis_available():
        kinds["redis"] = {"redis_url": REDIS_URL}
    processes = {
        kind: [
            Passgate(database_url, directory / f"{kind}-{n}.log", **common, **extra) for n in "ab"
        ]
        for kind, extra in kinds.items()
    }
    launcher = launch([p for pair in processes.values() for p in pair], directory / "spec.json")
    nginx: Nginx | None = None
    try:
        for pair in processes.values():
            for process in pair:
                process.wait_ready(launcher)
        entrances: dict[str, tuple[int, list[int]]] = {}
        for kind, (a, b) in processes.items():
            entrances[f"{kind}_balanced"] = (free_port(), [a.port, b.port])
            entrances[f"{kind}_a"] = (free_port(), [a.port])
            entrances[f"{kind}_b"] = (free_port(), [b.port])
        nginx = Nginx(binary, directory / "nginx", derive(SHIPPED.read_text(), entrances))
        nginx.wait_listening([port for port, _ in entrances.values()])

        def url(name: str) -> str:
            return f"http://127.0.0.1:{entrances[name][0]}/v1"

        yield {
            kind: Pair(
                url(f"{kind}_balanced"),
                url(f"{kind}_a"),
                url(f"{kind}_b"),
                create_tenant(database_url, kind),
            )
            for kind in processes
        }
    finally:
        if nginx is not None:
            nginx.stop()
        stop(launcher)


def test_the_shipped_config_as_it_is_passes_nginx_t(tmp_path: Path) -> None:
    """TLS, HTTP/2 and the redirect as shipped, with a self-signed certificate in place of
    the placeholders (checked, not served: it names ports 80 and 443)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auth.example.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    shipped = SHIPPED.read_text()
    placeholders = re.findall(r"(ssl_certificate(?:_key)?) (\S+);", shipped)
    assert len(placeholders) == 2
    for directive, path in placeholders:
        mine = tmp_path / ("key.pem" if directive.endswith("_key") else "cert.pem")
        shipped = shipped.replace(f"{directive} {path};", f"{directive} {mine};")
    Nginx(nginx_binary(), tmp_path / "nginx", shipped, start=False)


def test_the_shipped_long_poll_timeout_outlasts_passgates_longest_wait() -> None:
    timeout = re.search(r"proxy_read_timeout (\d+)s;", SHIPPED.read_text())
    assert timeout is not None and int(timeout.group(1)) > MAX_WAIT_SECONDS


def test_a_challenge_created_through_one_process_is_answered_through_the_other(
    pairs: dict[str, Pair],
) -> None:
    pair = pairs["postgres"]
    key = new_device_key()
    with TenantClient(pair.via_a, pair.tenant) as a, TenantClient(pair.via_b, pair.tenant) as b:
        a.add_device(key, "amy")
        tracked = a.track("amy", "signIn").json()
        pending = b.pending(key)
        assert pending.json()["challengeId"] == tracked["challengeId"]
        answered = b.answer(key, tracked["challengeId"], code=tracked["verificationCode"])
        assert answered.json() == {"isVerified": True}
        assert a.validate(tracked["token"]).json()["isValid"] is True


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_a_long_poll_on_one_process_is_woken_by_a_track_on_the_other(
    pairs: dict[str, Pair], kind: str
) -> None:
    if kind not in pairs:
        pytest.skip(f"Redis unreachable at {REDIS_URL}")
    pair = pairs[kind]
    key = new_device_key()
    answers: list[httpx.Response] = []
    with TenantClient(pair.via_a, pair.tenant) as a, TenantClient(pair.via_b, pair.tenant) as b:
        a.add_device(key, "bob")
        message = a.nonce(key).json()["message"]

        def long_poll() -> None:
            answers.append(
                a.client(
                    "GET",
                    f"{PUSH_PATH}/challenge",
                    params={"publicKey": public_key_param(key), "wait": 25},
                    headers={SIGNATURE_HEADER: sign(key, message)},
                    timeout=40,
                )
            )

        waiter = threading.Thread(target=long_poll)
        waiter.start()
        time.sleep(0.5)  # waiting in process A
        started = time.monotonic()
        tracked = b.track("bob", "signIn").json()
        waiter.join(timeout=40)
        elapsed = time.monotonic() - started
    assert answers and answers[0].json()["challengeId"] == tracked["challengeId"]
    assert elapsed < 1, f"woken after {elapsed:.2f} s (the recheck is {RECHECK_SECONDS} s)"


def test_a_page_waiting_on_one_process_hears_the_answer_given_through_the_other(
    pairs: dict[str, Pair],
) -> None:
    """W2 with `wait` through nginx: the page waits in A, the device answers through B."""
    pair = pairs["postgres"]
    key = new_device_key()
    answers: list[httpx.Response] = []
    with TenantClient(pair.via_a, pair.tenant) as a, TenantClient(pair.via_b, pair.tenant) as b:
        b.add_device(key, "eve")
        tracked = a.track("eve", "signIn").json()

        def wait() -> None:
            answers.append(a.wait_for_verdict(tracked))

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)  # waiting in process A
        started = time.monotonic()
        assert b.answer(key, tracked["challengeId"], code=tracked["verificationCode"]).json() == {
            "isVerified": True
        }
        waiter.join(timeout=40)
        elapsed = time.monotonic() - started
    assert answers and answers[0].json()["isConsumed"] is True
    assert elapsed < 1, f"woken after {elapsed:.2f} s (the recheck is {RECHECK_SECONDS} s)"


def test_the_push_limit_holds_when_tracks_alternate_between_processes(
    pairs: dict[str, Pair],
) -> None:
    pair = pairs["postgres"]
    limit = PushSettings().rate_limit
    tracks = 4 * limit
    with TenantClient(pair.via_a, pair.tenant) as a, TenantClient(pair.via_b, pair.tenant) as b:
        a.add_device(new_device_key(), "carl")
        clients = (a, b)
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(
                pool.map(lambda i: clients[i % 2].track("carl", "signIn"), range(tracks))
            )
    assert Counter(r.status_code for r in responses) == {200: tracks}
    started = [r for r in responses if r.json().get("challengeId")]
    assert len(started) == limit


def test_of_100_answers_spread_over_both_processes_one_decides(pairs: dict[str, Pair]) -> None:
    pair = pairs["postgres"]
    key = new_device_key()
    with TenantClient(pair.via_a, pair.tenant) as a:
        a.add_device(key, "dora")
        tracked = a.track("dora", "payment").json()
    clients = [
        TenantClient((pair.via_a, pair.via_b)[i % 2], pair.tenant, timeout=60)
        for i in range(RACERS)
    ]
    start = threading.Barrier(RACERS, timeout=60)

    def answer(i: int) -> httpx.Response:
        clients[i].nonce(key)  # a warm connection through nginx before the race
        start.wait()
        return clients[i].answer(
            key, tracked["challengeId"], approved=i % 2 == 0, code=tracked["verificationCode"]
        )

    try:
        with ThreadPoolExecutor(max_workers=RACERS) as pool:
            responses = list(pool.map(answer, range(RACERS)))
    finally:
        for client in clients:
            client.close()
    counted = Counter(r.status_code for r in responses)
    assert counted[200] == 1, counted
    assert sum(n for status, n in counted.items() if 400 <= status < 500) == RACERS - 1, counted
    [winner] = [r for r in responses if r.status_code == 200]
    with TenantClient(pair.balanced, pair.tenant) as backend:
        valid = backend.validate(tracked["token"]).json()["isValid"]
    assert valid is winner.json()["isVerified"]


def test_the_client_ip_is_the_one_nginx_saw_not_what_the_client_claims(
    pairs: dict[str, Pair],
) -> None:
    """Passgate trusts nginx on loopback; a client's own X-Forwarded-For entries are ignored,
    so changing them does not get it past the per-address limit."""
    pair = pairs["postgres"]

    def calls(address: str, *claimed: str) -> list[int]:
        transport = httpx.HTTPTransport(local_address=address)
        auth = (pair.tenant.id, "")
        with httpx.Client(base_url=pair.balanced, auth=auth, transport=transport) as api:
            return [
                api.post("/client/challenge", json={}, headers={"X-Forwarded-For": ip}).status_code
                for ip in claimed
            ]

    spoofed = [f"198.51.100.{n}" for n in range(PER_IP + 1)]
    assert calls(CLIENT, *spoofed) == [200] * PER_IP + [429]
    assert calls(OTHER_CLIENT, "198.51.100.1") == [200]
