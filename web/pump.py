"""Event streams written by one thread per process, not by a thread each.

A stream's request thread sends the headers and the replay from the store, then
hands the socket to the process's `Pump` and returns to the pool. From then on
the hub's delivery thread appends each accepted event, framed once per event,
to the stream's buffer, and the pump's thread writes every buffer out with
non-blocking sends, sends the heartbeats, and notices a client that has gone
(its socket reads as end-of-file) at once. A client that cannot keep up (its
buffer passes MAX_BACKLOG), or takes nothing for STALLED_FOR, is disconnected;
it resumes with Last-Event-ID. A stream and its subscriber are `web.pumped`.

Only the gunicorn worker (`web.worker.Worker`) hands streams over; under any
other server (the test client) a stream keeps its thread and its generator.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from projections.realtime.hub import Envelope
from web.pumped import Stream, StreamSubscriber

log = logging.getLogger(__name__)

MAX_BACKLOG = 1 << 20
"""Bytes a stream may have waiting for its client before it is disconnected."""

SEND_AT_MOST = 256 * 1024
"""Bytes handed to one send (the socket takes what its buffer holds)."""

FRAME_CACHE = 512
"""Framed events kept, so that each event is encoded once for all its streams."""

HEARTBEAT_CHECK = 1.0
"""Seconds between the pump's looks at which streams are due a heartbeat."""

STALLED_FOR = 60.0
"""Seconds a stream may have bytes waiting that its client takes none of: then it
is closed (a peer gone without a word, say), and its slot is free again."""


class Pump:
    """Writes every handed-over stream of this process, in one thread."""

    def __init__(self, encode: Callable[[Envelope], str]) -> None:
        self._encode = encode
        self._frames: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._dirty: set[Stream] = set()
        self._streams: set[Stream] = set()
        self._selector: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._signalled = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    # Any thread ---------------------------------------------------------------

    def adopt(self, sock: socket.socket, subscriber: StreamSubscriber, *, last: int,
              chunked: bool, heartbeat: float, on_close: Callable[[], None]) -> Stream:
        """Take over `sock`, whose headers and replay are written already."""
        self._start()
        sock.setblocking(False)
        stream = Stream(self, sock, last=last, chunked=chunked, heartbeat=heartbeat,
                        on_close=on_close)
        with self._lock:
            self._streams.add(stream)
            assert self._selector is not None
            self._selector.register(sock, selectors.EVENT_READ, stream)
        subscriber.attach(stream)
        return stream

    def frame(self, item: Envelope) -> bytes:
        position = item["position"]
        framed = self._frames.get(position)
        if framed is None:
            framed = self._encode(item).encode()
            self._frames[position] = framed
            while len(self._frames) > FRAME_CACHE:
                self._frames.popitem(last=False)
        return framed

    def write(self, stream: Stream, data: bytes) -> None:
        with self._lock:
            if stream.closed or stream.ending:
                return
            stream.out += _chunk(data) if stream.chunked else data
            self._dirty.add(stream)
        self._signal()

    def finish(self, stream: Stream) -> None:
        with self._lock:
            if stream.closed or stream.ending:
                return
            stream.ending = True
            if stream.chunked:
                stream.out += b"0\r\n\r\n"
            self._dirty.add(stream)
        self._signal()

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    # The pump's thread -----------------------------------------------------------

    def _start(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._selector.register(self._wake_r, selectors.EVENT_READ, None)
            self._thread = threading.Thread(target=self._run, name="stream-pump",
                                            daemon=True)
            self._pid = os.getpid()
            self._thread.start()

    def _signal(self) -> None:
        if self._signalled:
            return
        self._signalled = True
        with contextlib.suppress(OSError):  # a full pipe wakes the pump anyway
            os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        assert self._selector is not None
        next_check = time.monotonic() + HEARTBEAT_CHECK
        while True:
            try:
                events = self._selector.select(max(0.0, next_check - time.monotonic()))
            except OSError:  # a socket closed under the selector: look again
                events = []
            for key, mask in events:
                if key.data is None:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    self._signalled = False
                    continue
                stream: Stream = key.data
                if mask & selectors.EVENT_READ and self._client_gone(stream):
                    self._close(stream)
                elif mask & selectors.EVENT_WRITE:
                    self._flush(stream)
            with self._lock:
                dirty, self._dirty = self._dirty, set()
            for stream in dirty:
                self._flush(stream)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + HEARTBEAT_CHECK
                for stream in list(self._streams):
                    if stream.stalled_since is not None and (
                            now - stream.stalled_since > STALLED_FOR):
                        log.info("An event stream's client took nothing for %.0f s; "
                                 "disconnected", STALLED_FOR)
                        self._close(stream)
                        continue
                    if now >= stream.next_beat:
                        stream.next_beat = now + stream.heartbeat
                        self.write(stream, b": heartbeat\n\n")

    def _client_gone(self, stream: Stream) -> bool:
        try:
            return stream.sock.recv(4096) == b""  # anything else a client sends is ignored
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _flush(self, stream: Stream) -> None:
        if stream.closed:
            return
        with self._lock:
            data = bytes(stream.out[:SEND_AT_MOST])  # a copy: writers append meanwhile
        sent = 0
        if data:
            try:
                sent = stream.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(stream)
                return
        with self._lock:
            del stream.out[:sent]
            waiting = len(stream.out)
            ending = stream.ending
        if not waiting or sent:
            stream.stalled_since = None if not waiting else time.monotonic()
        elif stream.stalled_since is None:
            stream.stalled_since = time.monotonic()
        if waiting > MAX_BACKLOG:
            log.info("An event stream's client reads too slowly (%s bytes waiting); "
                     "disconnected, it resumes with Last-Event-ID", waiting)
            self._close(stream)
        elif ending and not waiting:
            self._close(stream)
        elif bool(waiting) != stream.writing:
            stream.writing = bool(waiting)
            assert self._selector is not None
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if waiting else 0)
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.modify(stream.sock, events, stream)

    def _close(self, stream: Stream) -> None:
        with self._lock:
            if stream.closed:
                return
            stream.closed = True
            self._streams.discard(stream)
            self._dirty.discard(stream)
            assert self._selector is not None
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(stream.sock)
        with contextlib.suppress(OSError):
            stream.sock.close()
        try:
            stream.on_close()
        except Exception:  # the slot and the subscription are released regardless
            log.exception("Closing an event stream failed")


def _chunk(data: bytes) -> bytes:
    return b"%X\r\n%s\r\n" % (len(data), data)


def handoff_of(environ: dict[str, Any]) -> Callable[..., bool] | None:
    """The server's hand-over for this request's stream, if it offers one."""
    return environ.get("smartscheduler.handoff")
