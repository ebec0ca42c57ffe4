"""Running the server in several processes that share one listening socket.

The parent binds, forks the children, and then only relays SIGTERM and SIGINT to them and
waits: each child runs its own event loop, client and hub. A child that dies is not replaced;
the parent exits when all children have, with a failure status if any failed.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger("settee")


def serve_in_processes(count: int, serve: Callable[[], None]) -> int:
    """Run ``serve`` in ``count`` processes (0: one per CPU; 1: in this process)."""
    count = count or os.cpu_count() or 1
    if count == 1:
        serve()
        return 0
    children: set[int] = set()
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            _run_child(serve)
        children.add(pid)

    def relay(signum: int, _frame: object) -> None:
        for pid in children:
            os.kill(pid, signum)

    signal.signal(signal.SIGTERM, relay)
    signal.signal(signal.SIGINT, relay)
    failed = 0
    while children:
        pid, status = os.wait()
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            failed += 1
            log.error("server process %d exited with %d", pid, code)
    return 1 if failed else 0


def _run_child(serve: Callable[[], None]) -> None:
    code = 0
    try:
        serve()
    except BaseException:
        log.exception("server process failed")
        code = 1
    finally:
        os._exit(code)
