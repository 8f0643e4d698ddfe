"""Wake-ups between the processes that share one SQLite file.

PostgreSQL tells every process of a commit (LISTEN/NOTIFY); SQLite tells no
one, so its followers poll. This module carries "look again" between the
processes of one host, through Unix datagram sockets in a directory beside the
database file (`<file>-wakeup/`), one subdirectory per channel:

- `appended`: events were appended (the recorder, after its commit): woken
  subscriptions (read models, relay, the SSE hub) read the log now;
- `advanced`: the read models committed a batch: read-your-writes waits look
  at their position now.

A process listens on a channel by binding a socket of its own in the channel's
directory; `notify` sends a one-byte datagram to every other socket there,
without blocking, and removes the sockets whose process is gone (refused). A
thread per listening process calls the channel's callback. A wake-up carries
no data: one lost (a receiver's buffer full: it is awake anyway) or not sent
(the directory cannot be used) costs the receiver its next poll, never an event.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from application.persistence import eventsourcing_env

log = logging.getLogger(__name__)

APPENDED = "appended"
ADVANCED = "advanced"

SUFFIX = "-wakeup"
"""The directory's name: the database file's, with this appended."""

_MAX_ADDRESS = 107
"""Bytes of a Unix socket's path (108 with the terminating NUL on Linux); a longer
one is reached through /proc/self/fd/<the directory's descriptor>/<name>."""


_sending: socket.socket | None = None
_sending_lock = threading.Lock()


def _sender() -> socket.socket:
    """The process's one socket for sending wake-ups (unbound, non-blocking): a
    Wakeup that only sends holds nothing that needs closing."""
    global _sending
    if _sending is None:
        with _sending_lock:
            if _sending is None:
                sending = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sending.setblocking(False)
                atexit.register(sending.close)
                _sending = sending
    return _sending


PEERS_FOR = 1.0
"""Seconds a listing of a channel's listeners is used while the directory seems
unchanged."""


def wakeup_for(database_url: str) -> Wakeup | None:
    """The wake-ups of the SQLite file the URL names; None for any other store
    (PostgreSQL has its own; an in-memory SQLite has one process only)."""
    env = eventsourcing_env(database_url)
    path = env.get("SQLITE_DBNAME")
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Wakeup(path + SUFFIX)


class Wakeup:
    """Sends and receives wake-ups on the channels of one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._dir_fds: dict[str, int] = {}
        self._fds_lock = threading.Lock()
        self._listeners: dict[str, tuple[socket.socket, str, Callable[[], None]]] = {}
        self._own: set[str] = set()
        self._peers_of: dict[str, tuple[int, float, list[tuple[str, str]]]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = -1, -1
        self._closed = False
        self._warned = False

    # Sending ------------------------------------------------------------------

    def notify(self, channel: str) -> None:
        """Wake every other listener of the channel; never blocks, never raises."""
        if self._closed:
            return
        try:
            peers = self._peers(channel)
        except OSError:  # nobody listens yet (or the directory went away)
            return
        sender = _sender()
        for name, address in peers:
            try:
                sender.sendto(b"!", address)
            except BlockingIOError:  # its buffer is full: it has wake-ups to read
                pass
            except ConnectionRefusedError:  # its process is gone
                with contextlib.suppress(OSError):
                    os.unlink(self.directory / channel / name)
            except OSError as error:  # removed meanwhile, or not a socket: skip it
                if error.errno != errno.ENOENT:
                    log.debug("Wake-up to %s/%s failed: %s", channel, name, error)

    # Receiving ----------------------------------------------------------------

    def listen(self, callbacks: Mapping[str, Callable[[], None]]) -> None:
        """Bind a socket on each channel and call its callback whenever woken, in a
        thread of this process, until `close`. Once per object.

        A channel whose socket cannot be bound (no such directory can be made, a
        path too long without /proc) is logged once and left to the polls.
        """
        with self._lock:
            if self._thread is not None or self._closed:
                raise RuntimeError("this Wakeup listens already, or is closed")
            for channel, callback in callbacks.items():
                try:
                    self._bind(channel, callback)
                except OSError as error:
                    self._warn(f"cannot listen on {self.directory / channel} ({error})")
            if not self._listeners:
                return
            self._stop_r, self._stop_w = os.pipe()
            self._thread = threading.Thread(target=self._receive, daemon=True,
                                            name="wakeup-receiver")
            self._thread.start()

    def close(self) -> None:
        """Stop listening and remove this process's sockets."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            os.write(self._stop_w, b"x")
            thread.join(5)
        for channel, (sock, name, _) in self._listeners.items():
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.directory / channel / name)
        self._listeners.clear()
        with self._fds_lock:
            for fd in (self._stop_r, self._stop_w, *self._dir_fds.values()):
                if fd >= 0:
                    os.close(fd)
            self._dir_fds.clear()

    def _bind(self, channel: str, callback: Callable[[], None]) -> None:
        path = self.directory / channel
        path.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(self._address(channel, name))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._own.add(name)
        self._listeners[channel] = (sock, name, callback)

    def _receive(self) -> None:
        poller = select.poll()
        poller.register(self._stop_r, select.POLLIN)
        by_fd = {sock.fileno(): (sock, callback)
                 for sock, _, callback in self._listeners.values()}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == self._stop_r:
                    return
                sock, callback = by_fd[fd]
                with contextlib.suppress(BlockingIOError):
                    while sock.recv(64):  # every wake-up pending is answered by one call
                        pass
                try:
                    callback()
                except Exception:  # a wake-up is never worth the thread
                    log.exception("A wake-up callback failed")

    # Addresses ----------------------------------------------------------------

    def _peers(self, channel: str) -> list[tuple[str, str]]:
        """The other listeners of `channel`, (name, address): listed again only when
        the directory changed (a stat is cheaper than a listing, once per append)."""
        directory = self.directory / channel
        changed, now = os.stat(directory).st_mtime_ns, time.monotonic()
        cached = self._peers_of.get(channel)
        # Also listed again every PEERS_FOR: a directory's time may not move for two
        # changes within one tick of the kernel's clock.
        if cached is not None and cached[0] == changed and now - cached[1] < PEERS_FOR:
            return cached[2]
        peers = [(name, self._address(channel, name)) for name in os.listdir(directory)
                 if name not in self._own]
        self._peers_of[channel] = (changed, now, peers)
        return peers

    def _address(self, channel: str, name: str) -> str:
        path = str(self.directory / channel / name)
        if len(os.fsencode(path)) <= _MAX_ADDRESS:
            return path
        with self._fds_lock:
            fd = self._dir_fds.get(channel)
            if fd is None:
                if self._closed:
                    raise OSError(errno.EBADF, "closed")
                flags = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY
                fd = self._dir_fds[channel] = os.open(self.directory / channel, flags)
        return f"/proc/self/fd/{fd}/{name}"

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("Cross-process wake-ups: %s; other processes' writes are seen "
                        "by polling instead.", message)
