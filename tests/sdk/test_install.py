"""`pip install passgate` is the SDK and the device CLI, without the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_sdk_installs_and_imports_without_the_server(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import sys, passgate; "
            "client = passgate.AuthsignalSync('tenant', 'http://127.0.0.1:9/v1'); client.close(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'fastapi', 'sqlalchemy', 'typer', 'pydantic', 'uvicorn', 'webauthn'}))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"

    cli = subprocess.run(
        [str(venv / "bin" / "passgate"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0
    assert "device" in cli.stdout
    assert 'pip install "passgate[server]"' in cli.stderr
    serve = subprocess.run(
        [str(venv / "bin" / "passgate"), "serve"], capture_output=True, text=True, timeout=60
    )
    assert serve.returncode != 0
    assert "Traceback" not in serve.stderr
