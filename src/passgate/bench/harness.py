"""`passgate bench`: start `passgate serve` against a preloaded database, drive full flows from
client processes, and read the server's CPU time from /proc around each run (Linux only).
What is measured and how the floor is composed: docs/performance.md#running-the-benchmark."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.bench import report
from passgate.bench.flows import FLOWS, HEALTH
from passgate.bench.preload import preload
from passgate.bench.workers import ClientConfig, ClientPool, RunResult

TICKS = os.sysconf("SC_CLK_TCK")
POSTGRESQL_URL = "postgresql://postgres@127.0.0.1:5432/test"
PEER_FLOWS = ("push_round_trip", "passkey_sign_in")
# Per client process: passkeys registered (sign-in flow) and push devices enrolled (push flow).
SIGN_IN_USERS = 16
PUSH_USERS = 16


@dataclass(kw_only=True)
class BenchOptions:
    database_url: str | None = None
    seconds: float = 10.0
    concurrency: int = 4
    runs: int = 3
    users: int = 100_000
    actions: int = 1_000_000
    flows: list[str] = field(default_factory=lambda: list(FLOWS))
    peer: str | None = None
    json_path: Path | None = None
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))


# /proc readings ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def postgres_cpu_seconds(database: str) -> float:
    """CPU of the PostgreSQL processes working for `database`: its backends (their process
    title names the database) and the shared helpers (WAL writer, checkpointer, background
    writer, autovacuum), which are not connected to any database. Backends of other databases
    on a shared server are left out."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("postgres"):
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            is_backend = "(" in title or " idle" in title or "in transaction" in title
            if is_backend and f" {database} " not in title:
                continue
            total += cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


# Floor primitives ----------------------------------------------------------------------------


def es256_costs(rounds: int = 2000) -> tuple[float, float]:
    """Microseconds of one ES256 verification and one signature, in this process (the same
    `cryptography` and machine the server uses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    algorithm = ec.ECDSA(hashes.SHA256())
    message = b"x" * 200
    signature = key.sign(message, algorithm)
    for _ in range(50):
        public.verify(signature, message, algorithm)
    started = time.perf_counter()
    for _ in range(rounds):
        public.verify(signature, message, algorithm)
    verify = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        key.sign(message, algorithm)
    sign = (time.perf_counter() - started) / rounds * 1e6
    return verify, sign


# The server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def passgate(environment: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "passgate.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode != 0:
        raise RuntimeError(f"passgate {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def get_json(port: int, path: str) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        return json.loads(body)
    finally:
        connection.close()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def statements(self) -> int:
        return int(get_json(self.port, "/debug/statements")["statements"])


@contextmanager
def running_server(
    database_url: str, environment: dict[str, str], workdir: Path
) -> Iterator[Server]:
    port = free_port()
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "passgate.cli",
                "serve",
                "--port",
                str(port),
                "--database-url",
                database_url,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    server = Server(process, port, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"passgate serve exited: {log_path.read_text()[-1000:]}")
            try:
                get_json(port, "/health")
                break
            except (OSError, RuntimeError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise RuntimeError("passgate serve did not answer within 60 s") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# PostgreSQL scratch database -----------------------------------------------------------------


async def _postgres_admin(statement: str, url: str = POSTGRESQL_URL) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncio.wait_for(asyncpg.connect(url), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_postgres_database() -> tuple[str | None, str]:
    """A fresh database on the local PostgreSQL: (its URL, its name), or (None, why not)."""
    name = f"passgate_bench_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable, refused, no asyncpg: report, do not fail
        return None, f"{POSTGRESQL_URL} not reachable: {exc!r}"[:300]
    return POSTGRESQL_URL.rsplit("/", 1)[0] + f"/{name}", name


def drop_postgres_database(name: str) -> None:
    try:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception as exc:
        print(f"passgate bench: could not drop database {name}: {exc!r}", file=sys.stderr)


# Measuring ---------------------------------------------------------------------------------


@dataclass
class Measurement:
    result: RunResult
    elapsed: float
    server_cpu: float
    db_cpu: float | None
    statements: int
    rss_growth_mib: float

    @property
    def ops_per_second(self) -> float:
        return self.result.ops / self.elapsed if self.elapsed else 0.0

    def per_op(self, value: float | None) -> float | None:
        if value is None or not self.result.ops:
            return None
        return value / self.result.ops


def measure(
    server: Server,
    pool: ClientPool,
    flow: str,
    seconds: float,
    *,
    rate: float | None,
    database: str | None,
) -> Measurement:
    """One run of `flow` on every client process, as fast as they go (`rate` None) or paced
    at `rate` ops/s in total."""
    statements_before = server.statements()
    rss_before = rss_mib(server.pid)
    start_at = time.monotonic() + 0.2
    end_at = start_at + seconds
    per_process = rate / len(pool.connections) if rate else None
    for number, connection in enumerate(pool.connections):
        # Paced processes start staggered, so their requests interleave.
        offset = number / rate if rate else 0.0
        connection.send(("run", flow, start_at + offset, end_at, per_process))
    time.sleep(max(0.0, start_at - time.monotonic()))
    cpu_before = cpu_seconds(server.pid)
    db_before = postgres_cpu_seconds(database) if database else None
    answers = pool.answers()
    cpu_after = cpu_seconds(server.pid)
    db_after = postgres_cpu_seconds(database) if database else None
    elapsed = time.monotonic() - start_at
    statements = server.statements() - statements_before
    total = RunResult()
    for answer in answers:
        total.add(answer)
    db_cpu = db_after - db_before if db_after is not None and db_before is not None else None
    return Measurement(
        total,
        elapsed,
        cpu_after - cpu_before,
        db_cpu,
        statements,
        rss_mib(server.pid) - rss_before,
    )


def _us(value: float | None) -> float | None:
    return None if value is None else value * 1e6


def bench_flow(
    server: Server,
    pool: ClientPool,
    flow: str,
    options: BenchOptions,
    database: str | None,
    floor: dict[str, Any],
) -> dict[str, Any]:
    pool.prepare(flow)
    cost = FLOWS[flow]
    floor_us = (
        cost.requests * floor["health_us"]["median"]
        + cost.verifications * floor["es256_verify_us"]
        + cost.signatures * floor["es256_sign_us"]
    )
    rows: dict[str, list[Any]] = {
        key: []
        for key in (
            "ops_per_second",
            "server_cpu_us_per_op",
            "db_cpu_us_per_op",
            "statements_per_op",
            "ratio_to_floor",
            "p50",
            "p95",
            "p99",
            "errors",
            "status_503",
            "rss_growth_mib",
            "paced_ops_per_second",
        )
    }
    samples: list[str] = []
    for run in range(options.runs):
        peak = measure(server, pool, flow, options.seconds, rate=None, database=database)
        clean = peak.result.errors == 0
        server_us = _us(peak.per_op(peak.server_cpu))
        rows["ops_per_second"].append(peak.ops_per_second if clean else None)
        rows["server_cpu_us_per_op"].append(server_us)
        rows["db_cpu_us_per_op"].append(_us(peak.per_op(peak.db_cpu)))
        rows["statements_per_op"].append(peak.per_op(peak.statements))
        rows["ratio_to_floor"].append(server_us / floor_us if server_us and floor_us else None)
        errors, status_503 = peak.result.errors, peak.result.status_503
        rss = peak.rss_growth_mib
        samples.extend(peak.result.error_samples)
        latencies: list[float] = []
        paced_rate = None
        if peak.ops_per_second > 0:
            paced = measure(
                server,
                pool,
                flow,
                options.seconds,
                rate=peak.ops_per_second / 2,
                database=database,
            )
            latencies = sorted(paced.result.latencies)
            paced_rate = paced.ops_per_second
            errors += paced.result.errors
            status_503 += paced.result.status_503
            rss += paced.rss_growth_mib
            samples.extend(paced.result.error_samples)
        for key, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            value = report.percentile(latencies, fraction)
            rows[key].append(None if value is None else value * 1000)
        rows["errors"].append(errors)
        rows["status_503"].append(status_503)
        rows["rss_growth_mib"].append(rss)
        rows["paced_ops_per_second"].append(paced_rate)
        options.log(
            f"  {flow} run {run + 1}/{options.runs}: {peak.ops_per_second:.1f} ops/s, "
            f"{server_us or 0:.0f} µs server CPU/op, {errors} errors"
        )
    return {
        "ops_per_second": report.summary(rows["ops_per_second"]),
        "server_cpu_us_per_op": report.summary(rows["server_cpu_us_per_op"]),
        "db_cpu_us_per_op": report.summary(rows["db_cpu_us_per_op"]),
        "statements_per_op": report.summary(rows["statements_per_op"]),
        "floor_us_per_op": report.summary([floor_us]),
        "ratio_to_floor": report.summary(rows["ratio_to_floor"]),
        "latency_ms": {key: report.summary(rows[key]) for key in ("p50", "p95", "p99")},
        "errors": report.summary(rows["errors"]),
        "status_503": report.summary(rows["status_503"]),
        "rss_growth_mib": report.summary(rows["rss_growth_mib"]),
        # What the latency run achieved; below half of ops_per_second, the server fell behind.
        "paced_ops_per_second": report.summary(rows["paced_ops_per_second"]),
        "error_samples": samples[:5],
    }


def bench_database(
    label: str, database_url: str, database: str | None, options: BenchOptions, workdir: Path
) -> dict[str, Any]:
    environment = {
        **os.environ,
        "PASSGATE_DATA_DIR": str(workdir / "data"),
        # Every client comes from 127.0.0.1: keep the C1/C4 limits' bookkeeping (a write per
        # call, as in production) but out of reach.
        "PASSGATE_CLIENT_RATE_LIMIT_PER_IP": "1000000000",
        "PASSGATE_CLIENT_RATE_LIMIT_PER_TENANT": "1000000000",
        "PASSGATE_COUNT_STATEMENTS": "1",
    }
    options.log(f"{label}: migrating and creating the tenant")
    passgate(environment, "db", "upgrade", "--database-url", database_url)
    tenant = json.loads(
        passgate(
            environment,
            "tenant",
            "create",
            "--name",
            "bench",
            "--rp-id",
            "localhost",
            "--database-url",
            database_url,
            "--json",
        )
    )
    # The push-bombing limit (5 per user per 10 minutes by default) would refuse a benchmark.
    passgate(
        environment,
        "tenant",
        "update",
        tenant["tenantId"],
        "--push-rate-limit",
        "1000000000",
        "--database-url",
        database_url,
    )
    options.log(f"{label}: preloading {options.users:,} users, {options.actions:,} actions")
    preload_seconds = preload(
        database_url, tenant["tenantId"], users=options.users, actions=options.actions
    )
    options.log(f"{label}: preloaded in {preload_seconds:.1f} s")
    verify_us, sign_us = es256_costs()
    result: dict[str, Any] = {
        "available": True,
        "preload": {
            "users": options.users,
            "actions": options.actions,
            "seconds": round(preload_seconds, 2),
        },
    }
    with running_server(database_url, environment, workdir) as server:
        config = ClientConfig(
            host="127.0.0.1",
            port=server.port,
            tenant_id=tenant["tenantId"],
            secret_key=tenant["secretKey"],
            preloaded_users=options.users,
            sign_in_users=SIGN_IN_USERS,
            push_users=PUSH_USERS,
        )
        pool = ClientPool(options.concurrency, config, f"{label}{os.getpid()}")
        try:
            pool.prepare(HEALTH)
            health = []
            for _ in range(options.runs):
                run = measure(
                    server, pool, HEALTH, min(options.seconds, 5.0), rate=None, database=database
                )
                health.append(_us(run.per_op(run.server_cpu)))
            floor: dict[str, Any] = {
                "health_us": report.summary(health),
                "es256_verify_us": round(verify_us, 1),
                "es256_sign_us": round(sign_us, 1),
            }
            options.log(f"{label}: floor GET /health {floor['health_us']['median'] or 0:.0f} µs")
            result["floor"] = floor
            result["flows"] = {}
            for flow in options.flows:
                try:
                    result["flows"][flow] = bench_flow(server, pool, flow, options, database, floor)
                except Exception as exc:  # record it with the server's last words, go on
                    options.log(f"  {flow} failed: {exc}")
                    result["flows"][flow] = {
                        "available": False,
                        "reason": f"{exc}"[-1500:],
                        "server_log_tail": server.log_tail(),
                    }
        finally:
            pool.close()
        result["server_rss_mib_at_end"] = round(rss_mib(server.pid), 1)
    return result


def peer_workdir() -> Path:
    """Where the peer is installed, kept between runs (installing it takes minutes)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "passgate" / "bench-privacyidea"


def run_peer(options: BenchOptions, document: dict[str, Any]) -> dict[str, Any]:
    peer: dict[str, Any] = {"name": options.peer, "available": False}
    if options.peer != "privacyidea":
        peer["reason"] = f"unknown peer {options.peer!r} (known: privacyidea)"
        return peer
    try:
        from passgate.bench import privacyidea  # written separately; may be absent

        peer_dir = peer_workdir()
        peer_dir.mkdir(parents=True, exist_ok=True)
        privacyidea.prepare_privacyidea(peer_dir)
    except Exception as exc:
        peer["reason"] = f"{type(exc).__name__}: {exc}"[:500]
        return peer
    peer["available"] = True
    peer["workdir"] = str(peer_dir)
    peer["flows"] = {}
    ours = document["databases"].get("sqlite", {}).get("flows", {})
    for flow in PEER_FLOWS:
        if flow not in options.flows:
            continue
        try:
            figures = dict(
                privacyidea.run_privacyidea(
                    flow,
                    seconds=options.seconds,
                    concurrency=options.concurrency,
                    workdir=peer_dir,
                )
            )
        except Exception as exc:
            peer["flows"][flow] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            continue
        peer.setdefault("config", figures.get("config", ""))
        theirs = figures.get("server_cpu_us_per_op")
        mine = ours.get(flow, {}).get("server_cpu_us_per_op", {}).get("median")
        figures["passgate_to_peer_cpu_ratio"] = mine / theirs if mine and theirs else None
        peer["flows"][flow] = figures
    return peer


def run_bench(options: BenchOptions) -> dict[str, Any]:
    unknown = [flow for flow in options.flows if flow not in FLOWS]
    if unknown:
        raise ValueError(f"unknown flow(s) {', '.join(unknown)}; known: {', '.join(FLOWS)}")
    document: dict[str, Any] = {
        "schema_version": report.SCHEMA_VERSION,
        "command": options.command,
        "machine": report.machine(),
        "settings": {
            "seconds": options.seconds,
            "concurrency": options.concurrency,
            "runs": options.runs,
            "users": options.users,
            "actions": options.actions,
            "flows": options.flows,
            "sign_in_passkeys_per_client": SIGN_IN_USERS,
            "push_devices_per_client": PUSH_USERS,
        },
        "floor_composition": {flow: asdict(FLOWS[flow]) for flow in options.flows},
        "databases": {},
    }
    with tempfile.TemporaryDirectory(prefix="passgate-bench-") as scratch:
        workdir = Path(scratch)
        # (label, URL, PostgreSQL database name, made here); the scratch PostgreSQL database
        # is made only when its turn comes, and always dropped.
        targets: list[tuple[str, str | None, str | None, bool]] = []
        if options.database_url:
            label = "postgresql" if options.database_url.startswith("postgres") else "sqlite"
            name = options.database_url.rsplit("/", 1)[-1] if label == "postgresql" else None
            targets.append((label, options.database_url, name, False))
        else:
            targets.append(("sqlite", f"sqlite:///{workdir}/sqlite/bench.db", None, False))
            targets.append(("postgresql", None, None, True))
        for label, url, name, scratch_database in targets:
            if scratch_database:
                url, name_or_reason = create_postgres_database()
                if url is None:
                    document["databases"][label] = {"available": False, "reason": name_or_reason}
                    continue
                name = name_or_reason
            assert url is not None
            folder = workdir / label
            folder.mkdir(exist_ok=True)
            try:
                document["databases"][label] = bench_database(label, url, name, options, folder)
            except Exception as exc:  # report this database as failed, go on with the next
                options.log(f"{label}: failed: {exc!r}")
                reason = f"failed: {type(exc).__name__}: {exc}"[:1000]
                document["databases"][label] = {"available": False, "reason": reason}
            finally:
                if scratch_database and name:
                    drop_postgres_database(name)
        if options.peer:
            document["peer"] = run_peer(options, document)
    return document
