"""Prometheus metrics for the backup server and the data mover, on an optional port.

Each process gets its own registry (never the library's global one, so tests
and embedded servers do not collide).  The server counts bytes by path,
objects by outcome, failovers by reason (as the client reports them in its
commit), sessions by role, and times each data request (PUT/GET) in a
histogram; the mover's collector turns the copy manager's and the iSCSI
server's own counters into metrics at scrape time, so nothing on the copy
path changes for it.
"""
from __future__ import annotations

import re
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120)


class MetricsEndpoint:
    """An HTTP /metrics endpoint for one registry (stopped with ``close``)."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "127.0.0.1",
                 tls: tuple[str, str] | None = None):
        certfile, keyfile = tls or (None, None)
        self._http, self._thread = start_http_server(port, host, registry, certfile=certfile, keyfile=keyfile)
        self.address = f"{host}:{self._http.server_port}"
        self.scheme = "https" if tls else "http"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.bytes = Counter("serverfree_server_bytes", "bytes moved through the server, by path", ["path"],
                             registry=self.registry)
        self.objects = Counter("serverfree_server_objects", "image objects by outcome", ["outcome"],
                               registry=self.registry)
        self.failovers = Counter("serverfree_failovers", "failovers reported by clients, by reason", ["reason"],
                                 registry=self.registry)
        self.sessions = Gauge("serverfree_server_sessions", "open sessions by role", ["role"],
                              registry=self.registry)
        self.refusals = Counter("serverfree_server_refusals", "sessions refused, by message number", ["msgno"],
                                registry=self.registry)
        self.latency = Histogram("serverfree_server_request_seconds", "time to serve one data request",
                                 ["request"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.endpoint: MetricsEndpoint | None = None

    def serve(self, port: int, host: str = "127.0.0.1", tls: tuple[str, str] | None = None) -> "ServerMetrics":
        """Serve /metrics; ``tls`` (cert, key): HTTPS with the server's own certificate (every port TLS)."""
        self.endpoint = MetricsEndpoint(self.registry, port, host, tls)
        return self

    @property
    def address(self) -> str:
        return self.endpoint.address if self.endpoint else ""

    def bytes_moved(self, path: str, n: int) -> None:
        self.bytes.labels(path).inc(n)

    def close(self) -> None:
        if self.endpoint:
            self.endpoint.close()


class CountersCollector:
    """Expose ``counters()`` (name -> number) as ``serverfree_<prefix>_<name>`` counters at scrape time."""

    def __init__(self, prefix: str, counters: Callable[[], dict]):
        self.prefix, self.counters = prefix, counters

    def collect(self):  # type: ignore[no-untyped-def]
        for raw, value in sorted(self.counters().items()):
            name = re.sub(r"[^A-Za-z0-9_]", "_", str(raw))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield CounterMetricFamily(f"serverfree_{self.prefix}_{name}", f"{self.prefix} counter {name}",
                                          value=value)
            elif isinstance(value, dict):  # e.g. bytes per LUN
                fam = CounterMetricFamily(f"serverfree_{self.prefix}_{name}", f"{self.prefix} {name}",
                                          labels=["key"])
                for k, v in value.items():
                    if isinstance(v, (int, float)):
                        fam.add_metric([str(k)], v)
                yield fam


def mover_endpoint(counters: Callable[[], dict], port: int, host: str = "127.0.0.1") -> MetricsEndpoint:
    registry = CollectorRegistry()
    registry.register(CountersCollector("mover", counters))
    return MetricsEndpoint(registry, port, host)
