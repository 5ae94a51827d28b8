"""Server CPU per Server API operation, against a floor measured in the same run.

    .venv/bin/python benchmarks/server_api.py [--requests 2000] [--database-url URL]

Starts `passgate serve` in its own process (SQLite in a temporary folder by default), then
reads that process's CPU time (user + system, from /proc) around each workload:
- floor: one do-nothing request (`GET /health`) per operation step;
- track: `POST /users/{id}/actions/{action}`;
- track + validate: the whole backend round trip of an allowed action.
Figures are CPU microseconds of the server per operation and the ratio to the floor of the same
number of HTTP requests. Linux only (reads /proc)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def passgate(*args: str) -> str:
    command = [sys.executable, "-m", "passgate.cli", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def measure(pid: int, requests: int, work: Callable[[int], None]) -> float:
    work(-1)  # warm up this code path once
    before = cpu_seconds(pid)
    for index in range(requests):
        work(index)
    return (cpu_seconds(pid) - before) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--database-url")
    options = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="passgate-bench-")
    database_url = options.database_url or f"sqlite:///{scratch}/bench.db"
    tenant = json.loads(
        passgate("tenant", "create", "--name", "bench", "--rp-id", "localhost",
                 "--database-url", database_url, "--json")
    )
    passgate("tenant", "set-action", tenant["tenantId"], "allowed", "--outcome", "ALLOW",
             "--database-url", database_url)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "passgate.cli", "serve", "--port", str(port),
         "--database-url", database_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, auth=(tenant["secretKey"], ""), timeout=10) as http:
            for _ in range(200):
                try:
                    http.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)

            def floor(_: int) -> None:
                http.get("/health").raise_for_status()

            def track(index: int) -> None:
                http.post(f"/v1/users/u{index}/actions/signIn", json={}).raise_for_status()

            def track_and_validate(index: int) -> None:
                token = http.post(f"/v1/users/v{index}/actions/allowed", json={}).json()["token"]
                result = http.post("/v1/validate", json={"token": token}).json()
                assert result["isValid"] is True

            floor_us = measure(server.pid, options.requests, floor)
            track_us = measure(server.pid, options.requests, track)
            round_trip_us = measure(server.pid, options.requests // 2, track_and_validate)
    finally:
        server.terminate()
        server.wait(timeout=30)
    backend = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(f"server CPU per operation ({backend}, {options.requests} requests each):")
    print(f"  floor (GET /health)        {floor_us:8.0f} µs   1.00x")
    print(f"  track                      {track_us:8.0f} µs   {track_us / floor_us:.2f}x")
    print(
        f"  track + validate           {round_trip_us:8.0f} µs   "
        f"{round_trip_us / (2 * floor_us):.2f}x of 2 requests' floor"
    )


if __name__ == "__main__":
    main()
