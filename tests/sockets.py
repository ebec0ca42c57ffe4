"""This process's TCP connections, read from ``/proc``: what a test counts to see how many
connections settee's client holds to a backend."""

from __future__ import annotations

import os

ESTABLISHED = "01"


def connections_to(port: int, pid: int | str = "self") -> dict[int, str]:
    """This process's (or process ``pid``'s) TCP connections to ``port``: local port → state
    (hex, as /proc has it)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if inode in inodes and int(remote.rpartition(":")[2], 16) == port:
                    found[int(local.rpartition(":")[2], 16)] = state
    return found


def established_to(port: int, pid: int | str = "self") -> set[int]:
    """The local ports of this process's (or ``pid``'s) established connections to ``port``."""
    return {local for local, state in connections_to(port, pid).items() if state == ESTABLISHED}
