"""`GET /metrics`: Prometheus's text format, for every process of the server.

What the processes count (`application.metrics`) is added up over all of them
when the server runs several (prometheus-client's multiprocess mode, its files
in PROMETHEUS_MULTIPROC_DIR), else this process's own. Positions in the log are
read from the store at each scrape, as /readyz reads them (its probe, bounded
by its timeout): the head, and each follower's position and lag, wherever the
follower runs. `smartscheduler_event_store_up` is 0 when the store did not
answer in time (the positions are left out then).

With SMARTSCHEDULER_METRICS_TOKEN set, a scrape needs `Authorization: Bearer
<that token>` (401 otherwise; the scheme in any case, as RFC 7235 has it). Every
metric is shown from a fresh server's first scrape: the series yet to be counted
are shown at 0 (`web.telemetry.show_every_series`).
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request

from web import telemetry
from web.health import PROBES
from web.problems import Problem
from web.services import services

blp = Blueprint("metrics", __name__)

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


@blp.get("/metrics")
def scrape() -> Response:
    """Every metric of the server (Prometheus's text format)."""
    _authorize(services().settings.metrics_token)
    telemetry.show_every_series(current_app)
    from prometheus_client.exposition import generate_latest

    body = generate_latest(_Scrape(_counted(), _log_positions()))  # type: ignore[arg-type]
    return Response(body, headers={"Content-Type": TEXT_FORMAT, "Cache-Control": "no-store"})


def _authorize(token: str | None) -> None:
    if token is None:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip(" ").encode("utf-8", "surrogatepass"),
            token.encode("utf-8", "surrogatepass")):  # the scheme in any case (RFC 7235)
        raise Problem(401, "unauthorized", "Unauthorized",
                      "The metrics need Authorization: Bearer <the metrics token>.",
                      headers={"WWW-Authenticate": 'Bearer realm="metrics"'})


class _Scrape:
    """What one scrape shows: the families of each source, in turn."""

    def __init__(self, *sources: Iterable[Any]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Any]:
        for source in self._sources:
            yield from source


def _counted() -> Iterable[Any]:
    """What the processes counted: all of the server's, or this one's."""
    from prometheus_client import REGISTRY, multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return multiprocess.MultiProcessCollector(None).collect()
    return REGISTRY.collect()


def _log_positions() -> list[Any]:
    """The head of the log and each follower's position and lag, read now."""
    from prometheus_client.core import GaugeMetricFamily

    probe = current_app.extensions[PROBES]["eventStore"]
    state, failing = probe.outcome(probe.start(), time.monotonic())
    up = GaugeMetricFamily("smartscheduler_event_store_up",
                           "1 when the event store answered this scrape in time")
    up.add_metric([], 0 if failing else 1)
    if failing:
        return [up]
    head = GaugeMetricFamily("smartscheduler_event_store_head_position",
                             "Position of the newest event in the log")
    head.add_metric([], state["head"])
    position = GaugeMetricFamily("smartscheduler_follower_position",
                                 "Position of the last event a follower applied",
                                 labels=["follower"])
    lag = GaugeMetricFamily("smartscheduler_follower_lag_events",
                            "Events in the log a follower has yet to apply",
                            labels=["follower"])
    for follower in state["followers"]:
        position.add_metric([follower["name"]], follower["position"])
        lag.add_metric([follower["name"]], follower["lag"])
    return [up, head, position, lag]
