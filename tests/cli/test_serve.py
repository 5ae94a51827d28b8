"""`passgate serve --dev`, what `make run` starts: migrates, creates a dev tenant once,
prints its keys on every start, and serves on loopback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cli.serve_process import ServeProcess


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_dev_server(
    workdir: Path, port: int, *options: str
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "passgate.cli", "serve", "--dev", "--port", str(port), *options],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "PASSGATE_DATABASE_URL"},
            "COLUMNS": "200",
        },
    )
    printed: dict[str, str] = {}
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if match := re.match(r"^(Dev tenant|Secret key|Base URL|Origins)\s+(\S.*)$", line):
            printed[match[1]] = match[2]
        if "Uvicorn running" in line or "Application startup complete" in line:
            return process, printed
    stop(process)
    raise AssertionError(f"server did not start; printed {printed}")


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=30)
    assert process.stdout is not None
    process.stdout.close()


def test_dev_server_prints_working_keys_and_keeps_them(tmp_path: Path) -> None:
    port = free_port()
    process, printed = start_dev_server(tmp_path, port)
    try:
        assert printed["Base URL"] == f"http://127.0.0.1:{port}/v1"
        response = httpx.post(
            f"{printed['Base URL']}/users/dev-user/actions/signIn",
            json={},
            auth=(printed["Secret key"], ""),
        )
        assert response.status_code == 200, response.text
    finally:
        stop(process)
    assert (tmp_path / ".passgate" / "passgate.db").exists()

    # A local web dev server on another port: --origin lets its pages call the Client API.
    web_dev = "http://localhost:5173"
    process, again = start_dev_server(tmp_path, port, "--origin", web_dev)
    try:
        assert {k: v for k, v in again.items() if k != "Origins"} == {
            k: v for k, v in printed.items() if k != "Origins"
        }
        assert printed["Origins"] == f"https://localhost, http://localhost:{port}"
        assert again["Origins"] == f"https://localhost, http://localhost:{port}, {web_dev}"
        response = httpx.get(f"{again['Base URL']}/users/dev-user", auth=(again["Secret key"], ""))
        assert response.status_code == 200
        preflight = httpx.options(
            f"{again['Base URL']}/client/challenge",
            headers={"Origin": web_dev, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == web_dev
        tracked = httpx.post(
            f"{again['Base URL']}/users/dev-user/actions/signIn",
            json={},
            auth=(again["Secret key"], ""),
        ).json()
        # The hosted page runs on the listen address, named localhost for the rp id.
        assert tracked["url"].startswith(f"http://localhost:{port}/challenge?token=")
    finally:
        stop(process)


def test_serve_believes_forwarded_for_only_from_the_proxies_it_is_told(tmp_path: Path) -> None:
    """uvicorn's own proxy-header handling (which trusts 127.0.0.1) is off under `passgate
    serve`: with only 127.0.0.2 trusted, a client on 127.0.0.1 is counted by its own address
    whatever X-Forwarded-For it sends, so its second call is over a per-address limit of 1."""
    server = ServeProcess(
        tmp_path,
        "--dev",
        env={
            "PASSGATE_FORWARDED_ALLOW_IPS": "127.0.0.2",
            "PASSGATE_CLIENT_RATE_LIMIT_PER_IP": "1",
            "PASSGATE_CLIENT_RATE_LIMIT_PER_TENANT": "0",
        },
    ).wait_ready()
    try:
        tenant_id = server.printed("Dev tenant")

        def statuses(peer: str, *forwarded_for: str) -> list[int]:
            transport = httpx.HTTPTransport(local_address=peer)
            with httpx.Client(
                base_url=f"{server.url}/v1", auth=(tenant_id, ""), transport=transport
            ) as api:
                return [
                    api.post(
                        "/client/challenge", json={}, headers={"X-Forwarded-For": value}
                    ).status_code
                    for value in forwarded_for
                ]

        assert statuses("127.0.0.1", "203.0.113.1", "203.0.113.2") == [200, 429]
        # The trusted proxy's clients are told apart by the address it forwards.
        assert statuses("127.0.0.2", "203.0.113.3", "203.0.113.4") == [200, 200]
    finally:
        server.kill()
