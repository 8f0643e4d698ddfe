"""Errors raised by the Job aggregate when a command is refused."""

from __future__ import annotations

from uuid import UUID


class DomainError(Exception):
    """Base class of every refusal the domain can give."""

    def __init__(self, message: str, *, job_id: UUID | None = None,
                 current_status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.job_id = job_id
        self.current_status = current_status


class InvalidJob(DomainError):
    """Raised when the data for a job or an assignment breaks an invariant."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class Forbidden(DomainError):
    """Raised when the actor's roles do not allow the command."""


class JobCompleted(DomainError):
    """Raised when a completed job is asked to be cancelled."""


class JobAlreadyCancelled(DomainError):
    """Raised when a cancelled job is asked to be cancelled again."""


class InvalidTransition(DomainError):
    """Raised when the job's status does not allow the command (start, complete)."""


class JobNotAssignable(DomainError):
    """Raised when an assignment cannot be added to the job."""


class AssignmentNotFound(DomainError):
    """Raised when the job has no assignment with the given id."""

    def __init__(self, message: str, *, job_id: UUID, assignment_id: UUID) -> None:
        super().__init__(message, job_id=job_id)
        self.assignment_id = assignment_id


class AssignmentNotConfirmable(DomainError):
    """Raised when an assignment is not Pending, or its job is terminal."""


class AssignmentNotCancellable(DomainError):
    """Raised when an assignment is neither Pending nor Confirmed."""


class IdempotencyKeyReused(DomainError):
    """Raised when an idempotency key comes back with a different request."""
