"""The Dispatch application: the commands and the write-side queries of jobs."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import JSONTranscoder, RecordConflictError, Recording

from application.commit import AppendCount, GroupCommit
from application.errors import (
    ConcurrencyConflict,
    JobNotFound,
    PreconditionFailed,
    VersionNotFound,
)
from application.transcodings import AssignmentAsDict
from domain.catalog import audit_record
from domain.job import Job
from domain.values import DEFAULT_REASON_CODE, Actor, Request, is_staff_only

IDEMPOTENCY_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smartscheduler:idempotency")

SNAPSHOT_INTERVAL = 50
"""A job is snapshotted at every 50th version (50, 100, ...): a stream shorter than
this has no snapshot, and is read with one query (see `Dispatch._load`)."""


@dataclass(frozen=True)
class Outcome:
    """What a command returns: the job, and where its last event sits in the log."""

    job: Job
    position: int | None
    replayed: bool = False


class Dispatch(Application[UUID]):
    """Create, assign, start, complete and cancel jobs; read one job and its history."""

    name = "Dispatch"
    snapshotting_intervals = {Job: SNAPSHOT_INTERVAL}
    max_attempts = 20

    def __init__(self, env: Any = None) -> None:
        super().__init__(env)
        self.appends = AppendCount()
        self._group_commit = GroupCommit(self._record_batch, on_batch=self.appends.add)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(AssignmentAsDict())

    # Commands --------------------------------------------------------------

    def create_job(self, request: Request, **fields: Any) -> Outcome:
        """Create a job; a retried create with the same idempotency key returns it
        (the job's id comes from the key, scoped to the caller: the same key from
        two users means two requests)."""
        key = request.idempotency_key
        job_id = uuid5(IDEMPOTENCY_NAMESPACE, f"create:{request.actor.sub}:{key}") if key else None
        if job_id and (replay := self._replay_of_create(job_id, request)):
            return replay
        job = Job.create(request=request, id=job_id, **fields)  # refuses a non-staff actor
        try:
            recordings = self._group_commit.save(job)
        except RecordConflictError:
            if replay := self._replay_of_create(job.id, request):
                return replay
            raise ConcurrencyConflict("The job was created concurrently.") from None
        return Outcome(job, recordings[-1].notification.id)

    def assign(self, request: Request, job_id: UUID, *, contractor_id: UUID,
               start_utc: datetime, end_utc: datetime,
               expected_version: int | None = None) -> Outcome:
        """Add a Pending assignment of a contractor to the job."""
        assignment_id = None
        if request.idempotency_key:
            assignment_id = uuid5(job_id, f"assign:{request.idempotency_key}")
        return self._execute(job_id, request, expected_version, Job.assign,
                             contractor_id=contractor_id, start_utc=start_utc,
                             end_utc=end_utc, assignment_id=assignment_id)

    def confirm_assignment(self, request: Request, job_id: UUID, assignment_id: UUID,
                           expected_version: int | None = None) -> Outcome:
        """Confirm a Pending assignment (its contractor, a Dispatcher or an Admin)."""
        return self._execute(job_id, request, expected_version, Job.confirm_assignment,
                             assignment_id=assignment_id)

    def cancel_assignment(self, request: Request, job_id: UUID, assignment_id: UUID,
                          reason: str | None = None,
                          expected_version: int | None = None) -> Outcome:
        """Cancel one Pending or Confirmed assignment (unassign)."""
        return self._execute(job_id, request, expected_version, Job.cancel_assignment,
                             assignment_id=assignment_id, reason=reason)

    def start_job(self, request: Request, job_id: UUID,
                  expected_version: int | None = None) -> Outcome:
        """Start an Assigned job: its Pending and Confirmed assignments go InProgress."""
        return self._execute(job_id, request, expected_version, Job.start)

    def complete_job(self, request: Request, job_id: UUID,
                     expected_version: int | None = None) -> Outcome:
        """Complete an InProgress job and its InProgress assignments."""
        return self._execute(job_id, request, expected_version, Job.complete)

    def cancel_job(self, request: Request, job_id: UUID, *, reason: str | None = None,
                   reason_code: str = DEFAULT_REASON_CODE,
                   expected_version: int | None = None) -> Outcome:
        """Cancel the job and every live assignment in one atomic append."""
        return self._execute(job_id, request, expected_version, Job.cancel,
                             reason=reason, reason_code=reason_code)

    # Queries ---------------------------------------------------------------

    def get_job(self, job_id: UUID, actor: Actor | None = None,
                version: int | None = None) -> Job:
        """The job as it is now, or as it was at `version`."""
        job = self._load(job_id)
        if actor is not None and not job.is_visible_to(actor):
            raise JobNotFound(job_id)
        if version is None or version == job.version:
            return job
        if not 1 <= version < job.version:
            raise VersionNotFound(job_id, version, job.version)
        return self._load(job_id, version)

    def history(self, job_id: UUID, actor: Actor | None = None) -> list[dict[str, Any]]:
        """Every stored event of the job, oldest first, as audit records."""
        if actor is not None:
            actor.require_staff()
        records = [audit_record(event) for event in self.events.get(job_id)]
        if not records:
            raise JobNotFound(job_id)
        return records

    def head_position(self) -> int:
        """The position of the newest event in the log (0 when the log is empty)."""
        return self.recorder.max_notification_id() or 0

    def settled_position(self) -> int:
        """A position no event at or below which can still commit: where a new
        follower of the live log starts. On PostgreSQL appends commit out of id
        order, so it may be below the head (`application.postgres`)."""
        settled = getattr(self.recorder, "max_settled_notification_id", None)
        return (settled() or 0) if settled is not None else self.head_position()

    # Internals -------------------------------------------------------------

    def _record_batch(self, processing: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        """What the library's save does after collecting the events (see GroupCommit)."""
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    def _load(self, job_id: UUID, version: int | None = None) -> Job:
        """The job (as of `version`), from its events alone when there are fewer
        than SNAPSHOT_INTERVAL of them: most jobs hold a handful, and the
        library's repository would first look for a snapshot (a second query,
        a second wait for a pooled connection) that cannot exist yet. A longer
        stream is read by the repository, from its latest snapshot."""
        stored = self.events.recorder.select_events(job_id, lte=version,
                                                    limit=SNAPSHOT_INTERVAL)
        if len(stored) < SNAPSHOT_INTERVAL:
            job = _replay(map(self.mapper.to_domain_event, stored))
            if job is None:
                raise JobNotFound(job_id)
            return job
        try:
            return self.repository.get(job_id, version=version)
        except AggregateNotFoundError:
            raise JobNotFound(job_id) from None

    def _replay_of_create(self, job_id: UUID, request: Request) -> Outcome | None:
        try:
            job = self._load(job_id)
        except JobNotFound:
            return None
        return Outcome(job, None, replayed=True) if job.replays(request) else None

    def _execute(self, job_id: UUID, request: Request, expected_version: int | None,
                 command: Callable[..., Any], **arguments: Any) -> Outcome:
        """Load, check, run the job's `command`, save; on a conflicting save, reload
        and run again. A command the domain marks staff-only is refused before the
        job is read (Forbidden, not NotFound: nothing is learnt of the job)."""
        if is_staff_only(command):
            request.actor.require_staff()
        for attempt in range(self.max_attempts):
            job = self._load(job_id)
            if not job.is_visible_to(request.actor):
                raise JobNotFound(job_id)
            if job.replays(request):
                return Outcome(job, None, replayed=True)
            if expected_version is not None and job.version != expected_version:
                raise PreconditionFailed(job_id, expected_version, job.version)
            command(job, request=request, **arguments)
            try:
                recordings = self._group_commit.save(job)
            except RecordConflictError:
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            return Outcome(job, recordings[-1].notification.id if recordings else None)
        raise ConcurrencyConflict(f"Job {job_id} kept changing; try again.")


def _replay(events: Iterable[Any]) -> Any:
    """The aggregate the events build (None for no events): the library's
    project_aggregate without its per-event runtime Protocol check."""
    job = None
    for event in events:
        job = event.mutate(job)
    return job
