"""`smartscheduler serve`: the HTTP server's entry point, beside the command line.

gunicorn is configured in code; each worker process builds the app after the fork
(`Server.load`), through the composition root (`smartscheduler.bootstrap`).

On an SQLite file the server is several processes on one file (WAL mode): the
HTTP workers, which only serve, and one followers process, a child of the
arbiter (`Followers`), which keeps the read models and runs the relay; the
arbiter starts it again, with back-off, when it dies. Wake-ups between them go
through `application.wakeup`. On PostgreSQL each worker runs what the settings
embed, as before (LISTEN/NOTIFY reaches every process already).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from application.persistence import eventsourcing_env, redacted
from application.settings import Settings
from application.sqlite import share_write_turn
from application.wakeup import wakeup_for
from web.worker import AccessLogInThread, Worker

log = logging.getLogger(__name__)

THREADS = 16
"""Threads per worker process, for requests."""

WORKER_CONNECTIONS = 10_000
"""Connections a worker process holds open at most (idle, half-open, streams)."""


FOLLOWERS_BACKOFF = (1.0, 30.0)
"""Seconds before the followers process is started again after it died: the first
wait, doubling up to the second."""

FOLLOWERS_STEADY = 60.0
"""Seconds a followers process must have run for its death to count as a first one
(the back-off starts again from its first wait)."""


class Server(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code; `load` runs after the fork, in each worker.

    `followers`: the followers process the arbiter keeps (SQLite); `stream_slots`:
    the stream slots the workers share (SQLite: as many as one process had)."""

    def __init__(self, settings: Settings, options: dict[str, Any], *,
                 followers: Followers | None = None,
                 stream_slots: SharedSlots | None = None) -> None:
        self.settings = settings
        self.options = options
        self.followers = followers
        self.stream_slots = stream_slots
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from smartscheduler.bootstrap import create_app

        app = create_app(self.settings)
        if self.stream_slots is not None:
            # In place of the app's own semaphore (web.app): the server's limit.
            app.extensions["smartscheduler.streams"] = self.stream_slots
        return app

    def run(self) -> None:
        try:
            ServerArbiter(self).run()
        except RuntimeError as error:  # as gunicorn's BaseApplication.run
            print(f"\nError: {error}\n", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)


class ServerArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter, which also keeps the server's followers process running.

    The followers process is a child like the workers, reaped the way gunicorn
    reaps its dirty arbiter: by its own pid first, since gunicorn's waitpid(-1)
    takes any child (when it takes this one first, the pid is found gone).
    """

    def __init__(self, app: Server) -> None:
        self.followers = app.followers
        super().__init__(app)

    def start(self) -> None:
        super().start()
        if self.followers is not None:
            self.followers.spawn(self)

    def handle_chld(self) -> None:
        if self.followers is not None:
            self.followers.reap(self)
        super().handle_chld()

    handle_cld = handle_chld

    def reap_workers(self) -> None:
        if self.followers is not None:
            self.followers.reap(self)
        super().reap_workers()
        if self.followers is not None:
            self.followers.reap(self)

    def manage_workers(self) -> None:
        super().manage_workers()
        if self.followers is not None:
            self.followers.maintain(self)

    def stop(self, graceful: bool = True) -> None:
        """The workers and the followers stop side by side, within the graceful timeout."""
        if self.followers is not None:
            self.followers.stop(self)
        super().stop(graceful)
        if self.followers is not None:
            self.followers.wait(self)


class Followers:
    """The read-model runner and the relay, in one child process of the arbiter.

    The process runs `smartscheduler.cli.run_followers` (what `projections run`
    and `relay` run) and stops cleanly on SIGTERM, or when the arbiter is gone.
    When it dies otherwise it is logged and started again after a back-off
    (FOLLOWERS_BACKOFF): each follower resumes from its recorded position.
    """

    def __init__(self, settings: Settings, *, views: bool, relay: bool) -> None:
        self.settings = settings
        self.views = views
        self.relay = relay
        self.pid = 0
        self._started = 0.0
        self._backoff = FOLLOWERS_BACKOFF[0]
        self._due = 0.0
        self._stopping = False
        self._stop_deadline = 0.0

    @property
    def description(self) -> str:
        parts = (["the read models"] if self.views else []) + (
            ["the relay"] if self.relay else [])
        return " and ".join(parts)

    def spawn(self, arbiter: ServerArbiter) -> None:
        pid = os.fork()
        if pid:
            self.pid, self._started = pid, time.monotonic()
            arbiter.log.info("Followers process started (pid: %s): %s", pid,
                             self.description)
            return
        self._run_child(arbiter)  # never returns

    def reap(self, arbiter: ServerArbiter) -> None:
        if not self.pid:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by gunicorn's waitpid(-1): status unknown
            pid, status = self.pid, -1
        if pid:
            self._exited(arbiter, status)

    def maintain(self, arbiter: ServerArbiter) -> None:
        """Start the process again once its back-off is over."""
        if not self.pid and not self._stopping and time.monotonic() >= self._due:
            self.spawn(arbiter)

    def stop(self, arbiter: ServerArbiter) -> None:
        """SIGTERM: it finishes the batch in hand and records its position."""
        if not self._stopping:
            self._stopping = True
            self._stop_deadline = time.monotonic() + arbiter.cfg.graceful_timeout
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def wait(self, arbiter: ServerArbiter) -> None:
        """Until it has exited; SIGKILL once the graceful timeout is over."""
        while self.pid and time.monotonic() < self._stop_deadline:
            self.reap(arbiter)
            if self.pid:
                time.sleep(0.02)
        if self.pid:
            arbiter.log.warning("Followers process (pid: %s) did not stop in time; killing "
                                "it", self.pid)
            try:
                os.kill(self.pid, signal.SIGKILL)
                _, status = os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                status = -1
            self._exited(arbiter, status)

    def _exited(self, arbiter: ServerArbiter, status: int) -> None:
        pid, lived = self.pid, time.monotonic() - self._started
        self.pid = 0
        how = _exit_status(status)
        if self._stopping:
            arbiter.log.info("Followers process (pid: %s) stopped (%s)", pid, how)
            return
        if lived >= FOLLOWERS_STEADY:
            self._backoff = FOLLOWERS_BACKOFF[0]
        self._due = time.monotonic() + self._backoff
        arbiter.log.error("Followers process (pid: %s) %s after %.1fs; starting it again "
                          "in %.1fs", pid, how, lived, self._backoff)
        self._backoff = min(self._backoff * 2, FOLLOWERS_BACKOFF[1])

    def _run_child(self, arbiter: ServerArbiter) -> None:
        """In the forked child: leave the arbiter's sockets and signals, follow the log
        until stopped, and exit without returning into gunicorn's code."""
        code = 1
        try:
            for listener in arbiter.LISTENERS:
                listener.close()
            for worker in arbiter.WORKERS.values():
                worker.tmp.close()
            for sig in (*arbiter.SIGNALS, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            util._setproctitle(f"followers [{arbiter.proc_name}]")
            _name_process("followers")
            from smartscheduler.cli import run_followers

            code = run_followers(self.settings, views=self.views, relay=self.relay,
                                 parent=arbiter.pid)
        except BaseException:
            log.exception("The followers process failed")
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # exiting anyway
                    stream.flush()
            os._exit(code)


def _exit_status(status: int) -> str:
    if status < 0:
        return "exited"
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"was killed by {name}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def _name_process(name: str) -> None:
    """The process's name as `ps -o comm` and /proc/<pid>/comm show it (Linux)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(name[:15])


class SharedSlots:
    """Slots shared by the processes forked from the one that made them: at most
    `size` held at once across all of them. A stand-in for the app's
    BoundedSemaphore (`acquire(blocking=False)`, `release()`).

    Slot i is byte i of an unnamed file, held with a POSIX record lock, so a
    worker that dies frees its slots with its locks. Record locks belong to a
    process, not to a thread: a process keeps track of the slots its threads hold.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._file = tempfile.TemporaryFile()  # noqa: SIM115  (open for the server's life)
        self._held: set[int] = set()
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = False, timeout: float | None = None) -> bool:
        """Take a free slot if there is one (never waits for one)."""
        with self._lock:
            for slot in range(self.size):
                if slot in self._held:
                    continue
                try:
                    fcntl.lockf(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError as error:
                    if error.errno in (errno.EACCES, errno.EAGAIN):
                        continue  # another worker holds it
                    raise
                self._held.add(slot)
                return True
        return False

    def release(self) -> None:
        with self._lock:
            if not self._held:
                raise ValueError("SharedSlots released too many times")
            slot = self._held.pop()
            fcntl.lockf(self._file.fileno(), fcntl.LOCK_UN, 1, slot)

    def close(self) -> None:
        self._file.close()


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
        if views or relay:
            followers = Followers(settings, views=views, relay=relay)
        worker_settings = settings.with_(embedded_projections=False, embedded_relay=False)
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
        "logger_class": AccessLogInThread,
        # gunicorn 27's control socket sits at one path per user: servers side by
        # side would take it from each other. Nothing here uses it.
        "control_socket_disable": True,
        "loglevel": "info",
    }, followers=followers, stream_slots=slots)
    try:
        server.run()  # until SIGTERM/SIGINT: gunicorn exits through SystemExit
    finally:
        if slots is not None:
            slots.close()
        gc.freeze()  # exiting: skip the last full collection (0.3 s of the stop)
    return 0
