"""Run Python as if only some of passgate's extras were installed: a meta-path finder refuses
every installed top-level module that the chosen extras' dependencies (followed recursively,
markers evaluated) do not bring in, the way a lean `pip install` would not have it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"

_BLOCKER = """
import importlib.abc, sys
BLOCKED = frozenset({blocked!r})
for _name in [n for n in sys.modules if n.partition(".")[0] in BLOCKED]:
    del sys.modules[_name]


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def _passgate_requires() -> list[str]:
    """passgate's requirements as pyproject.toml says (what a fresh install's metadata says;
    the editable install's metadata is as old as its last `pip install -e`)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        lines += [f'{line}; extra == "{extra}"' for line in requirements]
    return lines


def _requirements(distribution: str, extras: frozenset[str]) -> list[Requirement]:
    """`distribution`'s requirements that apply with `extras` on this interpreter."""
    wanted = []
    if canonicalize_name(distribution) == "passgate":
        lines = _passgate_requires()
    else:
        lines = metadata.requires(distribution) or []
    for line in lines:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in (extras | {""})):
            wanted.append(requirement)
    return wanted


@cache
def installed_with(extras: frozenset[str]) -> frozenset[str]:
    """The distributions `pip install passgate[extras]` brings in (names canonicalised)."""
    found: set[str] = {"passgate"}
    pending = [(req.name, frozenset(req.extras)) for req in _requirements("passgate", extras)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, wanted_extras = pending.pop()
        if (canonical := canonicalize_name(name), wanted_extras) in seen:
            continue
        seen.add((canonical, wanted_extras))
        if canonical == "passgate":
            # passgate[test] names passgate[server,device]: follow those extras too.
            pending.extend(
                (req.name, frozenset(req.extras))
                for req in _requirements("passgate", wanted_extras)
            )
            continue
        found.add(canonical)
        pending.extend(
            (req.name, frozenset(req.extras)) for req in _requirements(name, wanted_extras)
        )
    return frozenset(found)


def blocked_modules(extras: frozenset[str]) -> frozenset[str]:
    """Installed top-level modules that no distribution of `installed_with(extras)` provides."""
    allowed = installed_with(extras)
    blocked = {
        module
        for module, distributions in metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in allowed for d in distributions)
    }
    return frozenset(blocked - set(sys.stdlib_module_names) - {"passgate"})


def run_lean(
    code: str, extras: frozenset[str] = frozenset(), *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter where only passgate[extras]'s modules import."""
    blocker = _BLOCKER.format(blocked=sorted(blocked_modules(extras)))
    return subprocess.run(
        [sys.executable, "-c", blocker + code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
