"""Generate the SDK's blocking twin: src/passgate/sdk/_async/*.py -> src/passgate/sdk/_sync/.

python scripts/generate_sync.py          # rewrite _sync/
python scripts/generate_sync.py --check  # exit 1 if _sync/ is not what _async/ generates
"""

from __future__ import annotations

import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

import unasync

SDK = Path(__file__).resolve().parent.parent / "src" / "passgate" / "sdk"

REPLACEMENTS = {
    "Authsignal": "AuthsignalSync",
    "AsyncClient": "Client",
    "AsyncBaseTransport": "BaseTransport",
    "aclose": "close",
}

# Blocking work the async SDK runs in a worker thread (an authenticator waiting for a touch):
# `await asyncio.to_thread(f, *args)` becomes `f(*args)`; `f` must be a plain (dotted) name.
TO_THREAD = re.compile(r"await asyncio\.to_thread\(([A-Za-z_][\w.]*)(?:, )?")
# Waiting between polls: `await asyncio.sleep(s)` becomes `time.sleep(s)` (the module imports
# `time` itself).
SLEEP = "await asyncio.sleep("


def _call_directly(text: str, name: str) -> str:
    text = TO_THREAD.sub(r"\1(", text)
    if "to_thread(" in text:
        raise SystemExit(f"{name}: write `await asyncio.to_thread(name, *args)` for the sync rule")
    if SLEEP in text:
        if "\nimport time\n" not in text:
            raise SystemExit(f"{name}: import time for the blocking twin's time.sleep")
        text = text.replace(SLEEP, "time.sleep(")
    if "asyncio." not in text:
        text = text.replace("import asyncio\n", "", 1)
    return text


def generate(into: Path) -> None:
    source = into / "_async"
    shutil.copytree(SDK / "_async", source, ignore=shutil.ignore_patterns("__pycache__"))
    for path in source.glob("*.py"):
        path.write_text(_call_directly(path.read_text(), path.name))
    files = [str(path) for path in sorted(source.glob("*.py"))]
    rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
    unasync.unasync_files(files, rules=[rule])
    for path in (into / "_sync").glob("*.py"):
        text = path.read_text().replace("passgate.sdk._async.", "passgate.sdk._sync.")
        path.write_text(text)


def main(check: bool) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        generated = Path(scratch) / "_sync"
        names = sorted(path.name for path in generated.glob("*.py"))
        if check:
            committed = sorted(path.name for path in (SDK / "_sync").glob("*.py"))
            _, mismatch, errors = filecmp.cmpfiles(generated, SDK / "_sync", names, shallow=False)
            if committed != names or mismatch or errors:
                stale = mismatch or errors or "files differ"
                print(f"sdk/_sync is stale ({stale}); run scripts/generate_sync.py")
                return 1
            return 0
        shutil.rmtree(SDK / "_sync", ignore_errors=True)
        shutil.copytree(generated, SDK / "_sync")
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
