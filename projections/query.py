"""What the read models' queries share: a page of records, and a filter's WHERE."""

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
