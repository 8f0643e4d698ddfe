"""The values of the domain: statuses, who asks and why, an assignment, the defaults.

Everything here is plain data with its own rules; the Job aggregate
(`domain.job`) is built from it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar, cast
from uuid import UUID

from domain.errors import Forbidden, InvalidJob


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


DEFAULT_REGION = "Default"
"""The region of a job created without one."""
DEFAULT_PRIORITY = Priority.NORMAL
"""The priority of a job created without one."""
DEFAULT_REASON_CODE = ReasonCode.OTHER
"""The reason code of a cancel that gives none."""

TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.CANCELLED})
UNSTARTED = frozenset({AssignmentStatus.PENDING, AssignmentStatus.CONFIRMED})
LIVE = UNSTARTED | {AssignmentStatus.IN_PROGRESS}

NO_CONTRACTOR = UUID(int=0)
"""A contractor id no assignment has: what a contractor whose sub is not an id lists."""


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
        """The staff rule: only a Dispatcher or an Admin may do this."""
        if not self.is_staff:
            raise Forbidden("Only a Dispatcher or an Admin may do this.")

    def require_staff_or(self, contractor_id: UUID) -> None:
        """Only staff, or the contractor `contractor_id`, may do this."""
        if not self.is_staff and contractor_id != self.contractor_id:
            raise Forbidden("Only the assigned contractor, a Dispatcher or an Admin "
                            "may confirm this assignment.")

    def assignments_to_list(self, contractor_id: UUID | None) -> UUID | None:
        """Whose assignments this actor may list when asking for `contractor_id`'s
        (None: everyone's). Staff list what they ask for; a contractor lists
        their own (NO_CONTRACTOR's, none, when their sub is not an id)."""
        if self.is_staff:
            return contractor_id
        if not self.is_contractor:
            raise Forbidden("Only staff and contractors may list assignments.")
        if contractor_id is not None and contractor_id != self.contractor_id:
            raise Forbidden("A contractor may list only their own assignments.")
        return self.contractor_id or NO_CONTRACTOR


Command = TypeVar("Command", bound=Callable[..., Any])


def staff_only(command: Command) -> Command:
    """The staff rule on a command that takes `request=`: only a Dispatcher or an
    Admin may run it. The application reads the mark (`is_staff_only`) to refuse
    before it reads anything."""

    @functools.wraps(command)
    def checked(*args: Any, request: Request, **kwargs: Any) -> Any:
        request.actor.require_staff()
        return command(*args, request=request, **kwargs)

    checked.staff_only = True  # type: ignore[attr-defined]
    return cast(Command, checked)


def is_staff_only(command: Callable[..., Any]) -> bool:
    return bool(getattr(command, "staff_only", False))


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
    updated_at: datetime | None = None

    @property
    def is_unstarted(self) -> bool:
        return self.status in UNSTARTED

    @property
    def is_live(self) -> bool:
        return self.status in LIVE


Refs = list[dict[str, Any]]
"""Assignments as events name them: [{"assignmentId": ..., "contractorId": ...}]."""


def refs(assignments: Iterable[Assignment]) -> Refs:
    return [{"assignmentId": str(a.id), "contractorId": str(a.contractor_id)}
            for a in assignments]


def ids_in(refs: Refs) -> list[UUID]:
    return [UUID(ref["assignmentId"]) for ref in refs]


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)
"""The instants a job may name: every reader can bring them to UTC and back."""
INSTANT_RANGE = f"{EARLIEST:%Y-%m-%dT%H:%M:%SZ} and {LATEST:%Y-%m-%dT%H:%M:%SZ}"
"""EARLIEST and LATEST as the messages name them."""


def require_instant(value: datetime, name: str) -> None:
    """Refuse an instant without a UTC offset, or outside EARLIEST..LATEST."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidJob(f"{name} must carry a UTC offset.", field=name)
    if not EARLIEST <= value <= LATEST:
        raise InvalidJob(f"{name} must fall between {INSTANT_RANGE}.", field=name)


def require_period(start: datetime, end: datetime, names: tuple[str, str],
                   reversed_period: tuple[str, str]) -> None:
    """Refuse a period whose ends are not instants (see require_instant), or one
    that does not end after it starts (InvalidJob with `reversed_period`'s message
    and field)."""
    require_instant(start, names[0])
    require_instant(end, names[1])
    if end <= start:
        message, field = reversed_period
        raise InvalidJob(message, field=field)
