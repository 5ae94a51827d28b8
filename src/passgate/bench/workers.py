"""Client processes: each holds one `Client` (its own keys and connection) and runs flows when
the harness asks, so client-side signing never runs in the server's process or CPU budget."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from passgate.bench.flows import Client, FlowError


@dataclass(frozen=True, slots=True)
class ClientConfig:
    host: str
    port: int
    tenant_id: str
    secret_key: str
    preloaded_users: int
    sign_in_users: int
    push_users: int


@dataclass(slots=True)
class RunResult:
    """What one client process did in one run."""

    ops: int = 0
    errors: int = 0
    status_503: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, successful ops only
    error_samples: list[str] = field(default_factory=list)

    def add(self, other: RunResult) -> None:
        self.ops += other.ops
        self.errors += other.errors
        self.status_503 += other.status_503
        self.latencies.extend(other.latencies)
        self.error_samples.extend(other.error_samples[: max(0, 5 - len(self.error_samples))])


def _sleep_until(instant: float) -> None:
    delay = instant - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def run_flow(
    client: Client, flow: str, start_at: float, end_at: float, rate: float | None
) -> RunResult:
    """Run `flow` back to back from `start_at` to `end_at`, or paced at `rate` ops/s. A paced
    op's latency counts from when it was due, so a server that falls behind shows it."""
    result = RunResult()
    _sleep_until(start_at)
    index = 0
    while True:
        if rate:
            due = start_at + index / rate
            if due >= end_at:
                break
            _sleep_until(due)
        else:
            due = time.monotonic()
            if due >= end_at:
                break
        index += 1
        try:
            client.run(flow)
        except Exception as exc:  # a FlowError, or an answer without the fields it needs
            result.errors += 1
            result.status_503 += isinstance(exc, FlowError) and exc.status == 503
            if len(result.error_samples) < 5:
                result.error_samples.append(str(exc) if isinstance(exc, FlowError) else repr(exc))
        else:
            result.ops += 1
            result.latencies.append(time.monotonic() - due)
    return result


def _serve(connection: Connection, config: ClientConfig, name: str, seed: int) -> None:
    client = Client(
        host=config.host,
        port=config.port,
        tenant_id=config.tenant_id,
        secret_key=config.secret_key,
        name=name,
        preloaded_users=config.preloaded_users,
        seed=seed,
    )
    try:
        while True:
            command, *arguments = connection.recv()
            try:
                if command == "stop":
                    return
                if command == "prepare":
                    (flow,) = arguments
                    client.prepare(
                        flow, sign_in_users=config.sign_in_users, push_users=config.push_users
                    )
                    for _ in range(3):  # warm up this flow's code paths, unmeasured
                        client.run(flow)
                    connection.send(("ok", None))
                elif command == "run":
                    flow, start_at, end_at, rate = arguments
                    connection.send(("ok", run_flow(client, flow, start_at, end_at, rate)))
            except Exception:
                connection.send(("error", traceback.format_exc(limit=4)))
    finally:
        client.close()


class ClientPool:
    """`size` client processes (spawned, so they share nothing with the harness)."""

    def __init__(self, size: int, config: ClientConfig, run_name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.connections: list[Connection] = []
        self.processes: list[Any] = []
        for number in range(size):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(theirs, config, f"{run_name}-{number}", number),
                daemon=True,
            )
            process.start()
            self.connections.append(mine)
            self.processes.append(process)

    def ask(self, *command: Any) -> None:
        for connection in self.connections:
            connection.send(command)

    def answers(self) -> list[Any]:
        answers = []
        failures = []
        for connection in self.connections:
            status, value = connection.recv()
            if status == "error":
                failures.append(value)
            answers.append(value)
        if failures:
            raise RuntimeError("a client process failed:\n" + failures[0])
        return answers

    def prepare(self, flow: str) -> None:
        self.ask("prepare", flow)
        self.answers()

    def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.send(("stop",))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
