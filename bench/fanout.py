"""The changes hub under fan-out: thousands of WebSocket subscribers of one database (issue 4).

Everything runs on 127.0.0.1 and is started and stopped (by PID) here: one in-memory
pouchdb-server (``tests/servers.py``), settee (``run.py``, one process, log level warning, its
default settings unless said otherwise) and the subscribers, in one or two processes of
``bench/fanout_client.py`` (a small asyncio WebSocket client; each process raises its
RLIMIT_NOFILE to the hard limit). The writes go straight to pouchdb-server, never through
settee. Clock: ``time.time()`` of this one machine, in every process.

Part 1, for each N in ``--ns`` (a fresh settee and database per N; subscribers with
``since=now&include_docs=true``):

* memory: settee's VmRSS with no subscriber (after one subscriber came and went, so the
  upstream feed is open and lingering) against its VmRSS with N idle subscribers; the
  difference / N;
* latency: a writer PUTs ``--latency-seconds`` of documents at ``--deliveries-per-s`` / N
  docs/s, each holding ``t``, the wall-clock time just before its PUT; each subscriber's
  receive time minus ``t``, over all deliveries: p50, p99; and whether every subscriber got
  every id (lost = rows missing, dups = rows received twice);
* rows/s: a burst of ``--burst-deliveries`` / N docs (50 to ``--max-burst``; at most the
  subscriber buffer, so that no queue can overflow) in one ``_bulk_docs``, and the time from the
  POST until every subscriber has every row: rows/s = N x docs / time. ``--rounds`` bursts
  with ``latency=0`` (a frame per row), then as many with ``latency=100`` (a frame per 100 ms
  holding an array of rows) on a new set of N subscribers; medians. settee's CPU per delivered
  row and the subscriber processes' CPU are given, as they share the two cores;
* references, same run: one continuous feed straight to pouchdb-server during the latency
  window (its p50/p99: the backend's own share of the latency), and, after the bursts, a bare
  Tornado WebSocket server (``bench/bare_broadcaster.py``) holding N idle sockets, with
  Tornado's pings every 10 s and without (its kB per socket, measured as settee's);
* at N = ``--profile-n``, one more ``latency=0`` burst with py-spy sampling settee
  (``--profile-out``), summarised by function (self and inclusive shares).

Part 2, backend CPU, for each N in ``--cpu-ns`` (a fresh pouchdb-server and settee per N):
pouchdb-server's CPU (utime + stime of its process group, from /proc) while ``--cpu-rate``
docs/s are PUT for ``--cpu-seconds``, in three windows: no feed at all (the writes alone), N
settee WebSocket subscribers (``since=now``; one shared upstream feed), then N continuous
feeds straight to pouchdb-server (``feed=continuous&heartbeat=10000``, ``Accept-Encoding:
identity``, ``since`` the update_seq read just before, so that a feed still being set up misses
nothing). Each window lasts until every subscriber has every row. The direct feeds come last
because pouchdb-server goes on serving a continuous feed after its client has gone.

The machine has 2 shared cores: settee, pouchdb-server and the subscriber processes compete
for them, so absolute figures swing; read the medians and the ratios. Every window reports the
CPU of each (and "others", the machine's busy time beyond this run's processes: another
session's load), and waits (up to 60 s) for the machine to be quiet before it starts. Every
wait is bounded and the whole run starts no new step past ``--budget`` seconds.

    .venv/bin/python bench/fanout.py              # ~7 min (no new step past 10 min)
    .venv/bin/python bench/fanout.py --quick      # ~2.5 min: N = 100, 1000; 1 round, smaller
    .venv/bin/python bench/fanout.py --only cpu   # part 2 only
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_ADMIN, admin_flags, read_profile  # noqa: E402
from tests.servers import PouchServer, free_port, wait_until_up  # noqa: E402

PYTHON = sys.executable
CLIENT = ROOT / "bench" / "fanout_client.py"
PY_SPY = Path(PYTHON).with_name("py-spy")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SUBSCRIBER_BUFFER = 1_000  # settee's default subscriber_buffer

# The figures: a bare Tornado broadcaster (memory, rows/s, p99) and direct feeds (CPU).
BASELINE = {
    "kb_per_sub": 14.2,
    "rows_per_s": {100: 53_000, 1_000: 29_000, 5_000: 18_000},
    "p99_ms": {100: 17, 1_000: 170, 5_000: 840},
    "direct_cpu_500": 73.0,
}
GOALS = {
    "kb_per_sub": 16.0,
    "rows_per_s": {100: 50_000, 1_000: 40_000, 5_000: 30_000},
    "p99_ms": {100: 20, 1_000: 100, 5_000: 250},
    "backend_cpu_500": 5.0,
}


# -- processes and /proc


def proc_stat(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in process group ``pgid``: pouchdb-server runs in
    a session of its own (the node process, whether it is the leader or a child of it)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = proc_stat(int(entry.name))
            if int(fields[2]) == pgid:
                total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores; /proc/stat less idle and iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


class Meter:
    """CPU shares over a window: settee, the subscriber processes, pouchdb-server, the whole
    machine, and "others", what the machine spent beyond this run's processes (the machine is
    shared: another session's load shows there)."""

    def __init__(self, settee_pid: int | None, client_pids: list[int], pouch_pgid: int) -> None:
        self.settee_pid, self.client_pids, self.pouch_pgid = settee_pid, client_pids, pouch_pgid
        self.t0, self.start = time.monotonic(), self.read()

    def read(self) -> dict[str, float]:
        return {
            "settee": cpu_seconds(self.settee_pid) if self.settee_pid else 0.0,
            "clients": sum(cpu_seconds(pid) for pid in self.client_pids),
            "pouch": group_cpu_seconds(self.pouch_pgid),
            "driver": cpu_seconds(os.getpid()),
            "machine": machine_busy_seconds(),
        }

    def stop(self) -> dict[str, float]:
        """CPU % (of one core) of each over the window; and the seconds of settee's CPU."""
        end = self.read()
        seconds = time.monotonic() - self.t0
        used = {k: end[k] - self.start[k] for k in end}
        own = used["settee"] + used["clients"] + used["pouch"] + used["driver"]
        out = {f"{k}_cpu_pct": 100 * v / seconds for k, v in used.items() if k != "driver"}
        out["others_cpu_pct"] = 100 * max(0.0, used["machine"] - own) / seconds
        out["settee_cpu_s"], out["pouch_cpu_s"] = used["settee"], used["pouch"]
        return out


def settle(pid: int, most: float = 10.0) -> float:
    """CPU seconds ``pid`` goes on spending once the last row has been delivered, until it is
    idle (below 20 % over 0.25 s) or ``most`` seconds have passed: settee finishes the futures
    and tasks of the frames it wrote after their bytes are gone."""
    start = last = cpu_seconds(pid)
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pid)
        if now - last < 0.05:
            break
        last = now
    return last - start


def wait_quiet(budget: Budget, most: float = 60.0, threshold: float = 25.0) -> float:
    """Wait (up to ``most`` seconds) until the machine is nearly idle before a measurement;
    the busy % (of one core) seen last."""
    deadline = time.monotonic() + min(most, max(0.0, budget.left() - 60))
    told = False
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        busy = 100 * (machine_busy_seconds() - before)
        if busy < threshold or time.monotonic() > deadline:
            return busy
        if not told:
            print(f"  the machine is {busy:.0f} % busy: waiting for it to settle", flush=True)
            told = True


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise KeyError("VmRSS")


def rss_settled(pid: int) -> float:
    """The median of three VmRSS readings 0.2 s apart, in KiB."""
    readings = []
    for _ in range(3):
        time.sleep(0.2)
        readings.append(rss_kib(pid))
    return statistics.median(readings)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Budget:
    """The run's wall-clock allowance: steps that would start past it are skipped."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def allows(self, seconds: float, what: str) -> bool:
        if self.left() >= seconds:
            return True
        print(f"  skipped (budget): {what} needs ~{seconds:.0f} s, {self.left():.0f} s left")
        return False


class Http:
    """A keep-alive HTTP/1.1 connection to one server (pouchdb-server or settee)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt == 2:
                    raise
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def close(self) -> None:
        self.conn.close()


class Settee:
    """``run.py`` in a process of its own, stopped by its PID."""

    def __init__(self, couch_url: str, workdir: Path, name: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        args = [PYTHON, str(ROOT / "run.py"), "--port", str(self.port)]
        args += ["--address", "127.0.0.1", "--couch-url", couch_url, "--log-level", "warning"]
        args += ["--processes", "1", *admin_flags(couch_url), *extra]
        self.admin = BENCH_ADMIN if admin_flags(couch_url) else None
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            wait_until_up(self.url + "/_up", timeout=20)
        except OSError:
            self.stop()
            sys.exit(f"settee did not start; its output:\n{self.log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def ws_url(self, db: str, query: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{db}/_changes?feed=websocket&{query}"

    def metric(self, name: str) -> float | None:
        with contextlib.suppress(OSError, ValueError):
            status, text = Http(self.url).call("GET", "/_metrics")
            found = re.search(rf"^{name}(?:{{[^}}]*}})? ([\d.e+]+)$", str(text), re.M)
            return float(found[1]) if status == 200 and found else None
        return None

    def complaints(self) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if re.search(r"WARNING|ERROR|CRITICAL", line)]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# -- the subscriber processes


class Clients:
    """``procs`` processes of bench/fanout_client.py, spoken to over stdin/stdout."""

    def __init__(self, procs: int) -> None:
        self.events: queue.Queue = queue.Queue()
        self.pending: list[tuple[int, dict[str, Any]]] = []
        self.procs: list[subprocess.Popen] = []
        self.active: list[int] = []  # the processes that hold subscribers now
        for index in range(procs):
            process = subprocess.Popen(
                [PYTHON, str(CLIENT)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
                preexec_fn=raise_nofile,
            )
            self.procs.append(process)
            threading.Thread(target=self._read, args=(index, process), daemon=True).start()
        self.collect("started", range(procs), timeout=30)

    def _read(self, index: int, process: subprocess.Popen) -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            with contextlib.suppress(ValueError):
                self.events.put((index, json.loads(line)))
        self.events.put((index, {"event": "exited", "rc": process.wait()}))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def send(self, index: int, command: dict[str, Any]) -> None:
        stdin = self.procs[index].stdin
        stdin.write(json.dumps(command) + "\n")  # type: ignore[union-attr]
        stdin.flush()  # type: ignore[union-attr]

    def collect(
        self, event: str, indexes: Any, timeout: float, phase: str | None = None
    ) -> dict[int, dict[str, Any]] | None:
        """One ``event`` (of ``phase``) from each of ``indexes``; None if they do not all
        come within ``timeout`` (those that came are kept for a later call)."""
        wanted = set(indexes)
        got: dict[int, dict[str, Any]] = {}

        def take(index: int, item: dict[str, Any]) -> bool:
            if (
                index in wanted
                and index not in got
                and item.get("event") == event
                and (phase is None or item.get("phase") == phase)
            ):
                got[index] = item
                return True
            if item.get("event") == "exited":
                raise RuntimeError(f"subscriber process {index} exited ({item.get('rc')})")
            return False

        self.pending = [(i, e) for i, e in self.pending if not take(i, e)]
        deadline = time.monotonic() + timeout
        while len(got) < len(wanted):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                index, item = self.events.get(timeout=left)
            except queue.Empty:
                return None
            if not take(index, item):
                self.pending.append((index, item))
        return got

    def connect(self, kind: str, url: str, count: int, timeout: float) -> dict[str, Any]:
        procs = min(len(self.procs), count)
        self.active = list(range(procs))
        for index in self.active:
            share = count // procs + (index < count % procs)
            command = {"cmd": "connect", "kind": kind, "url": url, "count": share}
            self.send(index, {**command, "concurrency": 64, "timeout": timeout})
        got = self.collect("connected", self.active, timeout + 30)
        if got is None:
            raise RuntimeError(f"{count} {kind} subscribers did not connect in {timeout} s")
        errors: Counter[str] = Counter()
        for event in got.values():
            errors.update(event["errors"])
        return {
            "ok": sum(e["ok"] for e in got.values()),
            "failed": sum(e["failed"] for e in got.values()),
            "seconds": max(e["seconds"] for e in got.values()),
            "errors": dict(errors),
        }

    def expect(self, phase: str, count: int, latency: bool = False) -> None:
        for index in self.active:
            self.send(index, {"cmd": "expect", "phase": phase, "count": count, "latency": latency})

    def wait_complete(self, phase: str, timeout: float) -> float | None:
        """When every subscriber had every row of ``phase`` (wall clock); None on timeout."""
        got = self.collect("complete", self.active, timeout, phase)
        if got is None:
            return None
        times = [e["t"] for e in got.values()]
        return None if None in times else max(times)

    def report(self, phase: str, latencies: bool = False) -> dict[str, Any]:
        for index in self.active:
            self.send(index, {"cmd": "report", "phase": phase, "latencies": latencies})
        got = self.collect("report", self.active, 60, phase)
        if got is None:
            raise RuntimeError(f"no report for {phase}")
        events = list(got.values())
        closed: Counter[str] = Counter()
        for event in events:
            closed.update(event["closed"])
        firsts = [e["first"] for e in events if e["first"] is not None]
        return {
            "subscribers": sum(e["subscribers"] for e in events),
            "complete": sum(e["complete"] for e in events),
            "missing": sum(e["missing"] for e in events),
            "rows": sum(e["rows"] for e in events),
            "dups": sum(e["dups"] for e in events),
            "first": min(firsts) if firsts else None,
            "latencies_us": [x for e in events for x in e["latencies_us"]],
            "closed": dict(closed),
        }

    def close_subscribers(self) -> None:
        for index in self.active:
            self.send(index, {"cmd": "close"})
        self.collect("closed", self.active, 60)
        self.active = []

    def stop(self) -> None:
        for process in self.procs:
            with contextlib.suppress(OSError, ValueError):
                process.stdin.write(json.dumps({"cmd": "exit"}) + "\n")  # type: ignore[union-attr]
                process.stdin.flush()  # type: ignore[union-attr]
        for process in self.procs:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


# -- writing


def doc_id(phase: str, i: int) -> str:
    return f"{phase}-{i:06d}"


def write_at_rate(pouch: Http, db: str, phase: str, rate: float, count: int) -> dict[str, Any]:
    """PUT ``count`` docs at ``rate`` per second, each stamped with its send time ``t``."""
    start = time.monotonic()
    errors = 0
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        status, _ = pouch.call("PUT", f"/{db}/{doc_id(phase, i)}", {"t": time.time(), "n": i})
        errors += status >= 300
    seconds = time.monotonic() - start
    return {"seconds": seconds, "rate": count / seconds if seconds else 0.0, "errors": errors}


def bulk(pouch: Http, db: str, phase: str, count: int) -> int:
    t = time.time()
    docs = [{"_id": doc_id(phase, i), "t": t, "n": i} for i in range(count)]
    status, answer = pouch.call("POST", f"/{db}/_bulk_docs", {"docs": docs})
    if status >= 300 or any("error" in row for row in answer):
        raise RuntimeError(f"_bulk_docs failed: {status} {str(answer)[:300]}")
    return count


def one_doc(pouch: Http, clients: Clients, db: str, phase: str, timeout: float) -> bool:
    """Write one doc and wait until every subscriber has it: they are all live."""
    clients.expect(phase, 1)
    pouch.call("PUT", f"/{db}/{doc_id(phase, 0)}", {"t": time.time()})
    done = clients.wait_complete(phase, timeout)
    report = clients.report(phase)
    return done is not None and report["missing"] == 0


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


# -- part 1


def burst_docs(args: argparse.Namespace, n: int) -> int:
    return max(50, min(args.max_burst, SUBSCRIBER_BUFFER - 10, round(args.burst_deliveries / n)))


def burst(
    args: argparse.Namespace,
    pouch: Http,
    settee: Settee,
    clients: Clients,
    db: str,
    n: int,
    phase: str,
    docs: int,
) -> dict[str, Any]:
    """One burst of ``docs`` docs; the time until all ``n`` subscribers have all of them."""
    clients.expect(phase, docs)
    quiet = wait_quiet(args.run_budget)
    meter = Meter(settee.pid, clients.pids, args.pouch_pgid)
    t0 = time.time()
    bulk(pouch, db, phase, docs)
    written = time.time() - t0
    timeout = max(60.0, n * docs / 3_000)
    done = clients.wait_complete(phase, min(timeout, max(30.0, args.budget_left())))
    elapsed = (done or time.time()) - t0
    cpu = meter.stop()
    tail = settle(settee.pid)
    report = clients.report(phase)
    delivered = report["rows"] - report["dups"]
    return {
        "docs": docs,
        "seconds": elapsed,
        "complete": done is not None and report["missing"] == 0,
        "rows_per_s": n * docs / elapsed if done else delivered / elapsed,
        "written_s": written,
        "first_s": (report["first"] - t0) if report["first"] else None,
        "settee_us_per_row": 1e6 * (cpu.pop("settee_cpu_s") + tail) / max(delivered, 1),
        "settee_tail_s": tail,
        **cpu,
        "missing": report["missing"],
        "dups": report["dups"],
        "closed": report["closed"],
        "busy_before_pct": quiet,
    }


def profile_burst(
    args: argparse.Namespace,
    pouch: Http,
    settee: Settee,
    clients: Clients,
    db: str,
    n: int,
    docs: int,
) -> dict[str, Any] | None:
    """A ``latency=0`` burst with py-spy sampling settee; the summary of its samples."""
    if not PY_SPY.exists():
        print("  profile skipped: py-spy is missing (.venv/bin/pip install py-spy)")
        return None
    out = Path(args.profile_out)
    out.unlink(missing_ok=True)
    spy = subprocess.Popen(
        [
            *(str(PY_SPY), "record", "--pid", str(settee.pid), "--rate", str(args.profile_rate)),
            *("--format", "raw", "--function", "--nonblocking", "--output", str(out)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.0)
        result = burst(args, pouch, settee, clients, db, n, f"prof{n}", docs)
    finally:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)
        try:
            said, _ = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            said, _ = spy.communicate()
    if not out.exists():
        print(f"  profile failed: py-spy said:\n{said}")
        return None
    return {"burst": result, **summarise_profile(out, args.profile_top)}


def summarise_profile(path: Path, top: int) -> dict[str, Any]:
    found = read_profile(path)
    total, own, areas, inclusive = found.total, found.own, found.areas, found.inclusive
    skip = ("asyncio/", "<frozen", "service/serving.py:", "tornado/platform/", "service/processes")
    busy = Counter({k: v for k, v in inclusive.items() if not k.startswith(skip)})

    def shares(counts: Counter[str]) -> list[tuple[str, float]]:
        return [(k, 100 * v / max(total, 1)) for k, v in counts.most_common(top)]

    return {
        "samples": total,
        "areas": shares(areas),
        "self": shares(own),
        "inclusive": shares(busy),
    }


def fanout_n(
    args: argparse.Namespace, pouch_url: str, workdir: Path, n: int, budget: Budget
) -> dict[str, Any]:
    """Part 1 at one N: memory, latency, rows/s (latency 0 and 100 ms), maybe a profile."""
    result: dict[str, Any] = {"n": n, "lat0": [], "lat100": []}
    db = f"fanout{n}"
    pouch = Http(pouch_url)
    pouch.call("PUT", f"/{db}")
    settee = Settee(pouch_url, workdir, f"settee-{n}")
    procs = args.client_procs or (1 if n <= 500 else 2)
    clients = Clients(procs)
    reference = Clients(1)
    result["client_procs"] = procs
    query = "since=now&include_docs=true"
    connect_timeout = max(60.0, n / 50)
    try:
        # One subscriber comes and goes: the upstream feed is open (and lingers 30 s).
        clients.connect("ws", settee.ws_url(db, query), 1, 30)
        if not one_doc(pouch, clients, db, f"warm{n}", 30):
            raise RuntimeError("the warm-up subscriber got nothing")
        clients.close_subscribers()
        time.sleep(1.5)
        rss0 = rss_settled(settee.pid)

        connected = clients.connect("ws", settee.ws_url(db, query), n, connect_timeout)
        result["connect"] = connected
        print(
            f"  N={n}: {connected['ok']} subscribers connected in {connected['seconds']:.1f} s "
            f"({procs} client process(es)); failed {connected['failed']} {connected['errors']}",
            flush=True,
        )
        time.sleep(2.0)
        rss1 = rss_settled(settee.pid)
        result["rss0_kib"], result["rss1_kib"] = rss0, rss1
        result["kb_per_sub"] = (rss1 - rss0) * 1.024 / n  # KiB → kB, as the baseline's
        result["kib_per_sub"] = (rss1 - rss0) / n
        if not one_doc(pouch, clients, db, f"ready{n}", 60):
            print("  warning: not every subscriber got the ready doc")

        # Latency at a fixed rate of deliveries; one continuous feed straight to pouchdb-server
        # alongside, as the reference: what the backend's own feed adds to the latency.
        rate = args.deliveries_per_s / n
        count = max(2, round(rate * args.latency_seconds))
        _, info = pouch.call("GET", f"/{db}")
        reference.connect("continuous", direct_feed_url(pouch_url, db, info, docs=True), 1, 30)
        clients.expect(f"lat{n}", count, latency=True)
        reference.expect(f"lat{n}", count, latency=True)
        quiet = wait_quiet(budget)
        meter, t0 = Meter(settee.pid, clients.pids, args.pouch_pgid), time.monotonic()
        wrote = write_at_rate(pouch, db, f"lat{n}", rate, count)
        done = clients.wait_complete(f"lat{n}", 60)
        window = time.monotonic() - t0
        cpu = meter.stop()
        reference.wait_complete(f"lat{n}", 10)
        direct = [x / 1000 for x in reference.report(f"lat{n}", latencies=True)["latencies_us"]]
        reference.close_subscribers()
        report = clients.report(f"lat{n}", latencies=True)
        lat = [x / 1000 for x in report["latencies_us"]]
        result["latency"] = {
            "rate": rate,
            "docs": count,
            "achieved_rate": wrote["rate"],
            "write_errors": wrote["errors"],
            "deliveries": len(lat),
            "deliveries_per_s": len(lat) / wrote["seconds"],
            "p50_ms": percentile(lat, 50),
            "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99),
            "max_ms": max(lat, default=float("nan")),
            "complete": done is not None and report["missing"] == 0,
            "missing": report["missing"],
            "dups": report["dups"],
            "closed": report["closed"],
            "window_s": window,
            "busy_before_pct": quiet,
            "direct_p50_ms": percentile(direct, 50),
            "direct_p99_ms": percentile(direct, 99),
            **cpu,
        }
        print(f"  N={n} latency: {fmt_latency(result['latency'])}", flush=True)

        docs = burst_docs(args, n)
        per_burst = 5 + n * docs / 10_000
        for latency, key in ((0, "lat0"), (100, "lat100")):
            if latency:
                clients.close_subscribers()
                time.sleep(1.0)
                url = settee.ws_url(db, query + "&latency=100")
                again = clients.connect("ws", url, n, connect_timeout)
                if again["failed"]:
                    print(f"  warning: {again['failed']} of {n} did not connect: {again['errors']}")
                if not one_doc(pouch, clients, db, f"ready{n}l", 60):
                    print("  warning: not every subscriber got the ready doc")
            for round_ in range(args.rounds):
                if not budget.allows(per_burst, f"N={n} latency={latency} burst {round_ + 1}"):
                    break
                phase = f"b{latency}n{n}r{round_}"
                one = burst(args, pouch, settee, clients, db, n, phase, docs)
                result[key].append(one)
                print(f"  N={n} latency={latency} burst {round_ + 1}: {fmt_burst(one)}", flush=True)
            profiled = latency == 0 and n == args.profile_n and args.profile_rate > 0
            if profiled and budget.allows(per_burst * 1.5, f"profile at N={n}"):
                result["profile"] = profile_burst(args, pouch, settee, clients, db, n, docs)
                if result["profile"]:
                    print(f"  N={n} profiled burst: {fmt_burst(result['profile']['burst'])}")
        result["slow_consumer_closes"] = settee.metric("settee_slow_consumer_closes_total")
        clients.close_subscribers()
        for ping in (10.0, 0.0):
            result[f"bare_kb_per_sub_ping{ping:g}"] = bare_memory(workdir, clients, n, ping)
    finally:
        clients.stop()
        reference.stop()
        settee.stop()
        pouch.close()
        result["settee_complaints"] = settee.complaints()[:5]
    return result


def bare_memory(workdir: Path, clients: Clients, n: int, ping: float) -> float:
    """kB per idle WebSocket on a bare Tornado server (``bench/bare_broadcaster.py``),
    measured as settee's: VmRSS with one socket come and gone, against VmRSS with ``n``."""
    port = free_port()
    log = workdir / f"bare-{n}-{ping:g}.log"
    args = [PYTHON, str(ROOT / "bench" / "bare_broadcaster.py"), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*args, "--ping", str(ping)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/_up", timeout=20)
        url = f"ws://127.0.0.1:{port}/bare/_changes"
        clients.connect("ws", url, 1, 30)
        clients.close_subscribers()
        time.sleep(1.0)
        rss0 = rss_settled(process.pid)
        clients.connect("ws", url, n, max(60.0, n / 50))
        time.sleep(2.0)
        rss1 = rss_settled(process.pid)
        clients.close_subscribers()
        kb = (rss1 - rss0) * 1.024 / n
        print(f"  N={n} bare Tornado, ping {ping:g} s: {kb:.1f} kB per idle socket", flush=True)
        return kb
    finally:
        process.terminate()
        process.wait(10)


def direct_feed_url(pouch_url: str, db: str, info: dict[str, Any], *, docs: bool) -> str:
    """A continuous feed straight to pouchdb-server, from the update_seq just read (so that
    a feed still being set up misses nothing)."""
    query = f"feed=continuous&heartbeat=10000&since={info['update_seq']}"
    return f"{pouch_url}/{db}/_changes?{query}" + ("&include_docs=true" if docs else "")


def fmt_latency(lat: dict[str, Any]) -> str:
    return (
        f"{lat['rate']:.1f} docs/s, {lat['deliveries']} deliveries "
        f"({lat['deliveries_per_s']:.0f}/s), p50 {lat['p50_ms']:.1f} ms, "
        f"p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms, missing {lat['missing']}, "
        f"(one direct feed: p50 {lat['direct_p50_ms']:.1f}, p99 {lat['direct_p99_ms']:.1f} ms), "
        f"dups {lat['dups']}; CPU %: {fmt_cpu(lat)}"
    )


def fmt_cpu(one: dict[str, Any]) -> str:
    return (
        f"settee {one['settee_cpu_pct']:.0f}, clients {one['clients_cpu_pct']:.0f}, "
        f"pouchdb {one['pouch_cpu_pct']:.0f}, others {one['others_cpu_pct']:.0f}, "
        f"machine {one['machine_cpu_pct']:.0f} of 200"
    )


def fmt_burst(one: dict[str, Any]) -> str:
    first = f"{one['first_s']:.2f}" if one["first_s"] is not None else "-"
    return (
        f"{one['docs']} docs in {one['seconds']:.2f} s → {one['rows_per_s']:,.0f} rows/s "
        f"(first row at {first} s; settee {one['settee_us_per_row']:.1f} µs/row, "
        f"{one['settee_tail_s']:.2f} s of it after the last row; CPU %: "
        f"{fmt_cpu(one)}); "
        f"missing {one['missing']}, dups {one['dups']}, closed {one['closed'] or 0}"
    )


# -- part 2


def cpu_window(
    args: argparse.Namespace,
    pouch: Http,
    pouch_pgid: int,
    db: str,
    phase: str,
    clients: Clients | None,
    settee: Settee | None,
) -> dict[str, Any]:
    """``--cpu-rate`` docs/s for ``--cpu-seconds``; pouchdb-server's CPU until all is in."""
    count = round(args.cpu_rate * args.cpu_seconds)
    if clients is not None:
        clients.expect(phase, count)
    quiet = wait_quiet(args.run_budget)
    meter = Meter(settee.pid if settee else None, clients.pids if clients else [], pouch_pgid)
    t0 = time.monotonic()
    wrote = write_at_rate(pouch, db, phase, args.cpu_rate, count)
    done = clients.wait_complete(phase, 60) if clients is not None else None
    window = time.monotonic() - t0
    cpu = meter.stop()
    cpu.pop("settee_cpu_s")
    out: dict[str, Any] = {
        "docs": count,
        "window_s": window,
        "write_rate": wrote["rate"],
        "busy_before_pct": quiet,
        **cpu,
    }
    if clients is not None:
        report = clients.report(phase)
        out.update(
            complete=done is not None and report["missing"] == 0,
            missing=report["missing"],
            rows=report["rows"],
            closed=report["closed"],
        )
    return out


def backend_cpu(args: argparse.Namespace, workdir: Path, budget: Budget) -> list[dict[str, Any]]:
    """Part 2: pouchdb-server's CPU with no feed, N settee subscribers, N direct feeds.

    A fresh pouchdb-server (and settee) per N, and the direct feeds last: pouchdb-server goes on
    serving a continuous feed after its client has gone (measured: 100 feeds closed, and the
    writes alone still cost it ~110 % instead of ~25 %, 10 s later), so any window after
    direct feeds would pay for them.
    """
    results = []
    for n in args.cpu_ns:
        if not budget.allows(3 * (args.cpu_seconds + 10), f"backend CPU at N={n}"):
            break
        server = PouchServer().start()
        pouch = Http(server.url)
        pgid = server.process.pid  # type: ignore[union-attr]
        settee = Settee(server.url, workdir, f"settee-cpu-{n}")
        clients = Clients(1)
        db = f"cpu{n}"
        row: dict[str, Any] = {"n": n}
        try:
            pouch.call("PUT", f"/{db}")
            row["none"] = cpu_window(args, pouch, pgid, db, f"none{n}", None, None)
            clients.connect("ws", settee.ws_url(db, "since=now"), n, 60)
            if not one_doc(pouch, clients, db, f"sready{n}", 30):
                print(f"  warning: not every settee subscriber got the ready doc at N={n}")
            row["settee"] = cpu_window(args, pouch, pgid, db, f"settee{n}", clients, settee)
            clients.close_subscribers()
            settee.stop()  # and its upstream feed: nothing of settee's is left in the last window
            time.sleep(1.0)
            _, info = pouch.call("GET", f"/{db}")
            clients.connect("continuous", direct_feed_url(server.url, db, info, docs=False), n, 60)
            if not one_doc(pouch, clients, db, f"dready{n}", 30):
                print(f"  warning: not every direct feed got the ready doc at N={n}")
            row["direct"] = cpu_window(args, pouch, pgid, db, f"direct{n}", clients, None)
            clients.close_subscribers()
        finally:
            clients.stop()
            settee.stop()
            pouch.close()
            server.stop()
        results.append(row)
        print(
            f"  N={n}: pouchdb-server CPU {row['none']['pouch_cpu_pct']:.1f} % (writes only), "
            f"{row['settee']['pouch_cpu_pct']:.1f} % (settee, {n} subscribers; settee "
            f"{row['settee']['settee_cpu_pct']:.1f} %), "
            f"{row['direct']['pouch_cpu_pct']:.1f} % ({n} direct feeds; writes at "
            f"{row['direct']['write_rate']:.0f}/s)",
            flush=True,
        )
    return results


# -- report


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def cpu_cells(one: dict[str, Any]) -> str:
    """settee / clients / pouchdb / others CPU % (of one core)."""
    return "{:.0f} / {:.0f} / {:.0f} / {:.0f}".format(
        one["settee_cpu_pct"], one["clients_cpu_pct"], one["pouch_cpu_pct"], one["others_cpu_pct"]
    )


def print_tables(args: argparse.Namespace, part1: list[dict[str, Any]], part2: list[dict]) -> None:
    goals: list[str] = []
    cpu_note = (
        "CPU %: of one core, over the window: settee / subscriber processes / pouchdb-server / "
        "others (the rest of the machine's busy time: other sessions' load)."
    )
    if part1:
        print("\n### Memory: settee's VmRSS, no subscriber vs N idle WebSocket subscribers\n")
        print("| N | connected in s | RSS 0 subs MiB | RSS N subs MiB | kB / idle sub | goal |")
        print("|--:|--:|--:|--:|--:|--|")
        for r in part1:
            if "kb_per_sub" not in r:
                continue
            ok = r["kb_per_sub"] <= GOALS["kb_per_sub"]
            print(
                f"| {r['n']:,} | {r['connect']['seconds']:.1f} | {r['rss0_kib'] / 1024:.1f} "
                f"| {r['rss1_kib'] / 1024:.1f} | {r['kb_per_sub']:.1f} "
                f"| ≤ {GOALS['kb_per_sub']:g}: {met(ok)} |"
            )
            goals.append(
                f"memory N={r['n']:,}: {r['kb_per_sub']:.1f} kB per idle subscriber "
                f"(goal ≤ {GOALS['kb_per_sub']:g}, baseline {BASELINE['kb_per_sub']}): {met(ok)}"
            )
        print(f"\nBaseline (bare Tornado broadcaster): {BASELINE['kb_per_sub']} kB per idle conn.")
        print("Bare Tornado WebSocket server here, same N, same run (bench/bare_broadcaster.py):")
        for r in part1:
            if "bare_kb_per_sub_ping10" in r:
                print(
                    f"- N={r['n']:,}: {r['bare_kb_per_sub_ping10']:.1f} kB with Tornado's pings "
                    f"every 10 s, {r['bare_kb_per_sub_ping0']:.1f} kB without pings; settee "
                    f"{r['kb_per_sub']:.1f} kB"
                )

        print(
            f"\n### PUT-to-receive latency at ~{args.deliveries_per_s:,.0f} deliveries/s "
            f"({args.latency_seconds:g} s of PUTs)\n"
        )
        print(
            "| N | docs/s | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | lost | dups "
            "| direct feed p50 / p99 ms | CPU % s/c/p/o | baseline p99 | goal p99 |"
        )
        print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--|")
        for r in part1:
            lat = r.get("latency")
            if not lat:
                continue
            goal = GOALS["p99_ms"].get(r["n"])
            ok = goal is not None and lat["p99_ms"] <= goal and lat["complete"]
            base = BASELINE["p99_ms"].get(r["n"], "-")
            print(
                f"| {r['n']:,} | {lat['rate']:.1f} | {lat['deliveries_per_s']:,.0f} "
                f"| {lat['p50_ms']:.1f} | {lat['p90_ms']:.1f} | {lat['p99_ms']:.1f} "
                f"| {lat['max_ms']:.1f} | {lat['missing']} | {lat['dups']} "
                f"| {lat['direct_p50_ms']:.1f} / {lat['direct_p99_ms']:.1f} "
                f"| {cpu_cells(lat)} | {base} | ≤ {goal}: {met(ok)} |"
            )
            goals.append(
                f"p99 N={r['n']:,}: {lat['p99_ms']:,.0f} ms (goal ≤ {goal}, baseline {base}), "
                f"lost {lat['missing']}: {met(ok)}"
            )
        print(f"\n{cpu_note} lost: rows missing at the end (over all subscribers).")

        print("\n### Delivered rows/s: one `_bulk_docs` burst, until every subscriber has all\n")
        print(
            "| N | latency ms | docs | rows/s by round | median rows/s | median s | first row s "
            "| settee µs/row | CPU % s/c/p/o | lost | baseline | goal |"
        )
        print("|--:|--:|--:|--|--:|--:|--:|--:|--:|--:|--:|--|")
        for r in part1:
            for key, latency in (("lat0", 0), ("lat100", 100)):
                runs = r.get(key) or []
                if not runs:
                    continue
                rates = ", ".join(f"{x['rows_per_s']:,.0f}" for x in runs)
                med = median_of(runs, "rows_per_s")
                lost = sum(x["missing"] for x in runs)
                goal = GOALS["rows_per_s"].get(r["n"])
                base = BASELINE["rows_per_s"].get(r["n"])
                ok = goal is not None and med >= goal and lost == 0
                middle = sorted(runs, key=lambda x: x["rows_per_s"])[len(runs) // 2]
                print(
                    f"| {r['n']:,} | {latency} | {runs[0]['docs']} | {rates} | {med:,.0f} "
                    f"| {median_of(runs, 'seconds'):.2f} | {median_of(runs, 'first_s'):.2f} "
                    f"| {median_of(runs, 'settee_us_per_row'):.1f} | {cpu_cells(middle)} "
                    f"| {lost} | {base:,} | ≥ {goal:,}: {met(ok)} |"
                )
                goals.append(
                    f"rows/s N={r['n']:,} latency={latency}: {med:,.0f} (goal ≥ {goal:,}, "
                    f"baseline {base:,}): {met(ok)}"
                )
        print(
            f"\n{cpu_note} (Those of the median round.) settee µs/row: settee's CPU per row "
            "delivered, including what it spends after the last row (finishing the futures and "
            "tasks of the frames it wrote). first row s: from the POST to the first row received."
        )
        for r in part1:
            if r.get("slow_consumer_closes"):
                print(f"\nN={r['n']}: settee closed {r['slow_consumer_closes']:.0f} slow consumers")
            if r.get("settee_complaints"):
                print(f"\nN={r['n']}: settee's log: {r['settee_complaints']}")

    if part2:
        print(
            f"\n### Backend CPU: pouchdb-server's CPU % at {args.cpu_rate:g} PUTs/s for "
            f"{args.cpu_seconds:g} s\n"
        )
        print(
            "| N | writes only % | via settee % | direct % | ms per PUT (none, settee, direct) "
            "| feeds' cost via settee % | feeds' cost direct % | settee's own % "
            "| PUTs/s done (none, settee, direct) | others % | lost |"
        )
        print("|--:|--:|--:|--:|--|--:|--:|--:|--|--:|--|")
        for r in part2:
            windows = [r[k] for k in ("none", "settee", "direct")]
            none, via, direct = windows
            per_doc = none["pouch_cpu_s"] / none["docs"]

            def cost(w: dict[str, Any], per_doc: float = per_doc) -> float:
                """The window's CPU beyond what its writes cost alone, in % of a core."""
                return 100 * (w["pouch_cpu_s"] - per_doc * w["docs"]) / w["window_s"]

            ms = ", ".join(f"{1000 * w['pouch_cpu_s'] / w['docs']:.1f}" for w in windows)
            rates = ", ".join(f"{w['write_rate']:.0f}" for w in windows)
            others = max(w["others_cpu_pct"] for w in windows)
            print(
                f"| {r['n']} | {none['pouch_cpu_pct']:.1f} | {via['pouch_cpu_pct']:.1f} "
                f"| {direct['pouch_cpu_pct']:.1f} | {ms} | {cost(via):+.1f} "
                f"| {cost(direct):+.1f} | {via['settee_cpu_pct']:.1f} | {rates} "
                f"| {others:.0f} | {via['missing']}, {direct['missing']} |"
            )
            if r["n"] == 500:
                ok = cost(via) <= GOALS["backend_cpu_500"]
                goals.append(
                    f"backend CPU N=500 via settee: the feeds cost pouchdb-server "
                    f"{cost(via):+.1f} % of a core (goal ≤ 5 %: {met(ok)}; "
                    f"{via['pouch_cpu_pct']:.1f} % in all, the writes alone "
                    f"{none['pouch_cpu_pct']:.1f} %); 500 direct feeds: "
                    f"{direct['pouch_cpu_pct']:.1f} % in all, {cost(direct):+.1f} % for the feeds "
                    f"(baseline {BASELINE['direct_cpu_500']:g} %)"
                )
        print(
            "\nCPU % of one core (pouchdb-server's process group) over each window: from the first "
            "PUT until every subscriber has every row. ms per PUT: its CPU time per document "
            "written. feeds' cost: the window's CPU less what its PUTs cost with no feed (ms per "
            "PUT of the writes-only window), over the window. PUTs/s done: the writer's achieved "
            "rate (a saturated server slows it). others: the most any window saw of other "
            "processes' load. lost: rows missing (settee, direct)."
        )
    for r in part1:
        if r.get("profile"):
            print_profile(r["n"], r["profile"], args)
    if goals:
        print("\n### Goals\n")
        for line in goals:
            print(f"- {line}")


def print_profile(n: int, prof: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n### Profile: py-spy, {args.profile_rate} Hz, settee during a latency=0 burst at "
        f"N={n} ({fmt_burst(prof['burst'])}); {prof['samples']} busy samples\n"
    )
    for title, key in (
        ("self time by area", "areas"),
        ("self time (top of stack)", "self"),
        ("inclusive (event-loop frames left out)", "inclusive"),
    ):
        print(f"| {title} | share |\n|---|--:|")
        for name, share in prof[key]:
            print(f"| `{name}` | {share:.1f} % |")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ns", default="100,1000,5000", help="subscriber counts, part 1")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per latency setting")
    parser.add_argument("--deliveries-per-s", type=float, default=10_000)
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    parser.add_argument("--burst-deliveries", type=float, default=300_000)
    parser.add_argument("--max-burst", type=int, default=990, help="docs per burst at most")
    parser.add_argument("--client-procs", type=int, default=0, help="0: 1 up to N=500, else 2")
    parser.add_argument("--cpu-ns", default="100,500", help="subscriber counts, part 2")
    parser.add_argument("--cpu-rate", type=float, default=50.0)
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    parser.add_argument("--profile-n", type=int, default=1000)
    parser.add_argument("--profile-rate", type=int, default=200, help="Hz; 0 skips the profile")
    parser.add_argument("--profile-top", type=int, default=20)
    parser.add_argument("--profile-out", default="/tmp/settee-fanout-profile.txt")
    parser.add_argument("--only", choices=("all", "fanout", "cpu"), default="all")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for the run")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--quick", action="store_true", help="N=100,1000; 1 round; ~2.5 min")
    args = parser.parse_args()
    if args.quick:  # smaller defaults; options given explicitly still win
        quick = {"ns": "100,1000", "rounds": 1, "latency_seconds": 5.0}
        quick.update(burst_deliveries=100_000, cpu_seconds=5.0)
        for key, value in quick.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    args.ns = [int(x) for x in args.ns.split(",") if x]
    args.cpu_ns = [int(x) for x in args.cpu_ns.split(",") if x]
    raise_nofile()
    budget = Budget(args.budget)
    args.budget_left, args.run_budget = budget.left, budget
    workdir = Path(tempfile.mkdtemp(prefix="settee-fanout-"))
    started = time.monotonic()
    print(
        f"bench/fanout.py: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)}, logs in {workdir}",
        flush=True,
    )
    part1: list[dict[str, Any]] = []
    part2: list[dict[str, Any]] = []
    if args.only in ("all", "cpu"):
        print("part 2: backend CPU", flush=True)
        part2 = backend_cpu(args, workdir, budget)
    if args.only in ("all", "fanout"):
        print("part 1: fan-out", flush=True)
        server = PouchServer().start()
        args.pouch_pgid = server.process.pid  # type: ignore[union-attr]
        try:
            for n in args.ns:
                need = 20 + n / 200 + args.latency_seconds
                if budget.allows(need, f"part 1 at N={n}"):
                    part1.append(fanout_n(args, server.url, workdir, n, budget))
        finally:
            server.stop()
    print_tables(args, part1, part2)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"part1": part1, "part2": part2}, indent=1))


if __name__ == "__main__":
    main()
