"""The Job aggregate: a field-service job and the assignments inside it.

Assignments are entities of the job, so that cancelling a job and all of its
live assignments is one atomic append. Every event records the request that
caused it (actor, request id, idempotency key and fingerprint) and carries
enough data to build the read models and the published envelope on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.errors import (
    AssignmentNotCancellable,
    AssignmentNotConfirmable,
    AssignmentNotFound,
    Forbidden,
    IdempotencyKeyReused,
    InvalidJob,
    InvalidTransition,
    JobAlreadyCancelled,
    JobCompleted,
    JobNotAssignable,
)


class JobStatus(StrEnum):
    CREATED = "Created"
    ASSIGNED = "Assigned"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"


class AssignmentStatus(StrEnum):
    PENDING = "Pending"
    CONFIRMED = "Confirmed"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"


class Priority(StrEnum):
    NORMAL = "Normal"
    HIGH = "High"
    RUSH = "Rush"


class ReasonCode(StrEnum):
    CUSTOMER_REQUEST = "CustomerRequest"
    CONTRACTOR_UNAVAILABLE = "ContractorUnavailable"
    WEATHER = "Weather"
    DUPLICATE = "Duplicate"
    OTHER = "Other"


class Role(StrEnum):
    ADMIN = "Admin"
    DISPATCHER = "Dispatcher"
    CONTRACTOR = "Contractor"


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.CANCELLED})
UNSTARTED = frozenset({AssignmentStatus.PENDING, AssignmentStatus.CONFIRMED})
LIVE = UNSTARTED | {AssignmentStatus.IN_PROGRESS}


@dataclass(frozen=True)
class Actor:
    """Who asks: the token's subject and roles."""

    sub: str
    roles: tuple[str, ...] = ()

    @property
    def is_staff(self) -> bool:
        return Role.ADMIN in self.roles or Role.DISPATCHER in self.roles

    @property
    def is_contractor(self) -> bool:
        return not self.is_staff and Role.CONTRACTOR in self.roles

    @property
    def contractor_id(self) -> UUID | None:
        """The contractor this actor is (a contractor's sub is their id), if any."""
        if Role.CONTRACTOR not in self.roles:
            return None
        try:
            return UUID(self.sub)
        except ValueError:
            return None

    def require_staff(self) -> None:
        if not self.is_staff:
            raise Forbidden("Only a Dispatcher or an Admin may do this.")


@dataclass(frozen=True)
class Request:
    """The request behind a command; stored with every event it causes."""

    actor: Actor
    request_id: str | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "actor": {"sub": self.actor.sub, "roles": list(self.actor.roles)},
            "requestId": self.request_id,
            "idempotencyKey": self.idempotency_key,
            "fingerprint": self.fingerprint,
        }


@dataclass
class Assignment:
    """A contractor's assignment to a job (an entity inside the Job aggregate)."""

    id: UUID
    contractor_id: UUID
    start_utc: datetime
    end_utc: datetime
    status: str = AssignmentStatus.PENDING
    updated_at: datetime | None = field(default=None)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)
"""The instants a job may name: every reader can bring them to UTC and back."""


def _require_instant(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidJob(f"{name} must carry a UTC offset.", field=name)
    if not EARLIEST <= value <= LATEST:
        raise InvalidJob(f"{name} must fall between 1970-01-01T00:00:00Z and "
                         "9999-12-30T23:59:59Z.", field=name)


class Job(Aggregate):
    """A field-service job: created, assigned, started, completed or cancelled."""

    TOPIC = "smartscheduler.Job"

    class Event(Aggregate.Event):
        region: str
        request: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            job: Job = aggregate
            job.updated_at = self.timestamp
            key = self.request.get("idempotencyKey")
            if key:
                job.idempotency[key] = self.request.get("fingerprint")

    class Created(Event, Aggregate.Created):
        TOPIC = "smartscheduler.JobCreated"
        type: str
        description: str | None
        duration_minutes: int
        priority: str
        required_skills: list[str]
        location: dict[str, Any] | None
        window_start: datetime
        window_end: datetime

        def apply(self, aggregate: Any) -> None:
            job: Job = aggregate
            job.type = self.type
            job.description = self.description
            job.duration_minutes = self.duration_minutes
            job.priority = self.priority
            job.region = self.region
            job.required_skills = list(self.required_skills)
            job.location = self.location
            job.window_start = self.window_start
            job.window_end = self.window_end
            job.status = JobStatus.CREATED
            job.assignments = []
            job.cancellation = None
            job.created_at = self.timestamp
            job.idempotency = {}
            super().apply(job)

    class AssignmentCreated(Event):
        TOPIC = "smartscheduler.AssignmentCreated"
        assignment_id: UUID
        contractor_id: UUID
        start_utc: datetime
        end_utc: datetime
        job_status: str

        def apply(self, aggregate: Any) -> None:
            job: Job = aggregate
            job.assignments.append(Assignment(
                id=self.assignment_id, contractor_id=self.contractor_id,
                start_utc=self.start_utc, end_utc=self.end_utc,
                updated_at=self.timestamp,
            ))
            job.status = self.job_status
            super().apply(job)

    class AssignmentConfirmed(Event):
        TOPIC = "smartscheduler.AssignmentConfirmed"
        assignment_id: UUID
        contractor_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.set_assignment_status(
                [self.assignment_id], AssignmentStatus.CONFIRMED, self.timestamp)
            super().apply(aggregate)

    class AssignmentCancelled(Event):
        TOPIC = "smartscheduler.AssignmentCancelled"
        assignment_id: UUID
        contractor_id: UUID
        reason: str | None
        job_status: str

        def apply(self, aggregate: Any) -> None:
            aggregate.set_assignment_status(
                [self.assignment_id], AssignmentStatus.CANCELLED, self.timestamp)
            aggregate.status = self.job_status
            super().apply(aggregate)

    class Started(Event):
        TOPIC = "smartscheduler.JobStarted"
        assignments: list[dict[str, Any]]

        def apply(self, aggregate: Any) -> None:
            ids = [UUID(a["assignmentId"]) for a in self.assignments]
            aggregate.set_assignment_status(ids, AssignmentStatus.IN_PROGRESS, self.timestamp)
            aggregate.status = JobStatus.IN_PROGRESS
            super().apply(aggregate)

    class Completed(Event):
        TOPIC = "smartscheduler.JobCompleted"
        assignments: list[dict[str, Any]]

        def apply(self, aggregate: Any) -> None:
            ids = [UUID(a["assignmentId"]) for a in self.assignments]
            aggregate.set_assignment_status(ids, AssignmentStatus.COMPLETED, self.timestamp)
            aggregate.status = JobStatus.COMPLETED
            super().apply(aggregate)

    class Cancelled(Event):
        TOPIC = "smartscheduler.JobCancelled"
        reason: str | None
        reason_code: str
        cancelled_by: str
        cancelled_assignments: list[dict[str, Any]]

        def apply(self, aggregate: Any) -> None:
            aggregate.status = JobStatus.CANCELLED
            aggregate.cancellation = {
                "reason": self.reason,
                "reasonCode": self.reason_code,
                "cancelledBy": self.cancelled_by,
                "cancelledAt": self.timestamp,
            }
            super().apply(aggregate)

    if TYPE_CHECKING:  # set by the events; not dataclass fields of the aggregate
        type: str
        description: str | None
        duration_minutes: int
        priority: str
        region: str
        required_skills: list[str]
        location: dict[str, Any] | None
        window_start: datetime
        window_end: datetime
        status: str
        assignments: list[Assignment]
        cancellation: dict[str, Any] | None
        created_at: datetime
        updated_at: datetime
        idempotency: dict[str, str | None]

    @classmethod
    def create(
        cls, *, request: Request, type: str, duration_minutes: int,
        window_start: datetime, window_end: datetime, region: str = "Default",
        priority: str = Priority.NORMAL, description: str | None = None,
        required_skills: Iterable[str] = (), location: dict[str, Any] | None = None,
        id: UUID | None = None,
    ) -> Job:
        request.actor.require_staff()
        _require_instant(window_start, "serviceWindow.start")
        _require_instant(window_end, "serviceWindow.end")
        if window_end <= window_start:
            raise InvalidJob("The service window must end after it starts.",
                             field="serviceWindow")
        if duration_minutes <= 0:
            raise InvalidJob("durationMinutes must be positive.", field="durationMinutes")
        return cls._create(
            cls.Created, id=id or uuid4(), request=request.record(), type=type,
            description=description, duration_minutes=duration_minutes,
            priority=str(priority), region=region,
            required_skills=list(dict.fromkeys(required_skills)), location=location,
            window_start=window_start, window_end=window_end,
        )

    # Commands ------------------------------------------------------------

    def assign(self, *, request: Request, contractor_id: UUID, start_utc: datetime,
               end_utc: datetime, assignment_id: UUID | None = None) -> UUID:
        request.actor.require_staff()
        _require_instant(start_utc, "startUtc")
        _require_instant(end_utc, "endUtc")
        if end_utc <= start_utc:
            raise InvalidJob("endUtc must be after startUtc.", field="endUtc")
        if self.is_terminal:
            raise JobNotAssignable(
                f"A {self.status} job cannot be assigned.", job_id=self.id,
                current_status=self.status)
        if any(a.contractor_id == contractor_id and a.is_live for a in self.assignments):
            raise JobNotAssignable(
                "This contractor already has a live assignment on this job.",
                job_id=self.id, current_status=self.status)
        new_id = assignment_id or uuid4()
        status = JobStatus.ASSIGNED if self.status == JobStatus.CREATED else self.status
        self._trigger(self.AssignmentCreated, request, assignment_id=new_id,
                      contractor_id=contractor_id, start_utc=start_utc, end_utc=end_utc,
                      job_status=str(status))
        return new_id

    def confirm_assignment(self, *, request: Request, assignment_id: UUID) -> None:
        assignment = self.assignment(assignment_id)
        actor = request.actor
        if not actor.is_staff and assignment.contractor_id != actor.contractor_id:
            raise Forbidden("Only the assigned contractor, a Dispatcher or an Admin "
                            "may confirm this assignment.")
        if self.is_terminal or assignment.status != AssignmentStatus.PENDING:
            raise AssignmentNotConfirmable(
                f"The assignment is {assignment.status} and the job is {self.status}; "
                "only a Pending assignment of a live job can be confirmed.",
                job_id=self.id, current_status=self.status)
        self._trigger(self.AssignmentConfirmed, request, assignment_id=assignment.id,
                      contractor_id=assignment.contractor_id)

    def cancel_assignment(self, *, request: Request, assignment_id: UUID,
                          reason: str | None = None) -> None:
        request.actor.require_staff()
        assignment = self.assignment(assignment_id)
        if self.is_terminal or assignment.status not in UNSTARTED:
            raise AssignmentNotCancellable(
                f"The assignment is {assignment.status}; only a Pending or Confirmed "
                "assignment of a live job can be cancelled.",
                job_id=self.id, current_status=self.status)
        others_left = any(
            a.status in UNSTARTED for a in self.assignments if a.id != assignment.id)
        status = self.status
        if status == JobStatus.ASSIGNED and not others_left:
            status = JobStatus.CREATED
        self._trigger(self.AssignmentCancelled, request, assignment_id=assignment.id,
                      contractor_id=assignment.contractor_id, reason=reason,
                      job_status=str(status))

    def start(self, *, request: Request) -> None:
        request.actor.require_staff()
        ready = [a for a in self.assignments if a.status in UNSTARTED]
        if self.status != JobStatus.ASSIGNED or not ready:
            raise InvalidTransition(
                f"A {self.status} job cannot be started; it must be Assigned with a "
                "Pending or Confirmed assignment.", job_id=self.id,
                current_status=self.status)
        self._trigger(self.Started, request, assignments=_refs(ready))

    def complete(self, *, request: Request) -> None:
        request.actor.require_staff()
        if self.status != JobStatus.IN_PROGRESS:
            raise InvalidTransition(
                f"A {self.status} job cannot be completed; it must be InProgress.",
                job_id=self.id, current_status=self.status)
        working = [a for a in self.assignments if a.status == AssignmentStatus.IN_PROGRESS]
        self._trigger(self.Completed, request, assignments=_refs(working))

    def cancel(self, *, request: Request, reason: str | None = None,
               reason_code: str = ReasonCode.OTHER) -> None:
        """Cancel the job and every live assignment, as one batch of events."""
        request.actor.require_staff()
        if self.status == JobStatus.COMPLETED:
            raise JobCompleted("A completed job cannot be cancelled.", job_id=self.id,
                               current_status=self.status)
        if self.status == JobStatus.CANCELLED:
            raise JobAlreadyCancelled("The job is already cancelled.", job_id=self.id,
                                      current_status=self.status)
        live = [a for a in self.assignments if a.is_live]
        for assignment in live:
            self._trigger(self.AssignmentCancelled, request, assignment_id=assignment.id,
                          contractor_id=assignment.contractor_id, reason=reason,
                          job_status=str(self.status))
        self._trigger(self.Cancelled, request, reason=reason,
                      reason_code=str(reason_code), cancelled_by=request.actor.sub,
                      cancelled_assignments=_refs(live))

    # Queries -------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def assignment(self, assignment_id: UUID) -> Assignment:
        for assignment in self.assignments:
            if assignment.id == assignment_id:
                return assignment
        raise AssignmentNotFound(
            f"Job {self.id} has no assignment {assignment_id}.",
            job_id=self.id, assignment_id=assignment_id)

    def is_visible_to(self, actor: Actor) -> bool:
        """Staff see every job; a contractor sees the jobs they are assigned to."""
        return actor.is_staff or (
            actor.contractor_id is not None
            and any(a.contractor_id == actor.contractor_id for a in self.assignments))

    def replays(self, request: Request) -> bool:
        """True when this request repeats one the job has already carried out.

        Raises IdempotencyKeyReused when the key was used for a different request.
        """
        key = request.idempotency_key
        if not key or key not in self.idempotency:
            return False
        if self.idempotency[key] != request.fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used with a different request.",
                job_id=self.id, current_status=self.status)
        return True

    # Internals -----------------------------------------------------------

    def _trigger(self, event_class: Any, request: Request, **kwargs: Any) -> None:
        self.trigger_event(event_class, region=self.region, request=request.record(),
                           **kwargs)

    def set_assignment_status(self, ids: Iterable[UUID], status: str,
                              when: datetime) -> None:
        wanted = set(ids)
        for assignment in self.assignments:
            if assignment.id in wanted:
                assignment.status = status
                assignment.updated_at = when


def _refs(assignments: Iterable[Assignment]) -> list[dict[str, Any]]:
    return [{"assignmentId": str(a.id), "contractorId": str(a.contractor_id)}
            for a in assignments]
