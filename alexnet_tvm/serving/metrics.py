"""Prometheus metrics of one server, in their own registry (two servers in one process, as in
tests, must not share counters)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: request latency buckets in seconds: a batch-1 AlexNet call is a few ms, a queued batch-16 one 100s of ms
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)


class ServeMetrics:
    """Requests and errors by code, latency, batch sizes, padding and queue depth."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("alexnet_serve_requests", "HTTP requests answered, by route and status code",
                                ["route", "code"], registry=r)
        self.errors = Counter("alexnet_serve_errors", "HTTP requests answered with an error, by status code",
                              ["code"], registry=r)
        self.latency = Histogram("alexnet_serve_request_duration_seconds", "Time from request to answer",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("alexnet_serve_batch_size", "Rows gathered into one dispatch (before padding)",
                                    ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.padding = Counter("alexnet_serve_padding_rows", "Rows of padding run to fill an artifact's batch",
                               ["model"], registry=r)
        self.disconnects = Counter("alexnet_serve_client_disconnects", "Requests whose client hung up before "
                                   "sending the whole body (not answered, not counted as requests)", ["route"],
                                   registry=r)
        self.queue_depth = Gauge("alexnet_serve_queue_depth", "Requests accepted and waiting to run",
                                 ["model"], registry=r)

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        if code >= 400:
            self.errors.labels(str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
