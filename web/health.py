"""Liveness and readiness.

`/healthz` touches nothing but the process. `/readyz` runs named checks; a check
that needs a server (the event store, Redis) runs its probe in a thread of its
own and waits for it at most PROBE_TIMEOUT, whatever the driver does: a probe
still running from an earlier call is waited on again, never started twice, so
a hung store cannot pile up threads. Each check is `{"status": "ok" | "failing",
...}`; any failing check makes the answer 503.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from flask import Blueprint, current_app
from flask.blueprints import BlueprintSetupState

from projections.following.status import describe_error
from web.services import EXTENSION, Services, services

blp = Blueprint("health", __name__)

PROBE_TIMEOUT = 2.0
"""Seconds /readyz waits for the store's answer (the contract's 2 s)."""

REDIS_TIMEOUT = 1.0
"""Seconds /readyz waits for Redis's PONG (socket timeouts of the probe's client too)."""

PROBES = "smartscheduler.readiness"


class Probe:
    """Runs `probe` in a thread of its own, one run at a time."""

    def __init__(self, name: str, probe: Callable[[], Any], timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self._probe = probe
        self._lock = threading.Lock()
        self._running: Future[Any] | None = None

    def start(self) -> Future[Any]:
        """The run in flight, or a new one."""
        with self._lock:
            if self._running is None or self._running.done():
                future: Future[Any] = Future()
                future.set_running_or_notify_cancel()
                threading.Thread(target=self._run, args=(future,), daemon=True,
                                 name=f"readyz-{self.name}").start()
                self._running = future
            return self._running

    def _run(self, future: Future[Any]) -> None:
        try:
            future.set_result(self._probe())
        except BaseException as error:  # reported by the check, never raised here
            future.set_exception(error)

    def outcome(self, future: Future[Any], since: float) -> tuple[Any, dict[str, Any] | None]:
        """(the probe's value, None), or (None, the failing check) once `timeout`
        has passed since `since` (a time.monotonic())."""
        try:
            remaining = max(0.0, since + self.timeout - time.monotonic())
            return future.result(timeout=remaining), None
        except FutureTimeout:
            return None, {"status": "failing",
                          "error": f"no answer within {self.timeout:g} s"}
        except Exception as error:  # any failure of the probe means: not ready
            return None, {"status": "failing", "error": describe_error(error)}


def _store_state(services: Services) -> dict[str, Any]:
    """Everything readiness reads from the store, read in the probe's thread (a
    check that needs the store reads it here, so that it is bounded too)."""
    head = services.app.head_position()
    check_writable = getattr(services.app.recorder, "check_writable", None)
    if check_writable is not None:
        check_writable()  # SQLite: a writer's lock blocks no reader
    state: dict[str, Any] = {"head": head, "followers": services.followers(head)}
    if services.runner is not None:
        state["readModelsPosition"] = services.views.position()
    return state


def _redis_ping(url: str) -> Callable[[], Any]:
    """PING on a connection of its own, closed after: no client outlives the app."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    def ping() -> Any:
        with redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                  socket_connect_timeout=REDIS_TIMEOUT,
                                  retry=Retry(NoBackoff(), 0)) as client:
            return client.ping()

    return ping


@blp.record_once
def _install(state: BlueprintSetupState) -> None:
    """The app's probes, made when the app is built (one of each per process)."""
    app = state.app
    services: Services = app.extensions[EXTENSION]
    probes = {"eventStore": Probe("eventStore", lambda: _store_state(services),
                                  PROBE_TIMEOUT)}
    if services.settings.redis_url:
        probes["redis"] = Probe("redis", _redis_ping(services.settings.redis_url),
                                REDIS_TIMEOUT)
    app.extensions[PROBES] = probes


@blp.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process is up (nothing else is looked at)."""
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> Any:
    """The event store answers (and takes writes), Redis answers when configured,
    the in-process read models are being kept, and no follower of the log is stuck."""
    checks = readiness(services(), current_app.extensions[PROBES])
    ready = all(check["status"] == "ok" for check in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return body, 200 if ready else 503


def readiness(services: Services, probes: dict[str, Probe]) -> dict[str, Any]:
    """Each check by name, with its status: the probes run all at once, each
    within its own timeout."""
    since = time.monotonic()
    running = {name: probe.start() for name, probe in probes.items()}
    checks: dict[str, Any] = {}
    store, failing = probes["eventStore"].outcome(running["eventStore"], since)
    checks["eventStore"] = failing or {"status": "ok", "head": store["head"]}
    if "redis" in probes:
        _, failing = probes["redis"].outcome(running["redis"], since)
        checks["redis"] = failing or {"status": "ok"}
    if services.runner is not None:
        alive = services.runner.is_running
        position = store.get("readModelsPosition") if store else None
        lag = store["head"] - position if store and position is not None else None
        checks["readModels"] = {"status": "ok" if alive else "failing",
                                "position": position, "lag": lag}
    if store is not None:
        # Wherever they run: a follower stuck on one error, or not moving while
        # behind, for SMARTSCHEDULER_STUCK_AFTER seconds (projections.following.status).
        followers = store["followers"]
        stuck = [f["name"] for f in followers if f["status"] == "stuck"]
        checks["followers"] = {"status": "failing" if stuck else "ok", "stuck": stuck,
                               "followers": followers}
    return checks
