"""Errors the application raises beside the domain's refusals."""

from __future__ import annotations

from uuid import UUID

from domain.errors import DomainError


class JobNotFound(DomainError):
    """Raised when no job has the given id (or the actor may not see it)."""

    def __init__(self, job_id: UUID | str) -> None:
        super().__init__(f"No job {job_id}.",
                         job_id=job_id if isinstance(job_id, UUID) else None)


class VersionNotFound(DomainError):
    """Raised when a job is asked for at a version it never had."""

    def __init__(self, job_id: UUID, version: int, current_version: int) -> None:
        super().__init__(f"Job {job_id} has versions 1 to {current_version}, "
                         f"not {version}.", job_id=job_id)
        self.version = version
        self.current_version = current_version


class PreconditionFailed(DomainError):
    """Raised when the caller's expected version is not the job's current version."""

    def __init__(self, job_id: UUID, expected: int, current_version: int) -> None:
        super().__init__(f"The job is at version {current_version}, not {expected}.",
                         job_id=job_id)
        self.expected = expected
        self.current_version = current_version


class ConcurrencyConflict(DomainError):
    """Raised when a command lost every optimistic-concurrency retry."""
