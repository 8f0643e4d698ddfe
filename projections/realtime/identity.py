"""The store's identity, which the Redis stream records as its owner.

A store gets an epoch (a random UUID) the first time a relay is built for it,
kept in the table `store_identity` of the store itself, beside the events: a
copy or a dump of the store carries it, a fresh store gets another one. The
row also counts the store's streams (`generation`): `smartscheduler relay
reset-stream` starts a new one, and the relay records its position under a
tracking name of that generation, so the new stream is published from the
store's first event while nothing the old one recorded can move it.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

TABLE = "store_identity"
TRACKING_NAME = "Relay"
"""The relay's tracking name for the store's first stream (generation 0)."""

CREATE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, "
          "epoch TEXT NOT NULL, generation INTEGER NOT NULL)")
INSERT = f"INSERT INTO {TABLE} (id, epoch, generation) VALUES (1, ?, 0) ON CONFLICT (id) DO NOTHING"
SELECT = f"SELECT epoch, generation FROM {TABLE} WHERE id = 1"
BUMP = f"UPDATE {TABLE} SET generation = generation + 1 WHERE id = 1"


class StoreIdentity(NamedTuple):
    epoch: str
    generation: int

    @property
    def owner(self) -> str:
        """What the stream's owner key holds while this store's relay publishes to it."""
        return f"{self.epoch}/{self.generation}"

    @property
    def tracking_name(self) -> str:
        return TRACKING_NAME if self.generation == 0 else f"{TRACKING_NAME}-{self.generation}"

    @classmethod
    def parse(cls, owner: str) -> StoreIdentity | None:
        epoch, _, generation = owner.rpartition("/")
        return cls(epoch, int(generation)) if epoch and generation.isdigit() else None


def ensure_identity(recorder: Any) -> StoreIdentity:
    """The store's identity, created if it has none yet (run under the storage lock)."""
    with recorder.datastore.transaction(commit=True) as c:
        c.execute(_sql(recorder, CREATE))
        c.execute(_sql(recorder, INSERT), (str(uuid.uuid4()),))
        c.execute(_sql(recorder, SELECT))
        return _identity(c.fetchone())


def read_identity(recorder: Any) -> StoreIdentity | None:
    """The store's identity, or None when no relay was ever built for it."""
    with recorder.datastore.transaction(commit=False) as c:
        c.execute(*_exists(recorder))
        if c.fetchone() is None:
            return None
        c.execute(_sql(recorder, SELECT))
        row = c.fetchone()
    return None if row is None else _identity(row)


def relay_tracking_name(recorder: Any) -> str:
    """Where the relay records its position now (for those reporting it)."""
    identity = read_identity(recorder)
    return TRACKING_NAME if identity is None else identity.tracking_name


def next_generation(recorder: Any) -> tuple[StoreIdentity, StoreIdentity]:
    """Start the store's next stream: (the identity before, the identity now).

    The relay's position under the old generation is deleted in the same
    transaction; under the new one there is none yet, so it starts from 0.
    """
    ensure_identity(recorder)
    with recorder.datastore.transaction(commit=True) as c:
        c.execute(_sql(recorder, SELECT + (" FOR UPDATE" if _postgres(recorder) else "")))
        before = _identity(c.fetchone())
        c.execute(_sql(recorder, BUMP))
        c.execute(_sql(recorder, SELECT))
        now = _identity(c.fetchone())
        c.execute(_tracking_sql(recorder, "DELETE FROM {} WHERE application_name = ?"),
                  (before.tracking_name,))
    return before, now


def _identity(row: Any) -> StoreIdentity:
    return StoreIdentity(str(row["epoch"]), int(row["generation"]))


def _postgres(recorder: Any) -> bool:
    return hasattr(recorder.datastore, "schema")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql(recorder: Any, sql: str) -> str:
    if not _postgres(recorder):
        return sql
    return sql.replace(TABLE, f"{_quoted(recorder.datastore.schema)}.{TABLE}", 1).replace(
        "?", "%s")


def _tracking_sql(recorder: Any, sql: str) -> str:
    if not _postgres(recorder):
        return sql.format("tracking")
    table = f"{_quoted(recorder.datastore.schema)}.{_quoted(recorder.tracking_table_name)}"
    return sql.format(table).replace("?", "%s")


def _exists(recorder: Any) -> tuple[str, tuple[Any, ...]]:
    if _postgres(recorder):
        return ("SELECT 1 WHERE to_regclass(%s) IS NOT NULL",
                (f"{_quoted(recorder.datastore.schema)}.{TABLE}",))
    return "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
