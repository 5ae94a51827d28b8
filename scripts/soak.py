"""Soak: real sign-ups, sign-ins and push approvals against one `passgate serve` for minutes.

    .venv/bin/python scripts/soak.py [--minutes 10] [--workers 4] [--database-url URL]

Starts `passgate serve` in its own process (SQLite in a temporary folder by default) with a
tenant whose rp id is localhost, then runs `--workers` client threads until the time is up.
Each round of a worker is what an app and its backend do for one new user:
- track `signUp` with `add:authenticators`, passkey sign-up through the Python SDK (software
  authenticator), validate the result;
- a discoverable passkey sign-in, validate;
- enrol a push device (P-256 key), track an action that asks it, the device long-polls,
  approves, the backend validates.
Counted: HTTP requests, 5xx answers, transport errors and flows that did not end as they must.
The server's resident memory is read from /proc at the start (after a warm-up round) and at
the end, and once a minute between. Not run in CI: the figures go to docs/reliability.md.
Linux only (reads /proc)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import httpx

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore, SoftwareAuthenticator


class CountingTransport(httpx.HTTPTransport):
    """Counts every request and how it was answered, for all threads."""

    lock: ClassVar[threading.Lock] = threading.Lock()
    counts: ClassVar[Counter[str]] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except httpx.TransportError:
            self._count("transport error")
            raise
        self._count(f"{response.status_code // 100}xx")
        return response

    def _count(self, outcome: str) -> None:
        with self.lock:
            self.counts["requests"] += 1
            self.counts[outcome] += 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def passgate(*args: str, env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "passgate.cli", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout


class Worker:
    def __init__(self, number: int, api_url: str, tenant: dict[str, Any], scratch: Path) -> None:
        self.number = number
        self.api_url = api_url
        self.tenant = tenant
        self.scratch = scratch
        self.backend = httpx.Client(
            base_url=api_url,
            auth=(tenant["secretKey"], ""),
            transport=CountingTransport(),
            timeout=30,
        )
        self.flows: Counter[str] = Counter()
        self.failures: list[str] = []

    def round(self, index: int) -> None:
        user = f"soak-{self.number}-{index}"
        folder = self.scratch / user
        folder.mkdir()
        passkey = SoftwareAuthenticator(folder / "passkeys", passphrase="soak")
        keys = DeviceKeyStore(folder / "device.pem", passphrase="soak")
        app = AuthsignalSync(
            self.tenant["tenantId"],
            self.api_url,
            passkey_authenticator=passkey,
            device_keys=keys,
            transport=CountingTransport(),
            timeout=30,
        )
        try:
            self.flow("passkey sign-up", lambda: self.sign_up(app, user))
            self.flow("passkey sign-in", lambda: self.sign_in(app))
            self.flow("push approval", lambda: self.push(app, user))
        finally:
            app.close()

    def flow(self, name: str, run: Any) -> None:
        try:
            run()
        except Exception:
            self.flows[f"{name} failed"] += 1
            if len(self.failures) < 5:
                self.failures.append(f"{name}: {traceback.format_exc(limit=3)}")
        else:
            self.flows[name] += 1

    def track(self, user: str, action: str, **body: Any) -> dict[str, Any]:
        response = self.backend.post(f"/users/{user}/actions/{action}", json=body)
        response.raise_for_status()
        return dict(response.json())

    def validate(self, token: str) -> None:
        response = self.backend.post("/validate", json={"token": token})
        response.raise_for_status()
        if response.json()["isValid"] is not True:
            raise AssertionError(f"not valid: {response.text}")

    def sign_up(self, app: AuthsignalSync, user: str) -> None:
        tracked = self.track(user, "signUp", scope="add:authenticators")
        signed_up = app.passkey.sign_up(tracked["token"], username=user)
        if signed_up.data is None or not signed_up.data.token:
            raise AssertionError(f"sign-up: {signed_up.error_code} {signed_up.error}")
        self.validate(signed_up.data.token)

    def sign_in(self, app: AuthsignalSync) -> None:
        signed_in = app.passkey.sign_in(action="signIn")
        if signed_in.data is None or not signed_in.data.token:
            raise AssertionError(f"sign-in: {signed_in.error_code} {signed_in.error}")
        self.validate(signed_in.data.token)

    def push(self, app: AuthsignalSync, user: str) -> None:
        enrol = self.track(user, "enrolPush", scope="add:authenticators")
        added = app.push.add_credential(enrol["token"])
        if not added.ok:
            raise AssertionError(f"push enrol: {added.error_code} {added.error}")
        tracked = self.track(user, "approvePayment", custom={"amount": 10})
        waiting = app.push.get_challenge(wait=10)
        if waiting.data is None:
            raise AssertionError(f"no push challenge: {waiting.error_code} {waiting.error}")
        # Number matching: the user types the number the requesting screen shows.
        decided = app.push.update_challenge(
            waiting.data.challenge_id, approved=True, verification_code=tracked["verificationCode"]
        )
        if decided.data is not True:
            raise AssertionError(f"approval: {decided.error_code} {decided.error}")
        self.validate(tracked["token"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database-url")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="passgate-soak-"))
    database_url = options.database_url or f"sqlite:///{scratch}/soak.db"
    # Every command shares one master key file, in the scratch folder. All clients of a soak
    # come from one address, like users behind one proxy: no per-address limit.
    environment = {
        **os.environ,
        "PASSGATE_DATA_DIR": str(scratch / "data"),
        "PASSGATE_CLIENT_RATE_LIMIT_PER_IP": "0",
    }
    passgate("db", "upgrade", "--database-url", database_url, env=environment)
    tenant = json.loads(
        passgate(
            "tenant",
            "create",
            "--name",
            "soak",
            "--rp-id",
            "localhost",
            "--database-url",
            database_url,
            "--json",
            env=environment,
        )
    )
    port = free_port()
    server = subprocess.Popen(
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    api_url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(400):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health").raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        workers = [Worker(n, api_url, tenant, scratch) for n in range(options.workers)]
        workers[0].round(-1)  # warm up every code path once before the first reading
        memory = [rss_mib(server.pid)]
        CountingTransport.counts.clear()
        started = time.monotonic()
        deadline = started + options.minutes * 60

        def run(worker: Worker) -> None:
            index = 0
            while time.monotonic() < deadline:
                worker.round(index)
                index += 1

        threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            time.sleep(min(60, max(0.5, deadline - time.monotonic())))
            if server.poll() is None:
                memory.append(rss_mib(server.pid))
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    flows: Counter[str] = Counter()
    for worker in workers:
        flows.update(worker.flows)
    counts = CountingTransport.counts
    backend = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(f"soak: {backend}, {options.workers} workers, {elapsed / 60:.1f} min")
    print(f"  requests        {counts['requests']:>8} ({counts['requests'] / elapsed:.1f}/s)")
    for outcome in ("2xx", "4xx", "5xx", "transport error"):
        print(f"  {outcome:<15} {counts[outcome]:>8}")
    for name, count in sorted(flows.items()):
        print(f"  {name:<22} {count:>8}")
    print(f"  server RSS      {memory[0]:.0f} MiB at start, {memory[-1]:.0f} MiB at end")
    print("  RSS each minute " + ", ".join(f"{m:.0f}" for m in memory))
    for worker in workers:
        for failure in worker.failures:
            print(failure)


if __name__ == "__main__":
    main()
