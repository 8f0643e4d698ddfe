"""Following the log in this process until it is told to stop.

`run_followers` runs the read-model runner, the relay, or both, until SIGTERM or
SIGINT: it is `smartscheduler projections run`, `smartscheduler relay`, and the
server's followers process (`smartscheduler.followers_process`), which passes the
arbiter's pid so that the followers stop too when the server is gone. A stop is
clean: each follower finishes the batch in hand and records its position.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from application.persistence import redacted
from application.settings import Settings
from projections.following.follower import LogFollower
from smartscheduler.bootstrap import Services, build_services

log = logging.getLogger("smartscheduler")


def run_followers(settings: Settings, *, views: bool, relay: bool,
                  parent: int | None = None, webhooks: bool = False) -> int:
    """Follow the log in this process until SIGTERM or SIGINT: the read models
    (`projections run`), the relay (`relay`), or both (the followers process of an
    embedded server, `smartscheduler.followers_process`, which passes its `parent`: the
    followers stop too when that process is gone). Each follower stops after the
    batch in hand, with its position recorded."""
    stop = _stop_requested()
    if parent is not None:
        # Its server stops it with SIGTERM. A Ctrl-C reaches the whole process group:
        # taken here as well, the server's SIGTERM would then be a second signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    services = build_services(settings, run_projections=views, run_relay=relay,
                              run_webhooks=webhooks)
    following: list[tuple[LogFollower, str]] = []
    if services.runner is not None:
        log.info("Read models: following the log from position %s.",
                 services.views.position())
        following.append((services.runner, "Read models"))
    if services.relay is not None:
        log.info("Relay: publishing from position %s to %s.", services.relay.position(),
                 redacted(settings.redis_url or ""))
        following.append((services.relay, "Relay"))
    if services.webhook_follower is not None:
        log.info("Webhooks: delivering from position %s.",
                 services.webhook_follower.position())
        following.append((services.webhook_follower, "Webhooks"))
    _until_signalled(stop, parent)
    _stop_following(services, following)
    return 0


def _stop_requested() -> threading.Event:
    """An event the first SIGTERM or SIGINT sets; a second one ends the process at once.

    Installed before the services are built, so that a stop while they start is a
    clean stop too.
    """
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log.info("Received %s; stopping after the current batch.",
                 signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _until_signalled(stop: threading.Event, parent: int | None = None) -> None:
    """Block until SIGTERM or SIGINT (see `_stop_requested`), or until the process
    `parent` is no longer this one's parent (it died: nobody would stop this one)."""
    while not stop.wait(1.0):
        if parent is not None and os.getppid() != parent:
            log.warning("The server (pid %s) is gone; stopping.", parent)
            return


def _stop_following(services: Services, following: list[tuple[LogFollower, str]]) -> None:
    """Stop the followers (each finishes the batch in hand and records its
    position), read those positions while the store is still open, then close
    everything."""
    stopped = []
    for follower, name in following:
        follower.stop()
        try:
            position: int | str = follower.position()
        except Exception as error:  # the store is down: the next run reads it again
            position = f"unknown ({type(error).__name__})"
        stopped.append((name, position))
    services.close()
    for name, position in stopped:
        log.info("%s: stopped at position %s.", name, position)
