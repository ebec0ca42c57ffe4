"""What several benchmarks share: the embedded store's admin, counting new TIME_WAIT sockets,
and reading py-spy profiles."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The server admin of the embedded stores the benchmarks serve: they make and open their
# databases with it, then load them as anybody, as pouchdb-server's admin party is loaded.
BENCH_ADMIN = ("bench", "bench-secret")


# What a benchmark's database is opened with: no members named, so anybody reads and writes.
PUBLIC = {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": []}}


def admin_flags(couch_url: str, admin: tuple[str, str] = BENCH_ADMIN) -> list[str]:
    """``run.py``'s flags for the benchmarks' admin, when it serves an embedded store."""
    return ["--admin", ":".join(admin)] if couch_url.startswith("embedded:") else []


def as_admin(url: str, admin: tuple[str, str] = BENCH_ADMIN) -> str:
    """``url`` with ``admin`` in it (``gateway.call`` sends it as Basic auth)."""
    return url.replace("http://", "http://{}:{}@".format(*admin), 1)


TIME_WAIT_SECONDS = 60  # Linux's TCP_TIMEWAIT_LEN


def time_wait_since(ports: set[int], since: float) -> int:
    """Sockets in TIME_WAIT (state 06) with one of ``ports`` at either end that entered it
    after ``since`` (a ``time.monotonic()``).

    A socket stays in TIME_WAIT for 60 s; /proc/net/tcp shows the time it has left (in 1/100 s),
    which dates its entry. Comparing (local, remote) pairs before and after would undercount:
    Linux reuses TIME_WAIT pairs on loopback for new connections (net.ipv4.tcp_tw_reuse).
    """
    newest = TIME_WAIT_SECONDS - (time.monotonic() - since) - 0.02
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            _, local, remote, state, _, timer, *_ = line.split()
            if state != "06":
                continue
            ends = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
            if ends & ports and int(timer.split(":")[1], 16) / 100 >= newest:
                count += 1
    return count


def shorten(frame: str) -> str:
    """``fn (/long/path/site-packages/tornado/web.py:12)`` → ``tornado/web.py:fn``."""
    found = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not found:
        return frame
    name, path = found.groups()
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}"


def area(frame: str) -> str:
    """The package a shortened frame belongs to."""
    path = frame.split(":", 1)[0]
    for prefix in ("service/", "tornado/", "httptools/", "uvloop/", "asyncio/", "ujson"):
        if path.startswith(prefix):
            return prefix.rstrip("/")
    if path.startswith(("logging/", "selectors", "socket", "ssl")):
        return "stdlib I/O + logging"
    return "other"


@dataclass
class Profile:
    """Sample counts from py-spy's ``--format raw`` output (one stack and count a line)."""

    total: int = 0
    own: Counter[str] = field(default_factory=Counter)  # top of stack
    areas: Counter[str] = field(default_factory=Counter)  # top of stack, by package
    inclusive: Counter[str] = field(default_factory=Counter)  # anywhere on the stack


def read_profile(path: Path) -> Profile:
    profile = Profile()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [shorten(f) for f in stack.split(";")[1:]]  # the first is the thread
        if not frames:
            continue
        samples = int(count)
        profile.total += samples
        profile.own[frames[-1]] += samples
        profile.areas[area(frames[-1])] += samples
        for frame in set(frames):
            profile.inclusive[frame] += samples
    return profile
