"""The one back-off of everything that follows the log or a realtime source, and of
the server's followers process."""

from __future__ import annotations

FIRST = 0.1
"""Seconds before the first try again."""

OUTAGE_BACKOFF = 2.0
"""Longest wait between tries while the store or Redis fails, so that service is
back soon after it (an event that fails is retried up to a follower's own limit)."""


class Backoff:
    """Waits that double from a first one (FIRST unless told) up to a limit while
    failures go on, and start again from the first after a success."""

    def __init__(self, most: float = OUTAGE_BACKOFF, *, first: float = FIRST) -> None:
        self.most = most
        self.first = first
        self.wait = first

    def failed(self, most: float | None = None) -> float:
        """The wait before the next try; the one after it doubles, up to `most`
        (this failure's limit) or the back-off's own."""
        wait = self.wait
        self.wait = min(wait * 2, self.most if most is None else most)
        return wait

    def succeeded(self) -> None:
        self.wait = self.first
