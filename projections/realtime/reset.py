"""`smartscheduler relay reset-stream`: give the store a new, empty stream.

For a stream that holds another history (a fresh or restored store, another
store sharing the Redis): the old stream is moved aside (renamed, never
deleted, with its owner key), the store starts its next stream generation, so
the relay's position for it is 0, and the empty stream is recorded as this
store's. The relay, running or not, then publishes from the store's first event.

The store is changed first: between the two steps no relay can publish, since
the stream's owner is not yet the store's new generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections.log import EventLog
from projections.realtime import stream
from projections.realtime.identity import StoreIdentity, next_generation


@dataclass(frozen=True)
class StreamMoved:
    moved_to: str
    entries: int
    previous_owner: str | None
    identity: StoreIdentity
    head: int

    def describe(self) -> str:
        owner = f"owner {self.previous_owner}" if self.previous_owner else "no owner"
        return (f"Moved {stream.STREAM} ({self.entries:,} entries, {owner}) to "
                f"{self.moved_to}. The stream is now this store's ({self.identity.owner}): "
                f"the relay publishes its {self.head:,} events again from position 1, "
                "then goes on; a running relay within seconds.")


def reset_stream(app: EventLog, client: Any) -> StreamMoved:
    """Move the stream aside and start the store's next one (see the module)."""
    previous = client.get(stream.OWNER)
    _, identity = next_generation(app.factory.tracking_recorder())
    moved_to, entries = stream.reset(client, identity.owner)
    return StreamMoved(moved_to, entries, previous.decode() if previous else None,
                       identity, app.head_position())
