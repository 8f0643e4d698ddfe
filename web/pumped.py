"""One event stream once the pump has it: its socket, its buffer, its subscriber.

A stream's request thread replays the store, then hands its socket over
(`web.pump.Pump.adopt`). From then on the stream is a `Stream` (what is buffered
for its client, where it is in the log, when its next heartbeat is due) fed by
its `StreamSubscriber`: the hub's delivery thread offers it each accepted event,
and it writes the event's frame to the stream's buffer, skipping what the replay
already sent. The subscriber queues like any other hub subscriber until then,
and the stream takes that queue when attached. The pump's thread does the I/O.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from projections.realtime.hub import Envelope, Subscriber

if TYPE_CHECKING:
    from web.pump import Pump


class StreamSubscriber(Subscriber):
    """A hub subscriber that queues like any other until its stream is handed to
    the pump (`attach`), then writes each accepted envelope to the stream."""

    def __init__(self, accepts: Callable[[Envelope], bool]) -> None:
        super().__init__(accepts)
        self._handover = threading.Lock()
        self.stream: Stream | None = None

    def offer(self, item: Envelope) -> None:
        stream = self.stream
        if stream is None:
            with self._handover:
                stream = self.stream
                if stream is None:
                    super().offer(item)
                    return
        if not self.closed and self.accepts(item):
            stream.send_event(item)

    def offer_many(self, items: Sequence[Envelope]) -> None:
        stream = self.stream
        if stream is None:
            super().offer_many(items)  # queued (under the hand-over lock) until attached
        elif not self.closed:
            stream.send_events([item for item in items if self.accepts(item)])

    def close(self) -> None:
        super().close()
        stream = self.stream
        if stream is not None:
            stream.finish()

    def attach(self, stream: Stream) -> None:
        """From now on, `stream` gets the envelopes: first those already queued."""
        with self._handover:
            while True:
                try:
                    item = self.queue.get_nowait()
                except Exception:  # queue.Empty
                    break
                if item is None:
                    stream.finish()
                    break
                stream.send_event(item)
            self.stream = stream
        if self.closed:
            stream.finish()


class Stream:
    """One handed-over event stream: its socket, its buffer, its position."""

    def __init__(self, pump: Pump, sock: socket.socket, *, last: int, chunked: bool,
                 heartbeat: float, on_close: Callable[[], None]) -> None:
        self.pump = pump
        self.sock = sock
        self.last = last
        self.chunked = chunked
        self.heartbeat = heartbeat
        self.next_beat = time.monotonic() + heartbeat
        self.on_close = on_close
        self.out = bytearray()
        self.ending = False
        self.closed = False
        self.writing = False
        self.stalled_since: float | None = None  # bytes waiting, none taken since

    def send_event(self, item: Envelope) -> None:
        position = item["position"]
        if position <= self.last:  # the seam between the replay and the live feed
            return
        self.last = position
        self.pump.write(self, self.pump.frame(item))

    def send_events(self, items: Sequence[Envelope]) -> None:
        """Several events at once: one write for all of them."""
        frames = []
        for item in items:
            position = item["position"]
            if position > self.last:
                self.last = position
                frames.append(self.pump.frame(item))
        if frames:
            self.pump.write(self, b"".join(frames))

    def finish(self) -> None:
        """End the stream once what is buffered has been written."""
        self.pump.finish(self)

    def fileno(self) -> int:
        return self.sock.fileno()
