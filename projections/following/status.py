"""How the followers of the log are doing: recorded failures, and who is stuck.

A follower (the read models, the relay) that cannot apply an event keeps
retrying, and records its failure in the `follower_status` table, beside its
tracking position, so that every process can tell: `/readyz` of each server,
and `smartscheduler projections status`. The row goes when it moves on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

TABLE = "follower_status"

CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    "name TEXT PRIMARY KEY, error TEXT NOT NULL, failing_position BIGINT, "
    "failing_type TEXT, since DOUBLE PRECISION NOT NULL, attempts INTEGER NOT NULL)"
)
UPSERT = (
    f"INSERT INTO {TABLE} (name, error, failing_position, failing_type, since, attempts) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET error = excluded.error, "
    "failing_position = excluded.failing_position, failing_type = excluded.failing_type, "
    "since = excluded.since, attempts = excluded.attempts"
)
DELETE = f"DELETE FROM {TABLE} WHERE name = ?"
SELECT = f"SELECT name, error, failing_position, failing_type, since, attempts FROM {TABLE}"

HALTED = "Halted: "
"""How the error of a follower that stopped for what no retry mends begins (the
relay's stream holds another history): stuck at once. Kept in the error's text,
so that the table stays as it is."""

STUCK_AFTER = 30.0
"""Seconds of the same error, or of no progress while behind, that make a follower stuck."""


@dataclass(frozen=True)
class Failure:
    """A follower's current failure: the error, and the event it failed on, if any."""

    error: str
    position: int | None = None
    event_type: str | None = None
    since: float = 0.0
    attempts: int = 1

    def same_as(self, other: Failure | None) -> bool:
        return other is not None and (self.error, self.position) == (
            other.error, other.position)

    def again(self) -> Failure:
        return replace(self, attempts=self.attempts + 1)

    def row(self, name: str) -> tuple[Any, ...]:
        return (name, self.error, self.position, self.event_type, self.since,
                self.attempts)

    @classmethod
    def from_row(cls, row: Any) -> Failure:
        return cls(error=row["error"], position=row["failing_position"],
                   event_type=row["failing_type"], since=float(row["since"]),
                   attempts=int(row["attempts"]))

    def describe(self) -> dict[str, Any]:
        return {
            "lastError": self.error,
            "failingEvent": (None if self.position is None else
                             {"position": self.position, "type": self.event_type}),
            "failingSince": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
            "attempts": self.attempts,
        }


def describe_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:500] if text else type(error).__name__


class Watch:
    """Judges the followers from their positions and recorded failures.

    "No progress while behind" needs two looks some time apart: the watch
    remembers when it last saw each follower's position move.
    """

    def __init__(self, stuck_after: float = STUCK_AFTER) -> None:
        self.stuck_after = stuck_after
        self._seen: dict[str, tuple[int, float]] = {}

    def report(self, name: str, position: int, head: int,
               failure: Failure | None) -> dict[str, Any]:
        now = time.monotonic()
        lag = max(head - position, 0)
        seen = self._seen.get(name)
        if seen is None or seen[0] != position or lag == 0:
            seen = self._seen[name] = (position, now)
        status = "ok"
        found: dict[str, Any] = {"name": name, "position": position, "lag": lag,
                                 "lastError": None}
        if failure is not None and failure.position is not None and failure.position <= position:
            failure = None  # got past it: the record is about to be cleared
        if failure is not None:
            found.update(failure.describe())
            stuck = (failure.error.startswith(HALTED)
                     or time.time() - failure.since > self.stuck_after)
            status = "stuck" if stuck else "retrying"
        if lag and now - seen[1] > self.stuck_after:
            status = "stuck"
            found["lastError"] = found["lastError"] or (
                f"No progress for {now - seen[1]:.0f}s while {lag} events behind")
        found["status"] = status
        return found
