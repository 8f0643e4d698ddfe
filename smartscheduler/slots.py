"""The stream slots an embedded server's worker processes share.

A server on SQLite runs several HTTP worker processes, and its limit of open event
streams (`max_streams`) is the server's, not each worker's: `SharedSlots` is made
in the arbiter before the fork and stands in for each worker app's own semaphore
(`smartscheduler.arbiter.Server.load`).
"""

from __future__ import annotations

import errno
import fcntl
import tempfile
import threading


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
