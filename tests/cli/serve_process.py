"""`passgate serve` as an operator runs it: a separate process on a loopback port, its output
(stdout and stderr, not a terminal) in a file the test reads."""

from __future__ import annotations

import os
import re
import signal
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


class ServeProcess:
    def __init__(self, workdir: Path, *arguments: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = workdir / f"serve-{self.port}.log"
        environment = {k: v for k, v in os.environ.items() if k != "PASSGATE_DATABASE_URL"}
        environment.update({"COLUMNS": "200", **(env or {})})
        command = [sys.executable, "-m", "passgate.cli", "serve", "--port", str(self.port)]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [*command, *arguments],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    def printed(self, name: str) -> str:
        """A value `--dev` printed (`Secret key`, `Dev tenant`)."""
        match = re.search(rf"^{re.escape(name)}\s+(\S+)", self.output(), re.MULTILINE)
        assert match, self.output()
        return match[1]

    def wait_ready(self, *, workers: int = 1, timeout: float = 180) -> ServeProcess:
        """Until every worker has started and the port answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}:\n{self.output()}")
            if self.output().count("Application startup complete") >= workers:
                try:
                    if httpx.get(f"{self.url}/health/live", timeout=5).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        self.kill()
        raise AssertionError(f"serve did not start:\n{self.output()}")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd or a container runtime stops it; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
