"""Two worker processes' worth of servers on one database: with Redis, a challenge created
through one wakes a long-poll waiting in the other at once (not at the 30 s recheck)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore
from passgate.server.services.push.wakeups import CHANNEL
from tests.conftest import IN_CI
from tests.live_server import LiveServer

REDIS_URL = os.environ.get("PASSGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is required under CI: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
def workers(database_url: str, redis_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    first, second = (
        LiveServer(database_url, redis_url=redis_url, push_recheck_seconds=30).start()
        for _ in range(2)
    )
    yield first, second
    first.stop()
    second.stop()


def test_a_challenge_made_by_one_worker_wakes_a_long_poll_in_another(
    workers: tuple[LiveServer, LiveServer], redis_url: str, tmp_path: Path
) -> None:
    first, second = workers
    tenant = first.create_tenant()
    backend = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=second.api_url)
    device = AuthsignalSync(tenant.id, first.api_url, device_keys=DeviceKeyStore(tmp_path / "k"))
    token = backend.track("zoe", "enroll", {"scope": "add:authenticators"})["token"]
    assert device.push.add_credential(token).ok

    seen: list[Any] = []
    waiter = threading.Thread(target=lambda: seen.append(device.push.get_challenge(wait=25)))
    waiter.start()
    time.sleep(0.5)
    with redis.Redis.from_url(redis_url) as client:
        client.publish(CHANNEL, "not a wake-up")  # ignored, and the listener carries on
    started = time.monotonic()
    tracked = backend.track("zoe", "signIn")  # served by the second worker
    waiter.join(timeout=30)
    elapsed = time.monotonic() - started
    device.close()
    backend.session.close()
    assert seen[0].data is not None
    assert seen[0].data.challenge_id == tracked["challenge_id"]
    assert elapsed < 3
