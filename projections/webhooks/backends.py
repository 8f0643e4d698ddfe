"""The webhooks' store on each backend, and which one an application's database
gets (`webhooks_for(factory)`), as `projections.backends` does for the read models."""

from __future__ import annotations

import re
from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

from projections.tracking import advance_sql, store_for
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
        return advance_sql()


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
        return advance_sql(self._tracking, postgres=True)


def webhooks_for(factory: InfrastructureFactory[Any]) -> WebhookStore:
    """The webhooks' store in the database of the given application's factory."""
    return store_for(factory, WebhookStore, SQLiteWebhookStore, PostgresWebhookStore)
