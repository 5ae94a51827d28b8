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
