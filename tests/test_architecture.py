"""The layers' import rules (docs/architecture.md), read from the source with `ast`.

- Routes (the Server API, the Client API, the pages) do not import the store: they call services.
- Services import no web framework (FastAPI, Starlette) and no wire schemas: they take plain
  values and dataclasses, so the rules can be called from routes, the CLI and jobs alike.
- The store imports no service: rules live above it.
- The request path does not use the ORM unit of work: no `AsyncSession`, no ORM classes.
- The device CLI uses only the public `passgate` surface, as an app would."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "passgate"
SERVER = SRC / "server"

ROUTES = [
    *sorted((SERVER / "server_api").glob("*.py")),
    *sorted((SERVER / "client_api").glob("*.py")),
    *sorted((SERVER / "pages").rglob("*.py")),
    SERVER / "well_known.py",
    SERVER / "views.py",
]
SERVICES = sorted((SERVER / "services").rglob("*.py"))
STORE = sorted(p for p in (SERVER / "store").glob("*.py"))
WIRE_SCHEMAS = ("passgate.server.schemas", "passgate.server.client_api")
WEB_FRAMEWORKS = ("fastapi", "starlette")
# The unit of work a request runs on; the ORM's own session never appears on the request path.
ORM = ("sqlalchemy.orm", "sqlalchemy.ext.asyncio.AsyncSession")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module (and `module.name`) a file imports, anywhere in it, with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        for line, name in imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(SRC.parent)}:{line} imports {name}")
    return sorted(set(found))


def test_routes_do_not_import_the_store() -> None:
    assert offending(ROUTES, ("passgate.server.store",)) == []


def test_services_import_no_web_framework_and_no_wire_schemas() -> None:
    assert offending(SERVICES, (*WEB_FRAMEWORKS, *WIRE_SCHEMAS)) == []


def test_the_store_imports_no_service() -> None:
    assert offending(STORE, ("passgate.server.services",)) == []


@pytest.mark.parametrize("layer", ["routes", "services", "store"])
def test_no_orm_unit_of_work(layer: str) -> None:
    paths = {"routes": ROUTES, "services": SERVICES, "store": STORE}[layer]
    # tables.py declares the schema with the ORM's declarative classes (migrations and the
    # metadata come from it); the store reads them as Core tables.
    paths = [p for p in paths if p.name != "tables.py"]
    assert offending(paths, ORM) == []


def test_the_device_cli_uses_only_the_public_surface() -> None:
    public = {"passgate", "passgate.authenticators", "passgate.cli"}
    found = [
        f"cli/_device.py:{line} imports {name}"
        for line, name in imports(SRC / "cli" / "_device.py")
        if name.startswith("passgate")
        and name.rpartition(".")[0] not in public
        and name not in public
    ]
    assert found == []


def test_the_checks_see_imports() -> None:
    """The rules above would pass on files they cannot read: make sure they read these."""
    assert len(ROUTES) > 10 and len(SERVICES) > 20 and len(STORE) > 8
    assert any(name == "fastapi" or name.startswith("fastapi.") for _, name in imports(ROUTES[0]))
