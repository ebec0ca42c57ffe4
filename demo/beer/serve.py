"""``python -m demo.beer``: load the data set if it is missing, then serve settee and the demo.

One process, one event loop: settee serves its embedded store on its port (8888 by default,
with its WebSocket changes feed), and the demo's pages on theirs (8080). The demo reads and
writes through settee, over HTTP, as its own user (``load.DEMO_USER``), a member of the
demo's database and nothing else, whose password is made anew at each start and kept only in
this process's memory. settee's ``cors_origins`` gains the demo's own origins, so that its
pages may open settee's WebSocket (with a token, see ``pages.LiveTokenHandler``).

Flags other than the demo's own are settee's (``settee serve --help``), and so are its
settings from ``config/`` and the environment: ``--data-dir``, ``--port``, ``--admin``...
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import secrets
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from service import serving
from service import settings as settings_module
from service.couch import Couch, blocking
from service.store.users import Users

from . import DATABASE, data, load
from .app import make_app
from .base import Live

log = logging.getLogger("demo.beer")
PROG = "python -m demo.beer"
ANY_ADDRESS = ("", "0.0.0.0", "::")


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog=PROG,
        description="The beer-sample demo on settee's embedded store, live in the browser.",
        epilog="Any other flag is settee's: see 'settee serve --help'.",
    )
    cli.add_argument("--demo-port", type=int, default=8080, help="the demo's port (8080)")
    cli.add_argument("--breweries", type=int, default=data.BREWERIES, metavar="N")
    cli.add_argument("--beers", type=int, default=data.BEERS, metavar="N")
    return cli


def origins(address: str, port: int) -> tuple[str, ...]:
    """The origins of the demo's pages, as a browser on this machine names them."""
    hosts = {"127.0.0.1", "localhost"} | ({address} if address not in ANY_ADDRESS else set())
    return tuple(sorted(f"http://{host}:{port}" for host in hosts))


def port_of(sockets: list[socket.socket]) -> int:
    return int(sockets[0].getsockname()[1])


def prepare(data_dir: Path, breweries: int, beers: int) -> str:
    """Load the data set unless a load has completed, and give the demo's user a fresh
    password: returned, for this process alone."""
    password = secrets.token_urlsafe(24)
    with blocking.Couch(f"embedded:{data_dir}") as couch:  # in-process: the store's admin
        db = blocking.Database(DATABASE, couch=couch)
        if not load.is_loaded(db):
            print(f"{PROG}: loading {DATABASE} into {data_dir}", file=sys.stderr)
            load.load(db, breweries, beers, progress=sys.stderr.isatty(), say=log.info)
        load.set_password(couch, password)
    return password


async def serve(
    settings: settings_module.Settings,
    settee_sockets: list[socket.socket],
    demo_sockets: list[socket.socket],
    password: str,
) -> None:
    """Serve the demo beside settee until settee stops (SIGTERM or SIGINT)."""
    host = "127.0.0.1" if settings.address in ANY_ADDRESS else settings.address
    settee_port = port_of(settee_sockets)
    settee = f"http://{host}:{settee_port}"
    async with Couch(settee, auth=(load.DEMO_USER, password)) as couch:
        server = HTTPServer(make_app(couch[DATABASE], Live(settee_port, DATABASE)))
        server.add_sockets(demo_sockets)
        print(
            f"{PROG}: the demo is on http://{host}:{port_of(demo_sockets)}/ (settee: {settee})",
            file=sys.stderr,
        )
        try:
            await serving.serve(settings, settee_sockets)
        finally:
            server.stop()
            await server.close_all_connections()


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = parser().parse_known_args(argv)
    try:
        settings = settings_module.load(rest, os.environ, prog=PROG)
        if not settings.embedded_dir:
            raise ValueError("couch_url: the demo serves settee's embedded store; unset it")
        new_loop = serving.loop_factory(settings.event_loop)
        settee_sockets = bind_sockets(settings.port, settings.address)
        demo_sockets = bind_sockets(args.demo_port, settings.address)
    except (ValueError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    demo_origins = origins(settings.address, port_of(demo_sockets))
    settings = dataclasses.replace(
        settings, cors_origins=(*settings.cors_origins, *demo_origins), processes=1
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    data_dir = Path(settings.embedded_dir or settings.data_dir)
    made = Users(data_dir).ensure_admin(settings.admin_pair)
    if made:  # as settee does: on the terminal, once, never in a log line
        print(
            f"{PROG}: made settee's server admin {made[0]!r} with password {made[1]!r}",
            file=sys.stderr,
        )
    password = prepare(data_dir, args.breweries, args.beers)
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(serve(settings, settee_sockets, demo_sockets, password))
    return 0
