"""What the fault tests share: a writer that retries through outages, and the faults."""

from __future__ import annotations

import threading
import time

from service.couch import CouchError, blocking
from tests.servers import CouchServer, PouchServer

FAULTS = 3


class Writer:
    """Writes docs one by one in a thread, retrying through outages; remembers what was acked."""

    def __init__(self, url: str, limit: int = 1_000_000) -> None:
        self.db = blocking.Couch(url, timeout=5, connect_timeout=1)["faults"]
        self.limit = limit
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def write(self, doc_id: str) -> None:
        while True:
            try:
                self.db.save({"_id": doc_id})
            except CouchError as exc:
                if getattr(exc, "error", "") == "conflict":  # written before the ack was lost
                    break
                time.sleep(0.05)
                continue
            break
        self.acked.append(doc_id)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set() and n < self.limit:
            self.write(f"during-{n:05}")
            n += 1
            time.sleep(0.005)


def run_faults(server: PouchServer | CouchServer, writer: Writer) -> None:
    for _ in range(FAULTS):
        time.sleep(0.4)
        server.kill()
        time.sleep(0.3)
        server.start()


def assert_everything_delivered_once(writer: Writer, received: list[str]) -> None:
    assert len(received) == len(set(received)), "a change was delivered twice"
    missing = set(writer.acked) - set(received)
    assert not missing, f"{len(missing)} acknowledged changes never arrived"
