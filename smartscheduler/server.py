"""`smartscheduler serve`: the HTTP server's entry point, beside the command line.

`serve` decides the server's shape from the settings and gives gunicorn its
options; gunicorn is configured in code (`smartscheduler.arbiter.Server`) and
each worker process builds the app after the fork, through the composition root
(`smartscheduler.bootstrap`). The worker class is `web.worker.Worker`.

On an SQLite file the server is several processes on one file (WAL mode): the
HTTP workers, which only serve, and one followers process, a child of the
arbiter (`smartscheduler.followers_process`), which keeps the read models and
runs the relay; the arbiter starts it again, with back-off, when it dies. The
workers share the server's stream slots (`smartscheduler.slots`). Wake-ups
between them go through `application.wakeup`. On PostgreSQL each worker runs
what the settings embed, as before (LISTEN/NOTIFY reaches every process already).
"""

from __future__ import annotations

import gc
import logging
import os

from application.persistence import eventsourcing_env, redacted
from application.settings import Settings
from application.sqlite import share_write_turn
from application.wakeup import wakeup_for
from smartscheduler.arbiter import Server
from smartscheduler.followers_process import Followers
from smartscheduler.observability import logger_class, metrics_files, worker_exited
from smartscheduler.slots import SharedSlots
from web.worker import Worker

log = logging.getLogger(__name__)

THREADS = 16
"""Threads per worker process, for requests."""

WORKER_CONNECTIONS = 10_000
"""Connections a worker process holds open at most (idle, half-open, streams)."""


def prepare_storage(settings: Settings) -> None:
    """Create the schema and tables once, in the master, before the workers boot.

    Workers booting side by side on a fresh PostgreSQL schema would race on
    CREATE SCHEMA/TABLE IF NOT EXISTS (a unique violation in the catalog), and
    gunicorn stops the whole server when a worker fails to boot.
    """
    from smartscheduler.bootstrap import build_services

    build_services(settings, run_projections=False, run_relay=False).close()


def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
          workers: int | None = None, threads: int | None = None) -> int:
    if settings.is_production and settings.problems():
        log.error("Refusing to start in production: %s", "; ".join(settings.problems()))
        return 2
    host = host or os.environ.get("HOST") or "127.0.0.1"
    port = port or int(os.environ.get("PORT") or 8000)
    if workers is None:
        workers = max(2, os.cpu_count() or 1)
    followers, slots, worker_settings = None, None, settings
    if wakeup_for(settings.database_url) is not None:  # an SQLite file: see the docstring
        views = settings.embedded_projections
        relay = settings.embedded_relay and bool(settings.redis_url)
        webhooks = settings.webhooks and settings.embedded_webhooks
        if views or relay or webhooks:
            followers = Followers(settings, views=views, relay=relay, webhooks=webhooks)
        worker_settings = settings.with_(embedded_projections=False, embedded_relay=False,
                                         embedded_webhooks=False)
        slots = SharedSlots(settings.max_streams)
        share_write_turn(eventsourcing_env(settings.database_url)["SQLITE_DBNAME"])
    elif "SQLITE_DBNAME" in eventsourcing_env(settings.database_url):
        workers = 1  # in memory (or a file: URI): one process, which runs everything
    if settings.uses_development_secret:
        log.warning("No SMARTSCHEDULER_JWT_SECRET: tokens are signed with the public "
                    "development secret (refused when SMARTSCHEDULER_ENV=production).")
    log.info("Get a token with: .venv/bin/smartscheduler token --role Dispatcher")
    log.info("Serving on http://%s:%s (API docs at /docs); database %s",
             host, port, redacted(settings.database_url))
    log.info("%s HTTP worker process(es)%s", workers,
             f"; {followers.description} in a followers process" if followers else "")
    prepare_storage(settings)
    server = Server(worker_settings, {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": Worker,
        # Threads carry requests only: a request's head is read by the worker's main
        # loop before a thread takes it, and an event stream gives its thread back
        # after its replay (web/worker.py). Few threads per process serve best.
        "threads": threads or THREADS,
        # Idle, half-open and streaming connections cost a descriptor each, no thread.
        "worker_connections": WORKER_CONNECTIONS,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "preload_app": False,
        "accesslog": "-",
        "logger_class": logger_class(settings.log_format),
        "child_exit": worker_exited,
        # gunicorn 27's control socket sits at one path per user: servers side by
        # side would take it from each other. Nothing here uses it.
        "control_socket_disable": True,
        "loglevel": "info",
    }, followers=followers, stream_slots=slots)
    try:
        with metrics_files():  # before any worker is forked
            server.run()  # until SIGTERM/SIGINT: gunicorn exits through SystemExit
    finally:
        if slots is not None:
            slots.close()
        gc.freeze()  # exiting: skip the last full collection (0.3 s of the stop)
    return 0
