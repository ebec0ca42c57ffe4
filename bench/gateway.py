"""Is settee the bottleneck? GET and PUT through settee against the same requests made directly.

Part 1, settee vs direct: one in-memory pouchdb-server with a database of ``--docs`` documents,
and one settee process (``run.py``, one process, log level warning) in front of it, both on
127.0.0.1 and both started and stopped (by PID) here. The load generator is wrk, with the same
settings for both targets: ``GET /bench/doc-NNNN`` (one id per run; a different one each run) and
``PUT /bench_put/<unique id>`` (new documents, ids from a Lua script), at c = 1, 16 and 64
connections (wrk's threads: min(2, c)). Runs are interleaved (direct and settee back to back,
the order alternating by round) and repeated; the tables give medians and the ratios
settee / direct. CPU µs/req is a server's own CPU time (utime + stime from /proc/PID/stat)
over the requests wrk completed in the run.

Every request wrk sends carries the headers a CouchDB client library sends with each request
(``CLIENT_HEADERS``: couchdb-python, nano and PouchDB's HTTP adapter send ``Accept:
application/json`` and a ``User-Agent``), in every arm, so that the direct arm makes the
requests a client makes. Bare wrk sends only ``Host``, and pouchdb-server answers that on
another path (``text/plain`` rather than ``application/json``), while settee's own requests
to the backend carry its headers whatever its client sent. What the headers cost
pouchdb-server is measured by ``bench/request_headers.py``. ``--bare-requests`` sends wrk's
bare requests, as runs 1-13 in bench/README.md did.

Part 1's ratios are given two ways: the ratio of the medians, and the median (with
quartiles) of each round's own ratio, settee's run over the direct run just before or after
it. The goals are read on the paired ratio: this VM's speed drifts by 10 % and more between
rounds, which pairing cancels.

Part 2, settee's own CPU: settee in front of ``bench/trivial_upstream.py``, a stand-in CouchDB
that answers at once, loaded by wrk at ``--cpu-c`` connections; settee's CPU time per request
served and its req/s. Two references: the upstream alone (wrk straight at it), and
``bench/trivial_tornado.py``, a bare Tornado handler that answers the same document with no
upstream: the floor that Tornado and Python on this machine put under any such gateway.

Part 3, where the time goes: py-spy samples settee under the same load (``--profile-seconds``;
0 skips it) and the functions are listed by their share of samples, on the stack (inclusive)
and at its top (self).

With ``--pin`` (part 1 only), pouchdb-server runs on one CPU and settee and wrk on the others:
on a machine of two CPUs, a pouchdb-server that needs all of one otherwise loses a share of it
to settee, and the ratio then measures the sharing rather than settee's own cost.

With ``--relay`` (part 1), a third contender runs in the same rounds: ``bench/byte_relay.py``,
which passes bytes through unparsed. What it costs pouchdb-server is what any second process
on the path costs here; what settee costs beyond it is settee's own work.

TIME_WAIT counts the sockets in that state (/proc/net/tcp, state 06) with a port of the run's
servers at either end that entered it during the run (a socket stays in it for 60 s; the timer
in /proc dates its entry). Errors are wrk's socket errors (connect, read, write, timeout) plus
its responses with a status of 400 or more.

Needs wrk (Debian's package: ``apt-get install -y wrk``) and, for part 3, py-spy
(``.venv/bin/pip install py-spy``). pouchdb-server comes from scripts/setup.

    .venv/bin/python bench/gateway.py [--rounds 3] [--seconds 5] [--connections 1,16,64]
        [--cpu-seconds 10] [--profile-seconds 10] [--only all|couch|cpu]
        [--event-loop auto|uvloop|asyncio] [--pin] [--relay] [--bare-requests]
        [--profile-method GET|PUT]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_ADMIN, admin_flags, read_profile, time_wait_since  # noqa: E402
from tests.servers import PouchServer, free_port, wait_until_up  # noqa: E402

PYTHON = sys.executable
DB, PUT_DB = "bench", "bench_put"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WRK_GRACE = 30  # seconds past a run's duration before wrk is killed
CLIENT_HEADERS = {"Accept": "application/json", "User-Agent": "wrk (bench/gateway.py)"}
GOALS = {"rps_ratio": 0.95, "p99_ratio": 1.25, "cpu_us": 450.0, "time_wait": 1000}

PUT_SCRIPT = """
-- PUT a new document on every request: ids are <run>-<thread>-<counter>, unique in the run.
local counter, prefix, threads = 0, "", 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
end
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"bench","title":"a small document written by bench/gateway.py","n":1}'
function request()
  counter = counter + 1
  return wrk.format(nil, "/%s/" .. prefix .. counter)
end
"""


# -- processes


def need_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit(
            "bench/gateway.py: wrk is missing. It is Debian's package wrk:\n"
            "    apt-get update && apt-get install -y wrk\n"
            "(as root; elsewhere `sudo apt-get install wrk`), then run this again."
        )
    return wrk


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def pin(pid: int, cpus: set[int]) -> None:
    """Keep every thread of process ``pid`` on ``cpus``; the threads it starts later inherit it
    (the listing is taken again until it shows no thread not yet pinned)."""
    pinned: set[int] = set()
    while threads := {int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()} - pinned:
        for tid in threads:
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(tid, cpus)
        pinned |= threads


def children_cpu() -> float:
    """CPU seconds of this script's children that have ended (so: of the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Served:
    """A server this script started: its Popen, stopped by its PID alone."""

    def __init__(self, name: str, args: list[str], url: str, up_path: str, log: Path) -> None:
        self.name, self.url, self.log = name, url, log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            wait_until_up(url + up_path, timeout=20)
        except OSError:
            self.stop()
            sys.exit(f"{name} did not start; its output:\n{log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def complaints(self) -> list[str]:
        """The lines of its log at warning level or worse (settee runs at warning)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if re.search(r"WARNING|ERROR|CRITICAL", line)]


def start_settee(
    couch_url: str,
    workdir: Path,
    name: str,
    event_loop: str,
    admin: tuple[str, str] = BENCH_ADMIN,
) -> Served:
    """settee on ``couch_url``; on an embedded store, ``admin`` is its server admin."""
    port = free_port()
    args = [PYTHON, str(ROOT / "run.py"), "--port", str(port), "--address", "127.0.0.1"]
    args += ["--couch-url", couch_url, "--log-level", "warning", "--processes", "1"]
    args += ["--event-loop", event_loop, *admin_flags(couch_url, admin)]
    return Served(name, args, f"http://127.0.0.1:{port}", "/_up", workdir / f"{name}.log")


def start_trivial(workdir: Path) -> Served:
    port = free_port()
    args = [PYTHON, str(ROOT / "bench" / "trivial_upstream.py"), "--port", str(port)]
    return Served("trivial", args, f"http://127.0.0.1:{port}", "/", workdir / "trivial.log")


def start_relay(backend_port: int, workdir: Path) -> Served:
    port = free_port()
    args = [PYTHON, str(ROOT / "bench" / "byte_relay.py"), "--port", str(port)]
    args += ["--backend-port", str(backend_port)]
    return Served("relay", args, f"http://127.0.0.1:{port}", "/", workdir / "relay.log")


def call(method: str, url: str, body: object = None, *, timeout: float = 30) -> object:
    """One JSON request; credentials in ``url`` (``http://user:pw@host``) go as Basic auth."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json"}
    if parts.username is not None:
        headers |= basic_auth(parts.username, parts.password or "")
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def fill(pouch_url: str, docs: int) -> None:
    call("PUT", f"{pouch_url}/{DB}")
    call("PUT", f"{pouch_url}/{PUT_DB}")
    rows = [{"_id": f"doc-{i:04d}", "n": i, "title": "x" * 100} for i in range(docs)]
    call("POST", f"{pouch_url}/{DB}/_bulk_docs", {"docs": rows})
    count = call("GET", f"{pouch_url}/{DB}")["doc_count"]  # type: ignore[index]
    assert count == docs, count


# -- TIME_WAIT


def time_wait_total() -> int:
    """Every socket in TIME_WAIT on this machine, whoever made it."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            count += sum(
                line.split()[3] == "06" for line in Path(table).read_text().splitlines()[1:]
            )
    return count


# -- wrk


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    time_wait: int
    cpu_us: dict[str, float] = field(default_factory=dict)  # server name → CPU µs / request


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(text: str) -> tuple[float, float, float, int, int]:
    """req/s, p50 ms, p99 ms, requests, errors (socket errors + status ≥ 400) from wrk's text."""

    def latency(pct: str) -> float:
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if not found:
            raise ValueError(f"no {pct}% latency in wrk's output:\n{text}")
        return float(found[1]) * UNITS[found[2]]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    requests = re.search(r"(\d+) requests in", text)
    if not rps or not requests:
        raise ValueError(f"unexpected wrk output:\n{text}")
    errors = 0
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    status = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if status:
        errors += int(status[1])
    return float(rps[1]), latency("50"), latency("99"), int(requests[1]), errors


def header_flags(headers: dict[str, str]) -> list[str]:
    """wrk's ``-H`` arguments for ``headers``."""
    return [flag for name, value in headers.items() for flag in ("-H", f"{name}: {value}")]


class Wrk:
    def __init__(self, wrk: str, workdir: Path, headers: dict[str, str]) -> None:
        self.wrk = wrk
        self.workdir = workdir
        self.headers = header_flags(headers)
        self.runs = 0
        self.cpus: set[int] | None = None  # where wrk runs; None: anywhere

    def command(self, url: str, method: str, c: int, seconds: float) -> list[str]:
        self.runs += 1
        threads = min(2, c)
        args = [self.wrk, "-t", str(threads), "-c", str(c), "-d", f"{seconds:g}s", "--latency"]
        args += self.headers
        if method == "GET":
            return [*args, f"{url}/{DB}/doc-{self.runs % 100:04d}"]
        script = self.workdir / "put.lua"
        if not script.exists():
            script.write_text(PUT_SCRIPT.replace("%s", PUT_DB))
        return [*args, "-s", str(script), url, "--", f"r{self.runs}"]

    def run(
        self, url: str, method: str, c: int, seconds: float, watch: dict[str, int], ports: set[int]
    ) -> Run:
        """One timed wrk run; CPU per request of the processes in ``watch`` (name → PID)."""
        command = self.command(url, method, c, seconds)
        before = {name: cpu_seconds(pid) for name, pid in watch.items()}
        before["wrk"] = children_cpu()
        since = time.monotonic()
        cpus = self.cpus
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds + WRK_GRACE,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
        after = {name: cpu_seconds(pid) for name, pid in watch.items()}
        after["wrk"] = children_cpu()
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        rps, p50, p99, requests, errors = parse_wrk(done.stdout)
        time.sleep(0.3)  # let the sockets wrk closed reach TIME_WAIT
        cpu = {name: (after[name] - before[name]) * 1e6 / max(requests, 1) for name in after}
        return Run(rps, p50, p99, requests, errors, time_wait_since(ports, since), cpu)


# -- part 1: settee vs direct


def median(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(run, attr) for run in runs)


def paired(gateway: list[Run], direct: list[Run], attr: str) -> tuple[float, float, float]:
    """The gateway / direct ratios of each round's back-to-back runs: median, first and third
    quartile. Pairing cancels the machine's drift between rounds, which a ratio of medians
    keeps (this VM's speed moves by 10 % and more within minutes)."""
    ratios = [getattr(g, attr) / getattr(d, attr) for g, d in zip(gateway, direct, strict=True)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    first, _, third = statistics.quantiles(ratios, n=4, method="inclusive")
    return statistics.median(ratios), first, third


def compare(args: argparse.Namespace, wrk: Wrk, workdir: Path) -> list[str]:
    """Part 1; returns the goal lines for the summary."""
    pouch = PouchServer().start()
    settee = relay = None
    try:
        fill(pouch.url, args.docs)
        settee = start_settee(pouch.url, workdir, "settee", args.event_loop)
        gateways = [settee]
        if args.relay:
            relay = start_relay(pouch.port, workdir)
            gateways.append(relay)
        pouch_pid = pouch.process.pid  # type: ignore[union-attr]
        if args.pin:
            first, *rest = sorted(os.sched_getaffinity(0))
            others = set(rest)
            pin(pouch_pid, {first})
            for gateway in gateways:
                pin(gateway.pid, others)
            wrk.cpus = others
            print(f"pinned: pouchdb-server on CPU {first}; the gateways and wrk on CPUs {rest}")
        targets = {"direct": (pouch.url, {"pouchdb": pouch_pid}, {pouch.port})}
        for gateway in gateways:
            targets[gateway.name] = (
                gateway.url,
                {"pouchdb": pouch_pid, gateway.name: gateway.pid},
                {pouch.port, int(gateway.url.rsplit(":", 1)[1])},
            )
        # A warm-up run each, not counted: JIT, connection pools, caches.
        for url, watch, ports in targets.values():
            wrk.run(url, "GET", 16, 1, watch, ports)
        results: dict[tuple[str, int, str], list[Run]] = {}
        print(
            f"part 1: {args.rounds} rounds of {args.seconds:g} s per run, "
            f"pouchdb-server {pouch.url}, settee {settee.url}",
            flush=True,
        )
        for round_ in range(args.rounds):
            for method in args.methods:
                for c in args.connections:
                    order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                    for name in order:
                        url, watch, ports = targets[name]
                        run = wrk.run(url, method, c, args.seconds, watch, ports)
                        results.setdefault((method, c, name), []).append(run)
                        cpu = "  ".join(f"{k} {v:5.0f} µs/req" for k, v in run.cpu_us.items())
                        print(
                            f"  round {round_ + 1} {method:<3} c={c:<3} {name:<6} "
                            f"{run.rps:8.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
                            f"p99 {run.p99_ms:6.2f} ms  errors {run.errors}  "
                            f"TIME_WAIT +{run.time_wait}  {cpu}",
                            flush=True,
                        )
        complaints = settee.complaints()
    finally:
        wrk.cpus = None
        for gateway in (settee, relay):
            if gateway is not None:
                gateway.stop()
        pouch.stop()
    print()
    pinned = ", pouchdb-server pinned to a CPU of its own" if args.pin else ""
    print(f"settee vs direct (pouchdb-server in memory{pinned}), medians of {args.rounds} runs:")
    print()
    print(
        "| method | c | direct req/s | settee req/s | ratio | paired ratio [quartiles] "
        "| direct p50 ms | settee p50 ms "
        "| direct p99 ms | settee p99 ms | p99 ratio | paired p99 ratio [quartiles] "
        "| errors d/s | TIME_WAIT d/s (max) "
        "| pouchdb CPU µs/req d/s (s/d paired) | settee CPU µs/req | wrk CPU µs/req d/s "
        "| CPUs busy: pouchdb d/s, settee |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    goals = []
    for method in args.methods:
        for c in args.connections:
            d, s = results[(method, c, "direct")], results[(method, c, "settee")]
            ratio = median(s, "rps") / median(d, "rps")
            p99_ratio = median(s, "p99_ms") / median(d, "p99_ms")
            rps_pair, p99_pair = paired(s, d, "rps"), paired(s, d, "p99_ms")
            pouch_cpu = [statistics.median(r.cpu_us["pouchdb"] for r in runs) for runs in (d, s)]
            pouch_pair = statistics.median(
                a.cpu_us["pouchdb"] / b.cpu_us["pouchdb"] for a, b in zip(s, d, strict=True)
            )
            settee_cpu = statistics.median(r.cpu_us["settee"] for r in s)
            wrk_cpu = [statistics.median(r.cpu_us["wrk"] for r in runs) for runs in (d, s)]
            busy = [
                statistics.median(r.cpu_us["pouchdb"] * r.rps / 1e6 for r in runs)
                for runs in (d, s)
            ]
            settee_busy = statistics.median(r.cpu_us["settee"] * r.rps / 1e6 for r in s)
            print(
                f"| {method} | {c} | {median(d, 'rps'):.0f} | {median(s, 'rps'):.0f} "
                f"| {ratio:.2f}x | {spread(rps_pair)} "
                f"| {median(d, 'p50_ms'):.2f} | {median(s, 'p50_ms'):.2f} "
                f"| {median(d, 'p99_ms'):.2f} | {median(s, 'p99_ms'):.2f} | {p99_ratio:.2f}x "
                f"| {spread(p99_pair)} "
                f"| {sum(r.errors for r in d)} / {sum(r.errors for r in s)} "
                f"| {max(r.time_wait for r in d)} / {max(r.time_wait for r in s)} "
                f"| {pouch_cpu[0]:.0f} / {pouch_cpu[1]:.0f} ({pouch_pair:.2f}) "
                f"| {settee_cpu:.0f} "
                f"| {wrk_cpu[0]:.0f} / {wrk_cpu[1]:.0f} "
                f"| {busy[0]:.2f} / {busy[1]:.2f}, {settee_busy:.2f} |"
            )
            if c == max(args.connections):
                pinned = " (pinned)" if args.pin else ""
                goals.append(
                    f"{method} c={c}{pinned}: paired req/s ratio {spread(rps_pair)} "
                    f"(goal ≥ {GOALS['rps_ratio']}x: "
                    f"{verdict(rps_pair[0] >= GOALS['rps_ratio'])}; ratio of medians "
                    f"{ratio:.2f}x), paired p99 ratio {spread(p99_pair)} "
                    f"(goal ≤ {GOALS['p99_ratio']}x: "
                    f"{verdict(p99_pair[0] <= GOALS['p99_ratio'])}; ratio of medians "
                    f"{p99_ratio:.2f}x)"
                )
    if args.relay:
        print_relay(args, results)
    errors = sum(r.errors for runs in results.values() for r in runs)
    worst_tw = max(r.time_wait for runs in results.values() for r in runs)
    goals.append(f"part 1 errors: {errors} (goal 0: {verdict(errors == 0)})")
    goals.append(
        f"part 1 TIME_WAIT after a run, at most: {worst_tw} "
        f"(goal < {GOALS['time_wait']}: {verdict(worst_tw < GOALS['time_wait'])})"
    )
    goals.append(f"settee's log at warning or worse: {len(complaints)} lines")
    for line in complaints[:5]:
        goals.append(f"    {line}")
    return goals


def print_relay(args: argparse.Namespace, results: dict[tuple[str, int, str], list[Run]]) -> None:
    """The reference contender beside settee: what a gateway that does next to no work gets."""
    print()
    print("reference: bench/byte_relay.py, bytes passed through unparsed, same runs:")
    print()
    print(
        "| method | c | relay req/s | ratio to direct | paired [quartiles] | pouchdb CPU µs/req "
        "| relay CPU µs/req | settee ratio | settee paired [quartiles] | settee CPU µs/req |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for method in args.methods:
        for c in args.connections:
            d = results[(method, c, "direct")]
            r, s = results[(method, c, "relay")], results[(method, c, "settee")]
            print(
                f"| {method} | {c} | {median(r, 'rps'):.0f} "
                f"| {median(r, 'rps') / median(d, 'rps'):.2f}x "
                f"| {spread(paired(r, d, 'rps'))} "
                f"| {statistics.median(x.cpu_us['pouchdb'] for x in r):.0f} "
                f"| {statistics.median(x.cpu_us['relay'] for x in r):.0f} "
                f"| {median(s, 'rps') / median(d, 'rps'):.2f}x "
                f"| {spread(paired(s, d, 'rps'))} "
                f"| {statistics.median(x.cpu_us['settee'] for x in s):.0f} |"
            )


def spread(ratios: tuple[float, float, float]) -> str:
    middle, first, third = ratios
    return f"{middle:.2f}x [{first:.2f}-{third:.2f}]"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# -- part 2: settee's own CPU, and part 3: its profile


@contextlib.contextmanager
def trivial_stack(workdir: Path, event_loop: str) -> Iterator[tuple[Served, Served, Served]]:
    """The trivial upstream, settee in front of it, and the bare-Tornado floor."""
    started: list[Served] = []
    try:
        trivial = start_trivial(workdir)
        started.append(trivial)
        started.append(start_settee(trivial.url, workdir, "settee-trivial", event_loop))
        port = free_port()
        args = [PYTHON, str(ROOT / "bench" / "trivial_tornado.py"), "--port", str(port)]
        args += ["--event-loop", event_loop]
        url = f"http://127.0.0.1:{port}"
        started.append(Served("tornado", args, url, "/", workdir / "tornado.log"))
        yield started[0], started[1], started[2]
    finally:
        for served in reversed(started):
            served.stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def own_cpu(args: argparse.Namespace, wrk: Wrk, workdir: Path) -> list[str]:
    """Parts 2 and 3; returns the goal lines for the summary."""
    goals = []
    with trivial_stack(workdir, args.event_loop) as (trivial, settee, tornado):
        ports = {port_of(trivial.url), port_of(settee.url), port_of(tornado.url)}
        watch = {"settee": settee.pid, "trivial": trivial.pid, "tornado": tornado.pid}
        # target name → (URL, the process wrk loads, methods it answers)
        targets = {
            "upstream alone": (trivial.url, "trivial", args.methods),
            "bare Tornado": (tornado.url, "tornado", ["GET"]),
            "settee": (settee.url, "settee", args.methods),
        }
        c = args.cpu_c
        for url, _, _ in targets.values():
            wrk.run(url, "GET", c, 1, watch, ports)  # warm-up
        runs: dict[tuple[str, str], list[Run]] = {}
        print(
            f"part 2: settee in front of bench/trivial_upstream.py, c={c}, "
            f"{args.rounds} rounds of {args.cpu_seconds:g} s",
            flush=True,
        )
        for round_ in range(args.rounds):
            for method in args.methods:
                for name, (url, server, methods) in targets.items():
                    if method not in methods:
                        continue
                    run = wrk.run(url, method, c, args.cpu_seconds, watch, ports)
                    runs.setdefault((method, name), []).append(run)
                    upstream = (
                        f"  upstream {run.cpu_us['trivial']:4.0f} µs/req"
                        if name == "settee"
                        else ""
                    )
                    print(
                        f"  round {round_ + 1} {method:<3} {name:<14} {run.rps:8.0f} req/s  "
                        f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  "
                        f"errors {run.errors}  TIME_WAIT +{run.time_wait}  "
                        f"{server} {run.cpu_us[server]:4.0f} µs/req{upstream}",
                        flush=True,
                    )
        print()
        print(f"settee's own CPU (trivial upstream, c={c}), medians of {args.rounds} runs:")
        print()
        print(
            "| method | target | req/s | p50 ms | p99 ms | its CPU µs/req "
            "| upstream CPU µs/req | errors | TIME_WAIT (max) |"
        )
        print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
        floor = {}
        for (method, name), rs in runs.items():
            server = targets[name][1]
            cpu = statistics.median(r.cpu_us[server] for r in rs)
            upstream = statistics.median(r.cpu_us["trivial"] for r in rs)
            print(
                f"| {method} | {name} | {median(rs, 'rps'):.0f} | {median(rs, 'p50_ms'):.2f} "
                f"| {median(rs, 'p99_ms'):.2f} | {cpu:.0f} "
                f"| {f'{upstream:.0f}' if name == 'settee' else '-'} "
                f"| {sum(r.errors for r in rs)} | {max(r.time_wait for r in rs)} |"
            )
            if name == "bare Tornado":
                floor[method] = cpu
            if name == "settee":
                rps = median(rs, "rps")
                versus = (
                    f"; {cpu / floor[method]:.2f}x a bare Tornado handler's {floor[method]:.0f} µs"
                    if method in floor
                    else ""
                )
                goal = (  # the issue sets a goal for GETs only
                    f"goal ≤ {GOALS['cpu_us']:.0f}: {verdict(cpu <= GOALS['cpu_us'])}"
                    if method == "GET"
                    else "no goal"
                )
                goals.append(
                    f"{method} settee CPU: {cpu:.0f} µs/req ({goal}){versus}; {rps:.0f} req/s "
                    f"in one process (CPU-bound ceiling 1e6 / µs = {1e6 / cpu:.0f} req/s)"
                )
        errors = sum(r.errors for rs in runs.values() for r in rs)
        worst_tw = max(r.time_wait for rs in runs.values() for r in rs)
        goals.append(f"part 2 errors: {errors}; TIME_WAIT after a run, at most: {worst_tw}")
        if args.profile_seconds > 0:
            print()
            profile(args, wrk, settee)
        complaints = settee.complaints()
        goals.append(f"settee (trivial upstream) log at warning or worse: {len(complaints)} lines")
        goals.extend(f"    {line}" for line in complaints[:5])
    return goals


def profile(args: argparse.Namespace, wrk: Wrk, settee: Served) -> None:
    """py-spy samples settee while wrk loads it (GETs, or PUTs); prints the top functions."""
    py_spy = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("part 3 skipped: py-spy is missing (.venv/bin/pip install py-spy)")
        return
    out = Path(args.profile_out)
    seconds = args.profile_seconds
    load = subprocess.Popen(
        wrk.command(settee.url, args.profile_method, args.cpu_c, seconds + 2),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(0.5)
        sampled = subprocess.run(
            [
                *(py_spy, "record", "--pid", str(settee.pid), "--duration", str(seconds)),
                *("--rate", "250", "--format", "raw", "--function", "--nonblocking"),
                *("--output", str(out)),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
    finally:
        try:
            stdout, _ = load.communicate(timeout=seconds + WRK_GRACE)
        except subprocess.TimeoutExpired:
            load.kill()
            stdout, _ = load.communicate()
    if sampled.returncode != 0 or not out.exists():
        print(f"part 3 failed: py-spy said:\n{sampled.stdout}\n{sampled.stderr}")
        return
    rps = parse_wrk(stdout)[0] if "Requests/sec" in stdout else float("nan")
    found = read_profile(out)
    total, own, areas, inclusive = found.total, found.own, found.areas, found.inclusive
    print(
        f"part 3: py-spy, {seconds} s at 250 Hz of settee under "
        f"{args.profile_method} c={args.cpu_c} "
        f"({rps:.0f} req/s with the sampling), {total} busy samples; raw stacks in {out}"
    )

    def table(title: str, counts: Counter[str], n: int) -> None:
        print()
        print(f"| {title} | share |")
        print("|---|--:|")
        for name, samples in counts.most_common(n):
            print(f"| `{name}` | {100 * samples / max(total, 1):.1f} % |")

    table("self time by area (top frame's package)", areas, 10)
    table("self time (top of stack)", own, args.profile_top)
    skip = (
        "asyncio/",
        "runpy",
        "<frozen",
        "service/serving.py:",
        "tornado/platform/",
        "service/processes",
    )
    interesting = Counter({k: v for k, v in inclusive.items() if not k.startswith(skip)})
    table(
        "inclusive time (on the stack; event-loop frames left out)", interesting, args.profile_top
    )
    ours = Counter({k: v for k, v in inclusive.items() if k.startswith("service/")})
    ours.pop("service/processes.py:serve_in_processes", None)
    table("inclusive time in settee's own functions (service/)", ours, args.profile_top)


# -- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per run in part 1")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated")
    parser.add_argument("--methods", default="GET,PUT", help="GET, PUT or both")
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--cpu-c", type=int, default=64, help="connections in parts 2 and 3")
    parser.add_argument("--cpu-seconds", type=float, default=10.0, help="per run in part 2")
    parser.add_argument("--profile-seconds", type=int, default=10, help="0: no profile")
    parser.add_argument("--profile-top", type=int, default=20)
    parser.add_argument("--profile-method", choices=("GET", "PUT"), default="GET")
    parser.add_argument("--profile-out", default="/tmp/settee-gateway-profile.txt")
    parser.add_argument("--only", choices=("all", "couch", "cpu"), default="all")
    parser.add_argument(
        "--relay",
        action="store_true",
        help="part 1 also runs bench/byte_relay.py, a gateway that does next to no work",
    )
    parser.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="settee's and the bare Tornado handler's event loop",
    )
    parser.add_argument(
        "--bare-requests",
        action="store_true",
        help="wrk sends only Host, not the headers a CouchDB client sends (as runs 1-13 did)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="part 1: pouchdb-server on a CPU of its own, settee and wrk on the others",
    )
    args = parser.parse_args()
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        parser.error("--pin needs two CPUs at least")
    args.connections = [int(c) for c in args.connections.split(",")]
    args.methods = [m.strip().upper() for m in args.methods.split(",")]
    if not set(args.methods) <= {"GET", "PUT"} or min(args.connections) < 1:
        parser.error("methods are GET and PUT; connections at least 1")
    args.rounds = max(1, min(args.rounds, 20))
    args.seconds = max(1.0, min(args.seconds, 120.0))
    args.cpu_seconds = max(1.0, min(args.cpu_seconds, 120.0))
    args.profile_seconds = max(0, min(args.profile_seconds, 120))
    wrk_path = need_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="settee-gateway-"))
    wrk_headers = {} if args.bare_requests else CLIENT_HEADERS
    wrk = Wrk(wrk_path, workdir, wrk_headers)
    sent = ", ".join(f"{k}: {v}" for k, v in wrk_headers.items()) or "only Host"
    print(f"wrk's request headers: {sent}")
    print(
        f"{os.cpu_count()} CPUs; wrk, pouchdb-server and settee share them. "
        f"TIME_WAIT on the machine before: {time_wait_total()}",
        flush=True,
    )
    load = os.getloadavg()[0]
    if load > 0.5:
        print(
            f"warning: load average {load:.2f} before the start: other work shares these CPUs "
            "and the numbers below will be low and noisy",
            flush=True,
        )
    goals = []
    if args.only in ("all", "couch"):
        goals += compare(args, wrk, workdir)
        print()
    if args.only in ("all", "cpu"):
        goals += own_cpu(args, wrk, workdir)
        print()
    print("goals:")
    for line in goals:
        print(f"  {line}")
    print(f"  TIME_WAIT on the machine now (any port, last 60 s): {time_wait_total()}")
    print(f"  logs: {workdir}")


if __name__ == "__main__":
    main()
