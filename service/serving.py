"""Serve settee: ``settee serve``, ``python -m service serve`` and ``python run.py`` all run
``main`` here, and ``--help`` lists the settings.

It lives in the package, not in ``run.py``, so that an installed settee (``pip install .``)
serves without a checkout. ``main`` owns every lifetime: the CouchDB client, the HTTP server,
and the shutdown that SIGTERM or SIGINT starts (stop accepting, let in-flight requests finish
within the grace period, close what is left, exit 0).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from tornado.netutil import bind_sockets

from service import settings as settings_module
from service.app import make_app, make_couches, make_hub, make_server
from service.inflight import InFlight
from service.kv.reaper import Reaper
from service.metrics import Metrics
from service.processes import serve_in_processes
from service.store.users import Users

log = logging.getLogger("settee")


async def serve(settings: settings_module.Settings, sockets: list[socket.socket]) -> None:
    """Serve on ``sockets`` until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    metrics, in_flight = Metrics(), InFlight()
    couch, own_couch = make_couches(settings)
    async with couch, own_couch:
        hub = make_hub(settings, own_couch)
        metrics.watch_hub(hub)
        reaper = Reaper(own_couch, settings.kv_reap_interval, settings.databases)
        if settings.kv_reap_interval:
            reaper.start()
        app = make_app(settings, couch, metrics, in_flight, hub, own_couch)
        server = make_server(app, settings)
        server.add_sockets(sockets)
        log.info(
            "settee %d serving %s on %s (%s event loop)",
            *(os.getpid(), couch.url, describe(sockets), type(loop).__module__.split(".")[0]),
        )
        await stop.wait()
        log.info("stopping: %d requests in flight", in_flight.count)
        server.stop()
        hub.close()
        await hub.wait_closed()
        await reaper.close()
        if not await in_flight.drained(settings.shutdown_grace):
            log.warning("grace period over: %d requests cut short", in_flight.count)
        await server.close_all_connections()
    log.info("stopped")


def describe(sockets: list[socket.socket]) -> str:
    return ", ".join("{}:{}".format(*sock.getsockname()[:2]) for sock in sockets)


YOUNG_GENERATION_THRESHOLD = 10_000
"""Allocations between two young collections (CPython 3.11 to 3.13's default: 700)."""


def tune_garbage_collector() -> None:
    """Spare the cyclic garbage collector work that finds nothing to free.

    What is loaded before serving (modules, settings) lives as long as the process: frozen, no
    collection walks it again, nor writes to its pages in forked server processes. Under
    load, the objects of the requests in flight alone pass CPython's default young threshold
    (700) every few dozen requests, and those collections free next to nothing: measured over
    33,000 proxied GETs at 64 connections, 1,055 collections took 0.38 s (11 µs a request);
    tuned, 3 took 1.5 ms and the process's memory stayed the same.
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``choice`` names (None: asyncio's own); ValueError if it is missing."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError("event_loop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def main(argv: list[str], prog: str = "settee serve") -> int:
    """Serve with the settings of ``argv`` and the environment; the exit status.

    ``prog`` is the command as the user typed it: it heads ``--help`` and every start-up
    error, which is one line on stderr and exit status 2.
    """
    try:
        settings = settings_module.load(argv, os.environ, prog=prog)
        new_loop = loop_factory(settings.event_loop)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        sockets = bind_sockets(settings.port, settings.address)
    except OSError as exc:
        where = f"{settings.address}:{settings.port}"
        print(f"{prog}: address, port: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
        return 2
    if settings.embedded_dir:
        made = Users(Path(settings.embedded_dir)).ensure_admin(settings.admin_pair)
        if made:  # on the terminal, once: never in a log line
            print(
                f"settee: made the server admin {made[0]!r} with password {made[1]!r}; it is"
                f" kept hashed in {settings.embedded_dir}/admins.json and not shown again",
                file=sys.stderr,
            )
    tune_garbage_collector()

    def serve_here() -> None:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(serve(settings, sockets))

    return serve_in_processes(settings.processes, serve_here)
