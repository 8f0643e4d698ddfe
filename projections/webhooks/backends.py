"""The webhooks' store on each backend, and which one an application's database
gets (`webhooks_for(factory)`), as `projections.backends` does for the read models."""

from __future__ import annotations

import re
from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresFactory, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteFactory, SQLiteTrackingRecorder

from projections.webhooks import tables
from projections.webhooks.store import WebhookStore

_TABLES = re.compile(rf"\b({tables.ENDPOINTS}|{tables.DELIVERIES})\b")


class SQLiteWebhookStore(WebhookStore, SQLiteTrackingRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._init_webhooks()

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *tables.CREATE]

    def _advance_sql(self) -> str:
        return ("INSERT INTO tracking VALUES (:name, :last) "
                "ON CONFLICT (application_name) DO UPDATE SET notification_id = :last "
                "WHERE tracking.notification_id < :first RETURNING notification_id")


class PostgresWebhookStore(WebhookStore, PostgresTrackingRecorder):
    placeholder = "%s"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # In the datastore's schema, like the tracking table (not search_path's).
        self._schema = '"' + self.datastore.schema.replace('"', '""') + '"'
        self._tracking = f'{self._schema}."{self.tracking_table_name}"'
        self._init_webhooks()
        from psycopg.sql import SQL
        self.sql_create_statements.extend(
            SQL(self._q(s)) for s in tables.CREATE)  # type: ignore[misc]

    def _translate(self, sql: str) -> str:
        sql = _TABLES.sub(lambda m: f"{self._schema}.{m[1]}", sql)
        # Index names are not qualified: an index lives in its table's schema.
        return sql.replace("?", "%s")

    def _advance_sql(self) -> str:
        return (f"INSERT INTO {self._tracking} VALUES (%(name)s, %(last)s) "
                "ON CONFLICT (application_name) DO UPDATE SET notification_id = %(last)s "
                f"WHERE {self._tracking}.notification_id < %(first)s "
                "RETURNING notification_id")


def webhooks_for(factory: InfrastructureFactory[Any]) -> WebhookStore:
    """The webhooks' store in the database of the given application's factory."""
    store: Any
    if isinstance(factory, SQLiteFactory):
        store = factory.tracking_recorder(SQLiteWebhookStore)
    elif isinstance(factory, PostgresFactory):
        store = factory.tracking_recorder(PostgresWebhookStore)
    else:
        raise TypeError(f"No webhooks store for {type(factory).__name__}")
    assert isinstance(store, WebhookStore)
    return store
