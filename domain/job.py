"""The Job aggregate. Each command checks the request, then calls an `@event`
method whose body is the state change: the library makes it an event class (its
parameters are the event's attributes) and runs it again for each stored event."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, CanMutateAggregate, event

from domain import errors
from domain.values import (
    DEFAULT_PRIORITY,
    DEFAULT_REASON_CODE,
    DEFAULT_REGION,
    TERMINAL,
    Actor,
    Assignment,
    AssignmentStatus,
    JobStatus,
    Refs,
    Request,
    ids_in,
    refs,
    require_period,
    staff_only,
)


class Job(Aggregate):
    """A field-service job: created, assigned, started, completed or cancelled.
    Its assignments are entities in it: a job and its assignments cancel in one
    append. An `@event` body's `timestamp` is its event's (None when a command
    calls it: the library stamps the event)."""

    TOPIC = "smartscheduler.Job"

    class Event(Aggregate.Event):
        """Every event names the job's region and the request that caused it."""

        region: str
        request: dict[str, Any]

        def apply(self, aggregate: Any) -> None:  # after the body, for every event
            aggregate.updated_at = self.timestamp
            if key := self.request.get("idempotencyKey"):
                aggregate.idempotency[key] = self.request.get("fingerprint")

    if TYPE_CHECKING:  # the event classes the @event decorators below define
        Created: type[Any]
        AssignmentCreated: type[Any]
        AssignmentConfirmed: type[Any]
        AssignmentCancelled: type[Any]
        Started: type[Any]
        Completed: type[Any]
        Cancelled: type[Any]

    @classmethod
    @staff_only
    def create(cls, *, request: Request, type: str, duration_minutes: int,
               window_start: datetime, window_end: datetime, region: str = DEFAULT_REGION,
               priority: str = DEFAULT_PRIORITY, description: str | None = None,
               required_skills: Iterable[str] = (), location: dict[str, Any] | None = None,
               id: UUID | None = None) -> Job:
        require_period(window_start, window_end, ("serviceWindow.start", "serviceWindow.end"),
                       ("The service window must end after it starts.", "serviceWindow"))
        if duration_minutes <= 0:
            raise errors.InvalidJob("durationMinutes must be positive.", field="durationMinutes")
        return cls._create(
            cls.Created, id=id or uuid4(), request=request.record(), type=type,
            description=description, duration_minutes=duration_minutes,
            priority=str(priority), region=region,
            required_skills=list(dict.fromkeys(required_skills)), location=location,
            window_start=window_start, window_end=window_end)

    @event("Created", topic="smartscheduler.JobCreated")
    def __init__(self, *, request: dict[str, Any], type: str, description: str | None,
                 duration_minutes: int, priority: str, region: str,
                 required_skills: list[str], location: dict[str, Any] | None,
                 window_start: datetime, window_end: datetime) -> None:
        self.type, self.description, self.priority = type, description, priority
        self.duration_minutes, self.region = duration_minutes, region
        self.required_skills, self.location = list(required_skills), location
        self.window_start, self.window_end = window_start, window_end
        self.status: str = JobStatus.CREATED
        self.assignments: list[Assignment] = []
        self.cancellation: dict[str, Any] | None = None
        self.created_at = self.updated_at = self.created_on
        self.idempotency: dict[str, str | None] = {}

    @staff_only
    def assign(self, *, request: Request, contractor_id: UUID, start_utc: datetime,
               end_utc: datetime, assignment_id: UUID | None = None) -> UUID:
        require_period(start_utc, end_utc, ("startUtc", "endUtc"),
                       ("endUtc must be after startUtc.", "endUtc"))
        if self.is_terminal:
            raise self._refusal(errors.JobNotAssignable, f"A {self.status} job cannot be assigned.")
        if any(a.contractor_id == contractor_id and a.is_live for a in self.assignments):
            raise self._refusal(errors.JobNotAssignable, "This contractor already has "
                                "a live assignment on this job.")
        new_id = assignment_id or uuid4()
        status = JobStatus.ASSIGNED if self.status == JobStatus.CREATED else self.status
        self._assign(request.record(), new_id, contractor_id, start_utc, end_utc, str(status))
        return new_id

    @event("AssignmentCreated", topic="smartscheduler.AssignmentCreated")
    def _assign(self, request: dict[str, Any], assignment_id: UUID, contractor_id: UUID,
                start_utc: datetime, end_utc: datetime, job_status: str,
                timestamp: datetime | None = None) -> None:
        self.assignments.append(Assignment(assignment_id, contractor_id, start_utc,
                                           end_utc, updated_at=timestamp))
        self.status = job_status

    def confirm_assignment(self, *, request: Request, assignment_id: UUID) -> None:
        assignment = self.assignment(assignment_id)
        request.actor.require_staff_or(assignment.contractor_id)
        if self.is_terminal or assignment.status != AssignmentStatus.PENDING:
            raise self._refusal(errors.AssignmentNotConfirmable, (
                f"The assignment is {assignment.status} and the job is {self.status}; "
                "only a Pending assignment of a live job can be confirmed."))
        self._confirm(request.record(), assignment.id, assignment.contractor_id)

    @event("AssignmentConfirmed", topic="smartscheduler.AssignmentConfirmed")
    def _confirm(self, request: dict[str, Any], assignment_id: UUID, contractor_id: UUID,
                 timestamp: datetime | None = None) -> None:
        self._set_assignment_status([assignment_id], AssignmentStatus.CONFIRMED, timestamp)

    @staff_only
    def cancel_assignment(self, *, request: Request, assignment_id: UUID,
                          reason: str | None = None) -> None:
        assignment = self.assignment(assignment_id)
        if self.is_terminal or not assignment.is_unstarted:
            raise self._refusal(errors.AssignmentNotCancellable, (
                f"The assignment is {assignment.status}; only a Pending or Confirmed "
                "assignment of a live job can be cancelled."))
        others_left = any(a.is_unstarted for a in self.assignments if a is not assignment)
        status = (JobStatus.CREATED if self.status == JobStatus.ASSIGNED and not others_left
                  else self.status)
        self._cancel_assignment(request.record(), assignment.id, assignment.contractor_id,
                                reason, str(status))

    @event("AssignmentCancelled", topic="smartscheduler.AssignmentCancelled")
    def _cancel_assignment(self, request: dict[str, Any], assignment_id: UUID,
                           contractor_id: UUID, reason: str | None, job_status: str,
                           timestamp: datetime | None = None) -> None:
        self._set_assignment_status([assignment_id], AssignmentStatus.CANCELLED, timestamp)
        self.status = job_status

    @staff_only
    def start(self, *, request: Request) -> None:
        ready = [a for a in self.assignments if a.is_unstarted]
        if self.status != JobStatus.ASSIGNED or not ready:
            raise self._refusal(errors.InvalidTransition, (
                f"A {self.status} job cannot be started; it must be Assigned with a "
                "Pending or Confirmed assignment."))
        self._start(request.record(), refs(ready))

    @event("Started", topic="smartscheduler.JobStarted")
    def _start(self, request: dict[str, Any], assignments: Refs,
               timestamp: datetime | None = None) -> None:
        self._set_assignment_status(ids_in(assignments), AssignmentStatus.IN_PROGRESS, timestamp)
        self.status = JobStatus.IN_PROGRESS

    @staff_only
    def complete(self, *, request: Request) -> None:
        if self.status != JobStatus.IN_PROGRESS:
            raise self._refusal(errors.InvalidTransition,
                                f"A {self.status} job cannot be completed; it must be InProgress.")
        working = [a for a in self.assignments if a.status == AssignmentStatus.IN_PROGRESS]
        self._complete(request.record(), refs(working))

    @event("Completed", topic="smartscheduler.JobCompleted")
    def _complete(self, request: dict[str, Any], assignments: Refs,
                  timestamp: datetime | None = None) -> None:
        self._set_assignment_status(ids_in(assignments), AssignmentStatus.COMPLETED, timestamp)
        self.status = JobStatus.COMPLETED

    @staff_only
    def cancel(self, *, request: Request, reason: str | None = None,
               reason_code: str = DEFAULT_REASON_CODE) -> None:
        """Cancel the job and each live assignment: n + 1 events, appended together."""
        if self.status == JobStatus.COMPLETED:
            raise self._refusal(errors.JobCompleted, "A completed job cannot be cancelled.")
        if self.status == JobStatus.CANCELLED:
            raise self._refusal(errors.JobAlreadyCancelled, "The job is already cancelled.")
        live = [a for a in self.assignments if a.is_live]
        for a in live:
            self._cancel_assignment(request.record(), a.id, a.contractor_id, reason,
                                    str(self.status))
        self._cancel(request.record(), reason, str(reason_code), request.actor.sub,
                     refs(live))

    @event("Cancelled", topic="smartscheduler.JobCancelled")
    def _cancel(self, request: dict[str, Any], reason: str | None, reason_code: str,
                cancelled_by: str, cancelled_assignments: Refs,
                timestamp: datetime | None = None) -> None:
        self.status = JobStatus.CANCELLED
        self.cancellation = {"reason": reason, "reasonCode": reason_code,
                             "cancelledBy": cancelled_by, "cancelledAt": timestamp}

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def assignment(self, assignment_id: UUID) -> Assignment:
        for assignment in self.assignments:
            if assignment.id == assignment_id:
                return assignment
        raise errors.AssignmentNotFound(f"Job {self.id} has no assignment {assignment_id}.",
                                        job_id=self.id, assignment_id=assignment_id)

    def is_visible_to(self, actor: Actor) -> bool:
        """Staff see every job; a contractor sees the jobs they are assigned to."""
        return actor.is_staff or any(
            a.contractor_id == actor.contractor_id for a in self.assignments)

    def replays(self, request: Request) -> bool:
        """True when this request repeats one the job has already carried out;
        IdempotencyKeyReused when its key was used for a different request."""
        key = request.idempotency_key
        if not key or key not in self.idempotency:
            return False
        if self.idempotency[key] != request.fingerprint:
            raise self._refusal(errors.IdempotencyKeyReused, "This Idempotency-Key was "
                                "already used with a different request.")
        return True

    def trigger_event(self, event_class: type[CanMutateAggregate[UUID]],
                      **kwargs: Any) -> None:  # every event after Created: see Event
        super().trigger_event(event_class, region=self.region, **kwargs)

    def _set_assignment_status(self, ids: Collection[UUID], status: str,
                              when: datetime | None) -> None:
        for assignment in self.assignments:
            if assignment.id in ids:
                assignment.status, assignment.updated_at = status, when

    def _refusal(self, error: type[errors.DomainError], message: str) -> Exception:
        return error(message, job_id=self.id, current_status=self.status)

