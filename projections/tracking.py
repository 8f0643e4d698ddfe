"""What every store beside the log shares (the read models, the webhooks): the
statement that records a batch's position only on top of the position it was
read after, and the choice of a store's class by the application's backend."""

from __future__ import annotations

from typing import Any, TypeVar

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteFactory

Store = TypeVar("Store")


def advance_sql(tracking: str = "tracking", *, postgres: bool = False) -> str:
    """Set `name`'s position to `last` if it is still below `first`, returning the
    row when it did: no row back means the batch overlaps what was recorded (a
    redelivery, or a rebuild's switch meanwhile), and must change nothing."""
    if postgres:
        return (f"INSERT INTO {tracking} VALUES (%(name)s, %(last)s) "
                "ON CONFLICT (application_name) DO UPDATE SET notification_id = %(last)s "
                f"WHERE {tracking}.notification_id < %(first)s RETURNING notification_id")
    return (f"INSERT INTO {tracking} VALUES (:name, :last) "
            "ON CONFLICT (application_name) DO UPDATE SET notification_id = :last "
            f"WHERE {tracking}.notification_id < :first RETURNING notification_id")


def store_for(factory: InfrastructureFactory[Any], kind: type[Store],
              sqlite: type[Any], postgres: type[Any]) -> Store:
    """The store of `kind` in the database of the application's `factory`: its
    SQLite or its PostgreSQL class, made as the factory makes tracking recorders."""
    if isinstance(factory, SQLiteFactory):
        store = factory.tracking_recorder(sqlite)
    elif isinstance(factory, PostgresFactory):
        store = factory.tracking_recorder(postgres)
    else:
        raise TypeError(f"No {kind.__name__} for {type(factory).__name__}")
    assert isinstance(store, kind)
    return store
