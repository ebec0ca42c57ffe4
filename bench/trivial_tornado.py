"""The floor under settee's CPU per request: a bare Tornado app that answers without an upstream.

``GET /{db}/{id}`` answers ``200 {"_id": id, "_rev": "1-abc", ...}`` with the ETag at once, from
one ``RequestHandler`` on Tornado's ``HTTPServer`` (same Tornado, same Python, and the event
loop settee's ``event_loop`` setting would pick). What settee spends per request beyond this is
its own code, its CouchDB client and the upstream round trip. ``bench/gateway.py`` starts and
stops it.

    .venv/bin/python bench/trivial_tornado.py --port 5998 [--event-loop auto|uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from tornado import web
from tornado.httpserver import HTTPServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import loop_factory


class DocumentHandler(web.RequestHandler):
    def get(self, db: str, doc_id: str) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("ETag", '"1-abc"')
        doc = {"_id": doc_id, "_rev": "1-abc", "type": "bench", "n": 1}
        self.finish(json.dumps(doc, separators=(",", ":")) + "\n")


class WelcomeHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish('{"couchdb":"Welcome"}\n')


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = web.Application([(r"/", WelcomeHandler), (r"/([^/]+)/([^/]+)", DocumentHandler)])
    server = HTTPServer(app)
    server.listen(port, host)
    print(f"listening on {host}:{port}", flush=True)
    await stop.wait()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5998)
    parser.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory(args.event_loop)) as runner:
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
