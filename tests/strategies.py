"""Hypothesis strategies: what the HTTP contract accepts, and what it refuses.

The accepted side generates stories of valid commands, one job each: a
create body with any text the contract accepts in every string field and any
timestamp it accepts at any offset, then a walk through the lifecycle that a
tiny model (`Lifecycle`) keeps valid, each command with accepted headers. The
refused side generates the values the contract's "What is accepted" table
turns away: U+0000 and unpaired surrogates in strings, instants outside
1970-01-01T00:00:00Z .. 9999-12-30T23:59:59Z, JSON nested too deep.

Bodies are carried as the JSON text that is sent (`json.dumps`, with `\\u`
escapes or raw UTF-8), so a falsifying example shows exactly what went over
the wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)
MAX_OFFSET = 23 * 60 + 59
"""Minutes: the largest UTC offset ISO 8601 can write (+23:59 / -23:59)."""
MAX_MINUTES = 60 * 24 * 31
REASON_CODES = ["CustomerRequest", "ContractorUnavailable", "Weather", "Duplicate", "Other"]
PRIORITIES = ["Normal", "High", "Rush"]

LIVE = {"Pending", "Confirmed", "InProgress"}
UNSTARTED = {"Pending", "Confirmed"}
TERMINAL = {"Completed", "Cancelled"}

# Characters that have broken text handling somewhere: whitespace that str.strip()
# removes, controls, separators JSON and SSE treat specially, BOM, non-characters,
# the last code point, astral characters (two UTF-16 units), SQL and URL syntax.
AWKWARD = list("\t\n\r \x01\x1f\x7f\x85\xa0\u1680\u2028\u2029\u200b\ufeff\ufffd\uffff"
               "\U0001f600\U0010ffff\U000e0001'\"\\%_;&<>?#+=/:,")

storable_characters = st.one_of(
    st.characters(exclude_categories=["Cs"], exclude_characters=["\x00"]),
    st.sampled_from(AWKWARD),
)
"""Every code point but U+0000 and the surrogates: what any string may hold."""


@st.composite
def storable_text(draw: st.DrawFn, min_size: int = 0, max_size: int = 100) -> str:
    """Text the contract accepts in an untrimmed field; one in ten of the longest length."""
    if draw(st.integers(0, 9)) == 9:  # shrinks towards 0: the ordinary lengths
        min_size = max_size
    return draw(st.text(storable_characters, min_size=min_size, max_size=max_size))


def trimmed_text(max_size: int) -> st.SearchStrategy[str]:
    """Text of a trimmed field: 1 to `max_size` characters after str.strip()."""
    return storable_text(1, max_size).filter(lambda text: text.strip() != "")


# Timestamps -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """A timestamp as sent (`text`) and the instant it names."""

    text: str
    instant: datetime


EDGE_INSTANTS = [
    EARLIEST, EARLIEST + timedelta(microseconds=1), EARLIEST + timedelta(seconds=1),
    datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC), datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
    datetime(2000, 2, 29, 12, tzinfo=UTC),
    LATEST - timedelta(seconds=1), LATEST,
]
EDGE_OFFSETS = [0, MAX_OFFSET, -MAX_OFFSET, 1, -1, 5 * 60 + 30, -(3 * 60 + 30), 14 * 60]

instants = st.one_of(
    st.sampled_from(EDGE_INSTANTS),
    st.datetimes(min_value=EARLIEST.replace(tzinfo=None),
                 max_value=LATEST.replace(tzinfo=None)).map(lambda d: d.replace(tzinfo=UTC)),
)
offsets = st.one_of(st.sampled_from(EDGE_OFFSETS), st.integers(-MAX_OFFSET, MAX_OFFSET))


def offset_text(minutes: int, style: str) -> str:
    """An ISO 8601 UTC offset: Z, +HH:MM or +HHMM."""
    if minutes == 0 and style == "Z":
        return "Z"
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    separator = ":" if style == "extended" else ""
    return f"{sign}{hours:02d}{separator}{rest:02d}"


def iso_text(local: datetime, digits: int, offset: str) -> str:
    """`local`'s wall-clock time in ISO 8601 with `digits` of fraction (0, 3 or 6)."""
    fraction = f".{local.microsecond:06d}"[: digits + 1] if digits else ""
    return f"{local.year:04d}-{local:%m-%dT%H:%M:%S}{fraction}{offset}"


@st.composite
def stamps(draw: st.DrawFn) -> Stamp:
    """An accepted timestamp: an instant in range, written at any offset."""
    moment = draw(instants)
    digits = draw(st.sampled_from([0, 3, 6]))
    # Only the digits written count: drop the rest (never below EARLIEST, a whole second).
    moment = moment.replace(microsecond=moment.microsecond // 10 ** (6 - digits)
                            * 10 ** (6 - digits))
    minutes = draw(offsets)
    local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    style = draw(st.sampled_from(["Z", "extended", "basic"]))
    return Stamp(iso_text(local, digits, offset_text(minutes, style)), moment)


@st.composite
def ordered_stamps(draw: st.DrawFn) -> tuple[Stamp, Stamp]:
    """Two accepted timestamps, the second strictly later."""
    first, second = draw(st.tuples(stamps(), stamps()).filter(
        lambda pair: pair[0].instant != pair[1].instant))
    return (first, second) if first.instant < second.instant else (second, first)


@st.composite
def out_of_range_stamps(draw: st.DrawFn, side: str) -> str:
    """A well-formed timestamp whose UTC value lies before EARLIEST ("low") or after
    LATEST ("high"), at any offset; its wall-clock time may be anything Python can
    write, from 0001-01-01 to 9999-12-31."""
    if side == "low":
        local = draw(st.datetimes(min_value=datetime(1, 1, 1),
                                  max_value=datetime(1970, 1, 1, 23, 58, 59)))
    else:
        local = draw(st.datetimes(min_value=datetime(9999, 12, 30),
                                  max_value=datetime(9999, 12, 31, 23, 59, 59)))
    local = local.replace(microsecond=0)
    minutes = draw(offsets)
    # The UTC value, counted in seconds: it may lie beyond what a datetime can hold.
    utc_seconds = (local - datetime(1970, 1, 1)).total_seconds() - minutes * 60
    latest = (LATEST - EARLIEST).total_seconds()
    assume(utc_seconds < 0 if side == "low" else utc_seconds > latest)
    return iso_text(local, 0, offset_text(minutes, draw(st.sampled_from(["Z", "extended"]))))


# Requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who sends a command: the token's one role and its subject."""

    role: str
    sub: str


@dataclass(frozen=True)
class Command:
    """One HTTP command against a job, with everything that goes over the wire.

    `assignment` is the index (in creation order) of the assignment a confirm or
    unassign is about. `if_match` is None, "*" or "current" (the job's version
    before the command). `retried`: sent twice, the second time as a retry.
    """

    action: str
    caller: Caller
    body: str | None = None
    assignment: int | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    if_match: str | None = None
    retried: bool = False

    @property
    def payload(self) -> Any:
        """The body as JSON (None when there is none, or when it is null)."""
        return None if self.body is None else json.loads(self.body)


@dataclass(frozen=True)
class Story:
    """A job's life: its create command, then valid commands on it."""

    create: Command
    commands: tuple[Command, ...]


# The lifecycle model ------------------------------------------------------------------


@dataclass
class ExpectedAssignment:
    contractor_id: str
    start: datetime
    end: datetime
    status: str = "Pending"


@dataclass
class Lifecycle:
    """What the contract says a job is after each command: a tiny reference model."""

    status: str = "Created"
    version: int = 1
    assignments: list[ExpectedAssignment] = field(default_factory=list)
    cancellation: dict[str, Any] | None = None

    def actions(self) -> list[str]:
        """The commands the job accepts now."""
        if self.status in TERMINAL:
            return []
        found = ["assign", "cancel"]
        if any(a.status == "Pending" for a in self.assignments):
            found.append("confirm")
        if any(a.status in UNSTARTED for a in self.assignments):
            found.append("unassign")
            if self.status == "Assigned":
                found.append("start")
        if self.status == "InProgress":
            found.append("complete")
        return found

    def apply(self, command: Command) -> list[str]:
        """Carry out an accepted command; the types of the events it stores."""
        events = getattr(self, f"_{command.action}")(command)
        self.version += len(events)
        return events

    def _assign(self, command: Command) -> list[str]:
        body = command.payload
        self.assignments.append(ExpectedAssignment(
            body["contractorId"], parse_instant(body["startUtc"]),
            parse_instant(body["endUtc"])))
        if self.status == "Created":
            self.status = "Assigned"
        return ["AssignmentCreated"]

    def _confirm(self, command: Command) -> list[str]:
        self._assignment(command).status = "Confirmed"
        return ["AssignmentConfirmed"]

    def _unassign(self, command: Command) -> list[str]:
        self._assignment(command).status = "Cancelled"
        if self.status == "Assigned" and not any(
                a.status in UNSTARTED for a in self.assignments):
            self.status = "Created"
        return ["AssignmentCancelled"]

    def _start(self, command: Command) -> list[str]:
        for assignment in self.assignments:
            if assignment.status in UNSTARTED:
                assignment.status = "InProgress"
        self.status = "InProgress"
        return ["JobStarted"]

    def _complete(self, command: Command) -> list[str]:
        for assignment in self.assignments:
            if assignment.status == "InProgress":
                assignment.status = "Completed"
        self.status = "Completed"
        return ["JobCompleted"]

    def _cancel(self, command: Command) -> list[str]:
        live = [a for a in self.assignments if a.status in LIVE]
        for assignment in live:
            assignment.status = "Cancelled"
        body = command.payload or {}
        self.cancellation = {"reason": trimmed(body.get("reason")),
                             "reasonCode": body.get("reasonCode", "Other"),
                             "cancelledBy": command.caller.sub}
        self.status = "Cancelled"
        return ["AssignmentCancelled"] * len(live) + ["JobCancelled"]

    def _assignment(self, command: Command) -> ExpectedAssignment:
        assert command.assignment is not None
        return self.assignments[command.assignment]


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def trimmed(text: str | None) -> str | None:
    return None if text is None else text.strip()


# Strategies of whole stories ----------------------------------------------------------


def json_text(draw: st.DrawFn, value: Any) -> str:
    """The body as sent: ASCII with \\u escapes, or raw UTF-8."""
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


def optional(draw: st.DrawFn, body: dict[str, Any], name: str,
             value: st.SearchStrategy[Any]) -> None:
    """Put `name` in `body`, or leave it out (the contract's default applies)."""
    if draw(st.booleans()):
        body[name] = draw(value)


locations = st.fixed_dictionaries({
    "address": trimmed_text(500),
    "latitude": st.one_of(st.integers(-90, 90), st.floats(-90, 90, allow_nan=False)),
    "longitude": st.one_of(st.integers(-180, 180), st.floats(-180, 180, allow_nan=False)),
})


@st.composite
def job_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid POST /api/jobs body, every optional field present or absent."""
    start, end = draw(ordered_stamps())
    body: dict[str, Any] = {"type": draw(trimmed_text(200)),
                            "durationMinutes": draw(st.integers(1, MAX_MINUTES)),
                            "serviceWindow": {"start": start.text, "end": end.text}}
    optional(draw, body, "description", st.none() | storable_text(0, 4000))
    optional(draw, body, "priority", st.sampled_from(PRIORITIES))
    optional(draw, body, "region", trimmed_text(100))
    optional(draw, body, "requiredSkills", st.lists(trimmed_text(100), max_size=50))
    optional(draw, body, "location", st.none() | locations)
    return body


request_ids = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                      min_size=1, max_size=200).filter(lambda t: t == t.strip())
"""X-Request-Id values the service echoes (printable ASCII; a real server would
trim surrounding spaces, so none are sent)."""
idempotency_keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                           min_size=1, max_size=255)
subs = st.one_of(st.just("dispatcher-1"), storable_text(1, 64))
"""Token subjects: any non-empty text (stored as the actor, and as cancelledBy)."""
staff = st.builds(Caller, st.sampled_from(["Dispatcher", "Admin"]), subs)


class Headers:
    """Draws the accepted headers of a command; Idempotency-Keys are never reused."""

    def __init__(self, draw: st.DrawFn, used_keys: set[str]) -> None:
        self.draw = draw
        self.used_keys = used_keys

    def __call__(self, *, if_match: bool = True) -> dict[str, Any]:
        draw = self.draw
        key = draw(st.none() | idempotency_keys)
        if key in self.used_keys:
            key = None
        if key is not None:
            self.used_keys.add(key)
        match = draw(st.sampled_from([None, "*", "current"])) if if_match else None
        return {"request_id": draw(st.none() | request_ids), "idempotency_key": key,
                "if_match": match,
                # A retry without If-Match: with one, the contract leaves the order
                # of the two checks open.
                "retried": key is not None and match is None and draw(st.booleans())}


def optional_body(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> str | None:
    """An optional body: none at all, JSON null, or an object with any of `fields`."""
    shape = draw(st.sampled_from(["none", "null", "object"]))
    if shape == "none":
        return None
    if shape == "null":
        return "null"
    body: dict[str, Any] = {}
    for name, value in fields.items():
        optional(draw, body, name, value)
    return json_text(draw, body)


reasons = st.none() | trimmed_text(500)


def _command(draw: st.DrawFn, action: str, job: Lifecycle, headers: Headers) -> Command:
    caller = draw(staff)
    body: str | None = None
    index: int | None = None
    if action == "assign":
        idle = sorted({a.contractor_id for a in job.assignments}
                      - {a.contractor_id for a in job.assignments if a.status in LIVE})
        reuse = bool(idle) and draw(st.booleans())
        contractor = draw(st.sampled_from(idle)) if reuse else str(draw(st.uuids()))
        start, end = draw(ordered_stamps())
        body = json_text(draw, {"contractorId": contractor, "startUtc": start.text,
                                "endUtc": end.text})
    elif action == "confirm":
        index = draw(st.sampled_from(
            [i for i, a in enumerate(job.assignments) if a.status == "Pending"]))
        if draw(st.booleans()):
            caller = Caller("Contractor", job.assignments[index].contractor_id)
    elif action == "unassign":
        index = draw(st.sampled_from(
            [i for i, a in enumerate(job.assignments) if a.status in UNSTARTED]))
        body = optional_body(draw, {"reason": reasons})
    elif action == "cancel":
        body = optional_body(draw, {"reason": reasons,
                                    "reasonCode": st.sampled_from(REASON_CODES)})
    return Command(action, caller, body, index, **headers())


@st.composite
def stories(draw: st.DrawFn, commands: int = 7) -> Story:
    """A job's create command, then up to `commands` valid commands on it."""
    headers = Headers(draw, set())
    create = Command("create", draw(staff), json_text(draw, draw(job_bodies())),
                     **headers(if_match=False))
    job, steps = Lifecycle(), []
    for _ in range(draw(st.integers(0, commands))):
        if not job.actions():
            break
        # Cancelling ends a story: a third as likely, so that lives run on.
        actions = [a for a in job.actions() for _ in range(1 if a == "cancel" else 3)]
        step = _command(draw, draw(st.sampled_from(actions)), job, headers)
        job.apply(step)
        steps.append(step)
    return Story(create, tuple(steps))


# Refused values -------------------------------------------------------------------------

unstorable_characters = st.one_of(st.just("\x00"),
                                  st.integers(0xD800, 0xDFFF).map(chr))
"""U+0000, or one surrogate on its own: never paired, wherever it is put."""


@st.composite
def corrupted(draw: st.DrawFn, text: st.SearchStrategy[str],
              bad: st.SearchStrategy[str] = unstorable_characters) -> str:
    """An accepted string with U+0000 or an unpaired surrogate inserted anywhere."""
    value = draw(text)
    at = draw(st.integers(0, len(value)))
    return value[:at] + draw(bad) + value[at:]


@st.composite
def deep_json(draw: st.DrawFn, min_depth: int = 33, max_depth: int = 3000) -> str:
    """JSON text of `min_depth` or more nested arrays and objects."""
    depth = draw(st.integers(min_depth, max_depth))
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=8))
    opening, closing = [], []
    for level in range(depth):
        if kinds[level % len(kinds)]:
            opening.append("[")
            closing.append("]")
        else:
            opening.append('{"a": ')
            closing.append("}")
    return "".join(opening) + "1" + "".join(reversed(closing))
