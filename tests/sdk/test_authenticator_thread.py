"""The async SDK runs the authenticator in a worker thread: while a security key waits for a
touch, the app's event loop keeps running its other tasks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from authsignal.client import AuthsignalClient

from passgate import Authsignal, AuthsignalSync
from passgate.authenticators import SoftwareAuthenticator
from tests.live_server import LiveServer, Tenant

TOUCH_SECONDS = 0.5


class Ticker:
    """A task on the event loop that counts, every 10 ms, while it is given the chance."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.count += 1

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class SlowAuthenticator(SoftwareAuthenticator):
    """A real software authenticator that first waits as a USB key waits for its touch, and
    records how far the ticker got meanwhile."""

    def __init__(self, path: Path, ticker: Ticker) -> None:
        super().__init__(path)
        self.ticker = ticker
        self.ticks_while_working: list[int] = []

    def _touch(self) -> None:
        before = self.ticker.count
        time.sleep(TOUCH_SECONDS)
        self.ticks_while_working.append(self.ticker.count - before)

    def create(self, options: Mapping[str, Any]) -> dict[str, Any]:
        self._touch()
        return super().create(options)

    def get(self, options: Mapping[str, Any]) -> dict[str, Any]:
        self._touch()
        return super().get(options)


async def test_the_event_loop_keeps_running_while_the_authenticator_works(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    token = authsignal.track("dora", "signUp", {"username": "dora"})["token"]
    async with Ticker() as ticker:
        device = SlowAuthenticator(tmp_path / "passkeys.bin", ticker)
        async with Authsignal(tenant.id, server.api_url, passkey_authenticator=device) as client:
            signed_up = await client.passkey.sign_up(token, "dora")
            assert signed_up.error is None, signed_up
            signed_in = await client.passkey.sign_in()
            assert signed_in.data is not None and signed_in.data.user_id == "dora", signed_in
    # Blocking the loop would leave the ticker at a standstill (0) for the whole touch; a free
    # loop ticks about 50 times in 0.5 s. 10 leaves room for a busy machine.
    assert len(device.ticks_while_working) == 2
    assert min(device.ticks_while_working) >= 10, device.ticks_while_working


async def test_concurrent_ceremonies_on_one_authenticator_both_land_in_its_file(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    """Two sign-ups at once run the same authenticator in two threads: it takes one command
    at a time, so neither credential is lost from the file."""
    path = tmp_path / "shared.bin"
    device = SoftwareAuthenticator(path, "correct horse")
    tokens = [authsignal.track(user, "signUp")["token"] for user in ("erin", "frank")]
    async with Authsignal(tenant.id, server.api_url, passkey_authenticator=device) as client:
        results = await asyncio.gather(*(client.passkey.sign_up(token) for token in tokens))
    assert [result.error for result in results] == [None, None]
    reopened = SoftwareAuthenticator(path, "correct horse")
    assert len(reopened.credential_ids()) == 2
    with AuthsignalSync(tenant.id, server.api_url, passkey_authenticator=reopened) as sync:
        signed_in = sync.passkey.sign_in()
    assert signed_in.data is not None and signed_in.data.is_verified, signed_in
