"""A batch's writes to the read models, folded per row (`Writes`).

Part of the fast rebuild of the read models (`projections.rebuild`): the
decoder (`projections.rebuild.decode`) adds each event's rows and updates here,
and the writers (`projections.rebuild.write`) run the folded groups, one
executemany or one statement per table and kind, instead of one statement per
event. The effect is that of running the read models' statements
(`jobs.statements`, `assignments.statements`) one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from projections import assignments, jobs

Params = tuple[Any, ...]

JOB_ROW_INSERT = jobs.INSERT.replace(", NULL, ", ", ?, ")
"""jobs.INSERT with the cancellation as a parameter (a folded cancel sets it)."""
JOB_ROW_UPDATE = jobs.UPDATE
JOB_COLUMNS = ["id", "version", "type", "description", "duration_minutes", "priority",
               "region", "required_skills", "location", "window_start", "window_end",
               "status", "cancellation", "created_at", "updated_at"]
ASSIGNMENT_COLUMNS = ["id", "job_id", "contractor_id", "start_utc", "end_utc", "status",
                      "region", "created_at", "updated_at"]
assert JOB_ROW_INSERT != jobs.INSERT


class Writes:
    """The writes of a batch, folded per row, with the effect of running the
    read models' statements one by one.

    A row inserted in the batch takes the batch's later updates into its INSERT;
    the updates of any other row fold into one UPDATE (a job's: the last version
    and time, the last status and cancellation given, as its COALESCE does; an
    assignment's: the last status and time). An update before the row's insert
    in the same batch changed nothing (the row was not there, or the insert
    fails), so the insert drops it. A second insert of a row is kept, to fail
    as it would have.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, list[Any]] = {}
        """Job rows by id: the columns of JOB_ROW_INSERT."""
        self.assignments: dict[str, list[Any]] = {}
        self.job_updates: dict[str, list[Any]] = {}
        """By id: version, updated_at, status, cancellation, id (JOB_ROW_UPDATE)."""
        self.assignment_updates: dict[str, list[Any]] = {}
        self.again: list[tuple[str, Params]] = []

    def job(self, row: list[Any]) -> None:
        key = row[0]
        if key in self.jobs:
            self.again.append((JOB_ROW_INSERT, tuple(row)))
            return
        self.job_updates.pop(key, None)
        self.jobs[key] = row

    def job_update(self, key: str, version: int, when: str, status: Any,
                   cancellation: Any = None) -> None:
        row = self.jobs.get(key)
        if row is not None:  # row: ... status 11, cancellation 12, updated_at 14
            row[1], row[14] = version, when
            if status is not None:
                row[11] = status
            if cancellation is not None:
                row[12] = cancellation
            return
        update = self.job_updates.get(key)
        if update is None:
            self.job_updates[key] = [version, when, status, cancellation, key]
            return
        update[0], update[1] = version, when
        if status is not None:
            update[2] = status
        if cancellation is not None:
            update[3] = cancellation

    def assignment(self, row: list[Any]) -> None:
        key = row[0]
        if key in self.assignments:
            self.again.append((assignments.INSERT, tuple(row)))
            return
        self.assignment_updates.pop(key, None)
        self.assignments[key] = row

    def assignment_status(self, key: Any, status: str, when: str) -> None:
        row = self.assignments.get(key)
        if row is not None:  # row: ... status 5, updated_at 8
            row[5], row[8] = status, when
            return
        self.assignment_updates[key] = [status, when, key]

    def add(self, sql: str, params: Params) -> None:
        """A statement of `jobs.statements` or `assignments.statements`."""
        if sql == jobs.UPDATE:
            self.job_update(params[4], params[0], params[1], params[2], params[3])
        elif sql == assignments.SET_STATUS:
            self.assignment_status(params[2], params[0], params[1])
        elif sql == jobs.INSERT:  # its cancellation is NULL in the SQL: a column here
            self.job([*params[:12], None, *params[12:]])
        elif sql == assignments.INSERT:
            self.assignment(list(params))
        else:
            raise ValueError(f"Not a statement of the read models: {sql}")

    def groups(self) -> Iterator[tuple[str, list[Params]]]:
        """(sql, rows) in the order to run them; inserts in key order."""
        if self.jobs:
            yield JOB_ROW_INSERT, [tuple(self.jobs[k]) for k in sorted(self.jobs)]
        if self.assignments:
            yield assignments.INSERT, [tuple(self.assignments[k])
                                       for k in sorted(self.assignments)]
        if self.job_updates:
            yield JOB_ROW_UPDATE, [tuple(row) for row in self.job_updates.values()]
        if self.assignment_updates:
            yield assignments.SET_STATUS, [tuple(row)
                                           for row in self.assignment_updates.values()]
        for sql, params in self.again:
            yield sql, [params]
