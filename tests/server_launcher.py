"""Starts `passgate serve` processes quickly, for tests that kill and restart a server many times.

A cold `python -m passgate.cli serve` spends 2-5 s importing before it listens. This launcher
imports Passgate once and then forks: each child runs `passgate serve` as the command line does
(migrations, settings, uvicorn), as a separate process with its own connections, and is gone for
good when killed. Run it as a script; it reads one command a line on stdin and answers on stdout:

    start <serve arguments...>   fork a server; answers its pid
    kill                          SIGKILL the server and reap it; answers "killed"
    stop                          SIGTERM the server and reap it; answers "stopped"

End of input stops the server (if any) and exits. A child's output goes to the file named by
the launcher's first argument. Only the launcher signals its child, by pid. Run it with
`python -P` (the script's directory, tests/, must not shadow installed modules)."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time

from passgate.cli import main as passgate_main

# What `passgate serve` imports lazily (the CLI, the app, uvicorn's loop and protocols),
# imported once before any fork: a restart then takes well under a second.
PRELOADED = (
    "passgate.cli._app",
    "passgate.server.app",
    "passgate.server.observability",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
)
# A stopped server that has not exited by then is killed.
STOP_SECONDS = 20


def serve(arguments: list[str], log: str) -> None:
    """In the child: become `passgate serve`, with output to `log`; never return."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        code = passgate_main(["serve", *arguments])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def end(pid: int, signum: int) -> None:
    """Signal the child and reap it (SIGKILL if a SIGTERM has not ended it in time)."""
    os.kill(pid, signum)
    deadline = time.monotonic() + STOP_SECONDS
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.01)


def run(log: str) -> None:
    for module in PRELOADED:
        importlib.import_module(module)
    child: int | None = None
    for line in sys.stdin:
        command, *arguments = line.split()
        if command == "start":
            child = os.fork()
            if child == 0:
                serve(arguments, log)
            print(child, flush=True)
        elif command in ("kill", "stop") and child is not None:
            end(child, signal.SIGKILL if command == "kill" else signal.SIGTERM)
            child = None
            print("killed" if command == "kill" else "stopped", flush=True)
        else:
            print(f"error: cannot {command} now", flush=True)
    if child is not None:
        end(child, signal.SIGTERM)


if __name__ == "__main__":
    run(sys.argv[1])
