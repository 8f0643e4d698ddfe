"""The read models of an application's database: `views_for(factory)`.

Where things are: the store that applies events exactly once and answers
queries (projections.store, DispatchViews), its SQLite and PostgreSQL
variants (projections.backends), the job and assignment read models
(projections.jobs, projections.assignments), a batch's SQL
(projections.batches), and rebuilding beside the live tables
(projections.shadow, projections.rebuild).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteFactory

from projections.backends import PostgresDispatchViews, SQLiteDispatchViews
from projections.batches import ROW_KEYS, Params, decode, grouped
from projections.query import Page
from projections.shadow import SHADOW_SUFFIX
from projections.store import TRACKING_NAME, DispatchViews

__all__ = ["ROW_KEYS", "SHADOW_SUFFIX", "TRACKING_NAME", "DispatchViews", "Page", "Params",
           "decode", "grouped", "views_for"]


def views_for(factory: InfrastructureFactory[Any]) -> DispatchViews:
    """The read models in the database of the given application's factory."""
    view: Any
    if isinstance(factory, SQLiteFactory):
        view = factory.tracking_recorder(SQLiteDispatchViews)
    elif isinstance(factory, PostgresFactory):
        view = factory.tracking_recorder(PostgresDispatchViews)
    else:
        raise TypeError(f"No read models for {type(factory).__name__}")
    assert isinstance(view, DispatchViews)
    return view
