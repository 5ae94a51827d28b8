"""Screenshots of the hosted pages and the console, taken by the browser tests.

They go to a temporary folder on every run; with `PASSGATE_UPDATE_SCREENSHOTS=1` they are
also copied into docs/img/, where docs/web.md shows them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
FOLDER = Path(tempfile.gettempdir()) / "passgate-screenshots"


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save `page` as `<name>.png`; returns where it went."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    path = FOLDER / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("PASSGATE_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / path.name)
    return path
