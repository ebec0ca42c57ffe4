"""What ``/_metrics`` reports, in a registry of the application's own (no global state)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from .couch.cluster import Cluster
    from .hub import Hub
    from .inflight import InFlight

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The service's counters, gauges and histograms."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # The labelled children, looked up once each: labels() takes a lock and checks the
        # values on every call, and observe() runs for every request.
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[str, Any] = {}
        self.requests = Counter(
            "settee_requests",
            "HTTP requests answered, by route, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "settee_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "settee_requests_in_flight", "HTTP requests being answered", registry=self.registry
        )
        self.backend_errors = Counter(
            "settee_backend_errors",
            "Backend calls that failed: unavailable, or a 5xx answer",
            ("kind",),
            registry=self.registry,
        )

    def watch_in_flight(self, in_flight: InFlight) -> None:
        """Report the requests being answered, read from ``in_flight`` when scraped (no lock
        taken per request)."""
        self.in_flight.set_function(lambda: in_flight.count)

    def watch_hub(self, hub: Hub) -> None:
        """Report the hub's subscribers, upstream feeds and deliveries."""
        self.registry.register(HubCollector(hub))

    def watch_cluster(self, cluster: Cluster) -> None:
        """Report which of a cluster's nodes are up, their failures, and the retries."""
        self.registry.register(ClusterCollector(cluster))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        timer = self._timed.get(route)
        if timer is None:
            timer = self._timed[route] = self.latency.labels(route)
        timer.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HubCollector:
    """Reads the hub's counts when /_metrics is scraped (the hub keeps plain integers)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        subscribers = GaugeMetricFamily(
            "settee_subscribers", "Open changes subscribers, by feed type", labels=("feed",)
        )
        for kind, count in sorted(hub.stats.subscribers_by_kind.items()):
            subscribers.add_metric((kind,), count)
        yield subscribers
        yield GaugeMetricFamily(
            "settee_upstream_feeds", "Upstream _changes feeds open", value=len(hub.upstreams)
        )
        counters = (
            ("settee_upstream_feeds_started", "Upstream feeds started", hub.upstreams_started),
            ("settee_upstream_reconnects", "Upstream feed reconnections", hub.reconnects),
            (
                "settee_slow_consumer_closes",
                "Subscribers closed for falling behind",
                hub.stats.slow_consumer_closes,
            ),
            ("settee_frames_sent", "Change rows sent to subscribers", hub.stats.frames_sent),
        )
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value=value)


class ClusterCollector:
    """Reads a cluster's node states when /_metrics is scraped."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "settee_upstream_node_up", "Whether a CouchDB node is taken as up", labels=("node",)
        )
        failures = CounterMetricFamily(
            "settee_upstream_node_failures", "Requests a CouchDB node failed", labels=("node",)
        )
        for url, node in self.cluster.nodes.items():
            up.add_metric((url,), int(node.up))
            failures.add_metric((url,), node.failures)
        yield up
        yield failures
        yield CounterMetricFamily(
            "settee_upstream_retries",
            "Requests sent again to another node after one failed",
            value=self.cluster.retried,
        )
