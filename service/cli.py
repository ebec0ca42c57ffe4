"""The ``settee`` command: ``settee serve [flags]`` serves (as ``python run.py`` does).

``python -m service`` is the same command. ``settee --help`` lists the commands, ``settee
serve --help`` the settings. The flags after ``serve`` go to ``service.serving`` untouched, so
that its own parser names them in help and errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="settee",
        description="settee: an asynchronous gateway for Apache CouchDB, with a WebSocket "
        "changes feed. With no CouchDB configured it serves its embedded store.",
        epilog="'settee serve --help' lists every setting.",
    )
    cli.add_argument("--version", action="version", version=f"settee {version('settee')}")
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="serve the HTTP and WebSocket API (as python run.py does)",
        add_help=False,
    )
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: the process's arguments); the exit status."""
    _, rest = parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    from .serving import main as serve  # the server's imports only when serving

    return serve(rest, prog="settee serve")
