"""What the read models' queries share: a page of records, a filter's WHERE, and
reading one page of a table newest first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Record = TypeVar("Record")

Sql = Callable[[str], str]
"""The store's translation of a statement to its backend and table names."""


@dataclass(frozen=True)
class Page(Generic[Record]):
    """One page of a list, and how many items the whole list has."""

    items: list[Record]
    total: int


def where(**filters: Any) -> tuple[str, list[Any]]:
    """` WHERE column = ? AND ...` over the filters given (None: not filtered)."""
    clauses, params = [], []
    for column, value in filters.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def newest_first(c: Any, sql: Sql, table: str, columns: str, page: int, page_size: int,
                 **filters: Any) -> tuple[list[Any], int]:
    """One page of `table`'s rows, newest first, filtered; and how many rows match."""
    clause, params = where(**filters)
    c.execute(sql(f"SELECT COUNT(*) AS n FROM {table}{clause}"), params)
    total = c.fetchone()["n"]
    c.execute(sql(f"SELECT {columns} FROM {table}{clause} "
                  "ORDER BY created_at DESC, id LIMIT ? OFFSET ?"),
              [*params, page_size, (page - 1) * page_size])
    return c.fetchall(), total
