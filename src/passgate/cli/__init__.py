"""The `passgate` command. The SDK installs alone (`pip install passgate`); the command needs an
extra: `passgate[device]` for `passgate device ...`, `passgate[server]` for everything else.
Without the one it needs, the command says which to install in one line and exits 1."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

DEVICE_EXTRA = "pip install 'passgate[device]'"
SERVER_EXTRA = "pip install 'passgate[server]'"


def _missing(exc: ModuleNotFoundError) -> str:
    """The missing third-party module's name; our own modules missing is a bug, raised as is."""
    name = exc.name or ""
    if not name or name.partition(".")[0] == "passgate":
        raise exc
    return name


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the Typer app, turning every usage error into one line on stderr."""
    args = sys.argv[1:] if argv is None else list(argv)
    device_only = bool(args) and args[0] == "device"
    try:
        import typer

        from passgate.cli._device import device_app
    except ModuleNotFoundError as exc:
        missing = _missing(exc)
        if device_only:
            hint = f"`passgate device` needs the device extra ({missing} is missing): "
            hint += DEVICE_EXTRA
        elif args and not args[0].startswith("-"):
            hint = f"`passgate {args[0]}` needs the server extra ({missing} is missing): "
            hint += SERVER_EXTRA
        else:
            hint = (
                f"the passgate command needs an extra ({missing} is missing): {SERVER_EXTRA} "
                f"for the server, {DEVICE_EXTRA} for `passgate device`"
            )
        print(f"passgate: {hint}", file=sys.stderr)
        return 1

    app: typer.Typer
    try:
        from passgate.cli._app import app
    except ModuleNotFoundError as exc:
        missing = _missing(exc)
        if not device_only:
            print(
                f"passgate: the server commands need the server extra ({missing} is missing): "
                f"{SERVER_EXTRA} (`passgate device` works without it)",
                file=sys.stderr,
            )
            return 1
        app = typer.Typer(no_args_is_help=True, add_completion=False)
        app.add_typer(device_app, name="device")
    try:
        # Without standalone mode, click returns a typer.Exit's code instead of raising it.
        result = app(args=args, prog_name="passgate", standalone_mode=False)
    except typer.Abort:
        print("passgate: aborted", file=sys.stderr)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.exceptions.TyperException as exc:
        print(f"passgate: error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
