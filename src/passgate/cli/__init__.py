"""The `passgate` command. `passgate device ...` works with the SDK alone; the server commands
need the server extra: `pip install "passgate[server]"`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the Typer app, turning every usage error into one line on stderr."""
    import typer

    try:
        from passgate.cli._app import app
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        from passgate.cli._device import device_app

        app = typer.Typer(no_args_is_help=True, add_completion=False)
        app.add_typer(device_app, name="device")
        print(
            f"passgate: only `passgate device` is available; the server commands need the "
            f'server extra ({exc.name} is missing): pip install "passgate[server]"',
            file=sys.stderr,
        )
    try:
        # Without standalone mode, click returns a typer.Exit's code instead of raising it.
        result = app(args=argv, prog_name="passgate", standalone_mode=False)
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
