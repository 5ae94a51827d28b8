"""Start several `passgate serve` processes from one import: `python -m tests.deploy.launch
SPEC.json`, where the spec lists `{"arguments": [...], "env": {...}, "log": path}` per process.

A cold `passgate serve` spends seconds importing before it listens, several times that on a
busy machine; this imports Passgate once (as tests/server_launcher.py does) and forks one child
per process, each then exactly `passgate serve` with its own arguments, environment and log.
SIGTERM to the launcher is passed on to its children (by pid); it exits once they have."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from passgate.cli import main as passgate_main
from tests.server_launcher import PRELOADED

STOP_SECONDS = 20


def child(arguments: list[str], env: dict[str, str], log: str) -> None:
    code = 1
    try:
        os.environ.update(env)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code = passgate_main(["serve", *arguments])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    for module in PRELOADED:
        importlib.import_module(module)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    children = []
    for process in spec:
        pid = os.fork()
        if pid == 0:
            child(process["arguments"], process["env"], process["log"])
        children.append(pid)
    print(" ".join(map(str, children)), flush=True)
    while not stopping and all(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in children):
        time.sleep(0.05)
    living = [pid for pid in children if _alive(pid)]
    for pid in living:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while living and time.monotonic() < deadline:
        living = [pid for pid in living if os.waitpid(pid, os.WNOHANG) == (0, 0)]
        time.sleep(0.02)
    for pid in living:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _alive(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


if __name__ == "__main__":
    main(sys.argv[1])
