"""Every metric the service's processes count, in one place, for every layer.

`metrics()` holds them (prometheus-client objects): the HTTP face counts its
requests and commands and the open event streams, group commit the events of
each append, the webhooks follower its deliveries. Positions in the log (the
head, each follower's position and lag) are no counters of a process: they are
read from the store when `/metrics` is scraped (`web.metrics`).

Served by `smartscheduler serve`, the metrics of every worker process (and of
the followers process) are added up at each scrape: prometheus-client's
multiprocess mode, chosen by PROMETHEUS_MULTIPROC_DIR when the library is first
imported. The server sets that variable before it starts its processes, so the
library is imported here, on first use, never when a module is imported (the
command line imports this module before it knows it is going to serve).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
"""Seconds: a read or /healthz takes a millisecond or two, a command a few, a
request waiting on the store's outage up to its 5 s limit."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""Events per append: one command's (a cancel holds one per live assignment), up
to MAX_BATCH commands' together."""

DELIVERY_OUTCOMES = ("succeeded", "failed", "dead", "gone")
"""The outcomes of a webhook delivery attempt (`projections.webhooks.sender`): each
is shown from the start, at 0 (a labelled counter shows no sample before its
labels are first used)."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""HTTP methods counted by name; any other is counted as OTHER."""


@dataclass(frozen=True)
class Metrics:
    http_requests: Any
    http_request_duration: Any
    commands: Any
    append_batch_events: Any
    sse_streams_open: Any
    webhook_deliveries: Any


_made: list[Metrics] = []
_making = threading.Lock()


def metrics() -> Metrics:
    """The metrics of this process, made on first use (see the module's docstring).

    Counting deliveries: `metrics().webhook_deliveries.labels(outcome=...).inc()`.
    """
    if not _made:
        with _making:  # the first requests of a worker arrive on several threads
            if not _made:
                _made.append(_make())
    return _made[0]


def _make() -> Metrics:
    made = _new()
    for outcome in DELIVERY_OUTCOMES:  # at 0 in this process's files, in multiprocess mode
        made.webhook_deliveries.labels(outcome=outcome)
    return made


def _new() -> Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        http_requests=Counter(
            "smartscheduler_http_requests", "HTTP requests answered",
            ["method", "route", "status"]),
        http_request_duration=Histogram(
            "smartscheduler_http_request_duration_seconds",
            "Seconds from a request's arrival in the app to its response's head",
            ["method", "route"], buckets=LATENCY_BUCKETS),
        commands=Counter(
            "smartscheduler_commands", "Commands, by outcome: ok, replayed or the "
            "problem code", ["command", "outcome"]),
        append_batch_events=Histogram(
            "smartscheduler_append_batch_events", "Events per append transaction",
            buckets=BATCH_BUCKETS),
        sse_streams_open=Gauge(
            "smartscheduler_sse_streams_open", "Event streams open",
            multiprocess_mode="livesum"),
        webhook_deliveries=Counter(
            "smartscheduler_webhook_deliveries", "Webhook delivery attempts, by outcome",
            ["outcome"]),
    )
