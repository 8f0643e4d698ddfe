"""The log reader's window of recent entries, and the thread that fills it.

The base of `projections.following.reader.LogReader` (read that module's docstring
first): the reader's state (the window of entries after `low` up to `top`, the
consumers' cursors, the condition they wait on), and its reading side: a thread
that follows the log through the recorder's subscription, on demand, appending
each page to the window, and trims what every consumer inside it has taken. The
consumers' side (taking from the window, or reading on their own) is
`LogReader`'s.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification

from projections.following.backoff import Backoff
from projections.following.entries import Decoder, Entry, batches
from projections.following.status import describe_error

log = logging.getLogger("projections.reader")  # the reader's, as it always was

WINDOW = 4096
"""Entries a reader keeps at most for the consumers behind the newest one."""

KEEP = 256
"""Entries a reader keeps even once every consumer took them: for one that joins,
or retries a batch, just behind the others."""

PAGE = 1000
"""Notifications the reader appends to its window at most at once."""


class Cursor:
    """Where a consumer is, as its reader knows it."""

    __slots__ = ("after", "stopping")

    def __init__(self, stopping: threading.Event) -> None:
        self.after: int | None = None
        self.stopping = stopping


class LogWindow:
    """The window of a `LogReader` and the thread that fills it (see above)."""

    def __init__(self, recorder: ApplicationRecorder, mapper: Mapper[UUID], *, window: int = WINDOW,
                 page: int = PAGE, keep: int = KEEP) -> None:
        self.recorder = recorder
        self.decoder = Decoder(mapper)
        self.window = window
        self.page = min(page, window)
        self.keep = min(keep, window)
        self.shared = 0
        """Notifications read into the window (each once)."""
        self.own = 0
        """Notifications consumers read on their own (outside the window)."""
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # consumers wait on it for entries
        self._demand = threading.Condition(lock)  # the reader waits on it for a consumer
        self._entries: list[Entry] = []
        self._ids: list[int] = []
        self._low: int | None = None  # None: not reading
        self._top = 0
        self._cursors: dict[object, Cursor] = {}
        self._waiting = 0
        self._failing: BaseException | None = None
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._subscription: Any = None

    def _start(self, after: int) -> None:
        """Start reading after `after` (a consumer's own position, never ahead of it)."""
        self._generation += 1
        self._clear()
        self._low = self._top = after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._generation, self._stop),
                                        name="log-reader", daemon=True)
        self._thread.start()

    def _clear(self) -> None:
        self._entries, self._ids = [], []
        self._low, self._top, self._failing = None, 0, None

    def _run(self, generation: int, stop: threading.Event) -> None:
        backoff, said = Backoff(), None
        while not stop.is_set():
            try:
                self._follow(generation, stop)
                backoff.succeeded()
            except Exception as error:  # read again; consumers read on their own meanwhile
                if stop.is_set():
                    return
                with self._cond:
                    if generation == self._generation:
                        self._failing = error
                    self._cond.notify_all()
                if describe_error(error) != said:
                    said = describe_error(error)
                    log.warning("The log reader failed (%s); its consumers read on their "
                                "own until it reads again.", said)
                stop.wait(backoff.failed())
            else:
                said = None

    def _follow(self, generation: int, stop: threading.Event) -> None:
        with self._cond:
            start = self._top
        self.recorder.max_notification_id()  # the store answers: consumers may share again
        subscription = self.recorder.subscribe(gt=start)
        with subscription:
            with self._cond:
                if stop.is_set() or generation != self._generation:
                    return
                self._subscription = subscription
                self._failing = None
                self._cond.notify_all()
            for batch in batches(subscription, self.page):
                with self._cond:
                    while not stop.is_set() and not self._waiting:
                        self._demand.wait()  # on demand: a consumer waits for more
                    if stop.is_set() or generation != self._generation:
                        return
                    self._append(batch)
                    self._cond.notify_all()

    def _append(self, notifications: Sequence[Notification]) -> None:
        self.shared += len(notifications)
        fresh = [n for n in notifications if n.id > self._top]  # a consumer's read
        if fresh:                                                 # may have put them
            self._put(fresh)
        self._trim()

    def _put(self, notifications: Sequence[Notification]) -> None:
        """Add notifications that come right after the top of the window."""
        decoder = self.decoder
        self._entries.extend(Entry(n, decoder) for n in notifications)
        self._ids.extend(n.id for n in notifications)
        self._top = notifications[-1].id

    def _trim(self) -> None:
        """Drop the entries every consumer inside the window has taken (but the
        last `keep`), and any beyond `window` (a consumer that needed those reads
        on its own)."""
        low = self._low
        if low is None or not self._ids:
            return
        inside = [c.after for c in self._cursors.values()
                  if c.after is not None and c.after >= low]
        cut = bisect.bisect_right(self._ids, min(inside)) if inside else len(self._ids)
        cut = max(min(cut, len(self._ids) - self.keep), len(self._ids) - self.window)
        if cut > 0:
            self._low = self._ids[cut - 1]
            del self._entries[:cut]
            del self._ids[:cut]
