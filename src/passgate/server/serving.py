"""Running the app under uvicorn as `passgate serve` does: one process, or N worker processes
on one listening socket, each stopping gracefully.

Graceful stop (SIGTERM or SIGINT): the process stops accepting connections, tells the push hub
to answer its waiting long-polls now ("nothing pending" unless a challenge just arrived: the
device polls again, at another process), lets requests in flight finish (at most
`shutdown_timeout_seconds`), then runs the app's shutdown, and exits 0.

Workers: the parent binds the socket, starts N processes (spawned, not forked: each builds its
own app, connections and event loop from `PASSGATE_*` in the environment, see `worker_app`),
restarts one that dies, and on SIGTERM/SIGINT stops them all and waits for them. With
`PROMETHEUS_MULTIPROC_DIR` set, every process writes its metrics there and /metrics in any of
them reports the sum (observability.py); a worker that exits is marked dead there."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI

log = structlog.get_logger("passgate.serve")

# The uvicorn factory string workers load: their settings come from the environment.
WORKER_APP = "passgate.server.serving:worker_app"


def worker_app() -> FastAPI:
    """A worker process's app (uvicorn `factory=True`): settings from `PASSGATE_*`, which the
    parent set before it started the workers, and logging as the parent's."""
    from passgate.server.app import create_app
    from passgate.server.observability import configure_logging
    from passgate.server.settings import Settings

    settings = Settings()
    configure_logging(json_lines=settings.log_json)
    return create_app(settings)


def _passgate_app(app: Any) -> FastAPI | None:
    """The FastAPI app under uvicorn's wrappers (proxy headers and the like)."""
    for _ in range(10):
        if isinstance(app, FastAPI):
            return app
        app = getattr(app, "app", None)
    return None


class GracefulServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = _passgate_app(self.config.loaded_app)
        hub = getattr(app.state, "push_hub", None) if app is not None else None
        if hub is not None:
            hub.close_waiters()
        await super().shutdown(sockets)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        with self.capture_signals():
            await self._serve(sockets)
            # uvicorn raises the signal it stopped on again once its handlers are restored,
            # which would end the process "killed by SIGTERM": a graceful stop is a normal
            # exit (status 0), so forget it.
            self._captured_signals.clear()


def _run_worker(config: uvicorn.Config, sockets: list[socket.socket]) -> None:
    GracefulServer(config).run(sockets=sockets)


def _start_worker(config: uvicorn.Config, sock: socket.socket) -> SpawnProcess:
    from uvicorn._subprocess import get_subprocess

    process = get_subprocess(config, functools.partial(_run_worker, config), [sock])
    process.start()
    return process


def supervise(
    config: uvicorn.Config, workers: int, on_exit: Callable[[int], None] = lambda _pid: None
) -> int:
    """Run `workers` processes on one socket until SIGTERM or SIGINT; returns the exit status.
    `on_exit(pid)` runs for every worker that has exited (metrics mark it dead)."""
    sock = config.bind_socket()
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes: list[SpawnProcess] = []
    status = 0
    try:
        processes = [_start_worker(config, sock) for _ in range(workers)]
        log.info("workers started", workers=workers, pids=[p.pid for p in processes])
        while not stop.wait(0.5):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                assert process.pid is not None
                on_exit(process.pid)
                if process.exitcode == 3:  # uvicorn's STARTUP_FAILURE: restarts would fail too
                    log.error("a worker could not start; stopping", pid=process.pid)
                    stop.set()
                    status = 1
                    break
                log.warning("worker died; starting another", pid=process.pid, code=process.exitcode)
                processes[index] = _start_worker(config, sock)
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + (config.timeout_graceful_shutdown or 30) + 10
        for process in processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
            if process.pid is not None:
                on_exit(process.pid)
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
