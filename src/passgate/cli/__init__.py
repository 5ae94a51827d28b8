"""The `passgate` command. Needs the server extra: `pip install "passgate[server]"`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the Typer app, turning every usage error into one line on stderr."""
    try:
        import typer

        from passgate.cli._app import app
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        print(
            f"passgate: the command line needs the server extra ({exc.name} is missing): "
            'pip install "passgate[server]"',
            file=sys.stderr,
        )
        return 2
    try:
        # Without standalone mode, click returns (not raises) the code of a `typer.Exit`.
        code = app(args=argv, prog_name="passgate", standalone_mode=False)
    except typer.Abort:
        print("passgate: aborted", file=sys.stderr)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.exceptions.TyperException as exc:
        print(f"passgate: error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
