"""Runs a command under the run-time restrictions a systemd unit's hardening options put on a
process, as far as a process can put them on itself without systemd: NoNewPrivileges=,
MemoryDenyWriteExecute= and SystemCallFilter= (with SystemCallErrorNumber=), read from the
unit file and applied with libseccomp the way systemd applies them. Then it execs the command.

    python -P tests/deploy/systemd_sandbox.py UNIT_FILE -- COMMAND [ARGS...]

The system call groups (@system-service, ...) are expanded by `systemd-analyze
syscall-filter`, so the lists are the installed systemd's. Like systemd, the filters cover the
native architecture; what the unit forbids fails with the unit's errno (EPERM)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import subprocess
import sys
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
PR_SET_NO_NEW_PRIVS = 38


class ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def unit_options(path: Path) -> dict[str, list[str]]:
    """The [Service] section's options, each with every value given, in order."""
    options: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            name, value = line.split("=", 1)
            options.setdefault(name.strip(), []).append(value.strip())
    return options


@functools.cache
def expand(name: str) -> frozenset[str]:
    """A system call, or every system call of a @group (nested groups expanded)."""
    if not name.startswith("@"):
        return frozenset([name])
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout
    calls: set[str] = set()
    for line in listing.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            calls |= expand(entry)
    return frozenset(calls)


def allowed_calls(filters: list[str]) -> set[str] | None:
    """systemd's reading of SystemCallFilter= lines: the first line without ~ makes an
    allow list, which later ~ lines take from. None: no allow list."""
    allowed: set[str] | None = None
    for value in filters:
        denied = value.startswith("~")
        names = value.removeprefix("~").split()
        calls = set().union(*(expand(name) for name in names)) if names else set()
        if not denied:
            allowed = calls if allowed is None else allowed | calls
        elif allowed is not None:
            allowed -= calls
    return allowed


class Seccomp:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(ArgCmp),
        ]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]

    def filter(self, default: int) -> int:
        context = self.lib.seccomp_init(default)
        assert context, "seccomp_init failed"
        return int(context)

    def rule(self, context: int, action: int, call: str, *conditions: ArgCmp) -> None:
        number = self.lib.seccomp_syscall_resolve_name(call.encode())
        if number < 0:  # not a system call of this architecture
            return
        array = (ArgCmp * len(conditions))(*conditions) if conditions else None
        result = self.lib.seccomp_rule_add_array(context, action, number, len(conditions), array)
        assert result == 0, f"seccomp_rule_add {call}: {result}"

    def load(self, context: int) -> None:
        assert self.lib.seccomp_load(context) == 0, "seccomp_load failed"


def apply(unit: Path) -> None:
    options = unit_options(unit)
    error_name = (options.get("SystemCallErrorNumber") or ["EPERM"])[-1]
    refuse = 0x00050000 | getattr(errno, error_name)
    seccomp = Seccomp()
    if (options.get("NoNewPrivileges") or ["no"])[-1] == "yes":
        assert ctypes.CDLL(None).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    if (options.get("MemoryDenyWriteExecute") or ["no"])[-1] == "yes":
        # systemd's rules: no mapping both writable and executable, no mapping made
        # executable later, no executable shared memory.
        mdwe = seccomp.filter(SCMP_ACT_ALLOW)
        both = PROT_WRITE | PROT_EXEC
        seccomp.rule(mdwe, refuse, "mmap", ArgCmp(2, SCMP_CMP_MASKED_EQ, both, both))
        for call in ("mprotect", "pkey_mprotect"):
            seccomp.rule(mdwe, refuse, call, ArgCmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        seccomp.rule(mdwe, refuse, "shmat", ArgCmp(2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
        seccomp.load(mdwe)
    allowed = allowed_calls(options.get("SystemCallFilter", []))
    if allowed is not None:
        allow_list = seccomp.filter(refuse)
        for call in sorted(allowed):
            seccomp.rule(allow_list, SCMP_ACT_ALLOW, call)
        seccomp.load(allow_list)


def main(argv: list[str]) -> None:
    unit, separator, *command = argv
    assert separator == "--" and command, __doc__
    apply(Path(unit))
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
