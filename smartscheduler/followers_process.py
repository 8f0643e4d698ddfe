"""The server's followers process: the read models and the relay, beside the workers.

On an SQLite file the HTTP workers only serve; one more child of the arbiter, the
followers process, keeps the read models and runs the relay (the same code as
`smartscheduler projections run` and `relay`: `smartscheduler.following`). The
arbiter (`smartscheduler.arbiter.ServerArbiter`) calls `Followers` to start it,
reap it, start it again after a back-off when it dies (`projections.following.backoff`:
FOLLOWERS_BACKOFF), and stop it with the server. Each follower resumes from its
recorded position, so a restart loses and doubles nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

from gunicorn import util

from application.settings import Settings
from projections.following.backoff import Backoff

if TYPE_CHECKING:
    from smartscheduler.arbiter import ServerArbiter

log = logging.getLogger("smartscheduler.server")  # the server's log, as before the split

FOLLOWERS_BACKOFF = (1.0, 30.0)
"""Seconds before the followers process is started again after it died: the first
wait, doubling up to the second."""

FOLLOWERS_STEADY = 60.0
"""Seconds a followers process must have run for its death to count as a first one
(the back-off starts again from its first wait)."""


class Followers:
    """The read-model runner and the relay, in one child process of the arbiter.

    The process runs `smartscheduler.following.run_followers` (what `projections run`
    and `relay` run) and stops cleanly on SIGTERM, or when the arbiter is gone.
    When it dies otherwise it is logged and started again after a back-off
    (FOLLOWERS_BACKOFF): each follower resumes from its recorded position.
    """

    def __init__(self, settings: Settings, *, views: bool, relay: bool,
                 webhooks: bool = False) -> None:
        self.settings = settings
        self.views = views
        self.relay = relay
        self.webhooks = webhooks
        self.pid = 0
        self._started = 0.0
        first, most = FOLLOWERS_BACKOFF
        self._backoff = Backoff(most, first=first)
        self._due = 0.0
        self._stopping = False
        self._stop_deadline = 0.0

    @property
    def description(self) -> str:
        parts = (["the read models"] if self.views else []) + (
            ["the relay"] if self.relay else []) + (
            ["the webhooks"] if self.webhooks else [])
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
            self._backoff.succeeded()
        wait = self._backoff.failed()
        self._due = time.monotonic() + wait
        arbiter.log.error("Followers process (pid: %s) %s after %.1fs; starting it again "
                          "in %.1fs", pid, how, lived, wait)

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
            from smartscheduler.following import run_followers

            code = run_followers(self.settings, views=self.views, relay=self.relay,
                                 parent=arbiter.pid, webhooks=self.webhooks)
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
