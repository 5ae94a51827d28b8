"""SIGTERM stops `passgate serve` gracefully: a push long-poll waiting in it gets the normal
empty answer ("nothing pending") at once, so the device polls again (at another process),
instead of being cut off; then the process exits 0."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore
from tests.cli.serve_process import ServeProcess


def waiting_long_polls(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("passgate_push_long_polls_waiting "):
            return float(line.split()[1])
    raise AssertionError("no long-poll gauge")


def test_sigterm_answers_a_waiting_long_poll_and_exits_0(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, "--dev").wait_ready()
    try:
        backend = AuthsignalClient(
            api_secret_key=server.printed("Secret key"), api_url=f"{server.url}/v1"
        )
        device = AuthsignalSync(
            server.printed("Dev tenant"),
            f"{server.url}/v1",
            device_keys=DeviceKeyStore(tmp_path / "device.pem"),
        )
        token = backend.track("zoe", "enroll", {"scope": "add:authenticators"})["token"]
        assert device.push.add_credential(token).ok

        answers: list[Any] = []
        waiter = threading.Thread(target=lambda: answers.append(device.push.get_challenge(wait=25)))
        waiter.start()
        deadline = time.monotonic() + 10
        while waiting_long_polls(server.url) < 1:
            assert time.monotonic() < deadline, "the long-poll never started waiting"
            time.sleep(0.1)

        stopping = time.monotonic()
        server.process.send_signal(15)
        waiter.join(timeout=20)
        answered_after = time.monotonic() - stopping
        status = server.process.wait(timeout=60)
    finally:
        server.kill()
    device.close()
    backend.session.close()

    assert answers, "the long-poll got no answer"
    answer = answers[0]
    # The normal "nothing pending" (a 200 without a challenge), not a cut connection.
    assert answer.ok and answer.error is None, answer
    assert answer.data is None
    assert answered_after < 5, answered_after  # not at the end of its 25 s wait
    assert status == 0, server.output()
    assert "timeout graceful shutdown exceeded" not in server.output()
