"""What a rebuild takes from an event's stored state, without the mapper.

Part of the fast rebuild of the read models (`projections.rebuild`): the
`FIELDS` of each topic the read models need, and the checks that turn a field's
stored JSON into exactly what the application's mapper and the read models'
own statements would make of it (a time, a UUID, a scalar, a plain value).
Whatever a check does not know exactly raises `Fallback`, and the event is
decoded in full by the mapper instead (`projections.rebuild.decode`).
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.catalog import format_time

FIELDS: dict[str, list[str]] = {
    "smartscheduler.JobCreated": [
        "timestamp", "class_version", "type", "description", "duration_minutes",
        "priority", "region", "required_skills", "location", "window_start", "window_end"],
    "smartscheduler.AssignmentCreated": [
        "timestamp", "class_version", "assignment_id", "contractor_id", "start_utc",
        "end_utc", "region", "job_status"],
    "smartscheduler.AssignmentConfirmed": ["timestamp", "class_version", "assignment_id"],
    "smartscheduler.AssignmentCancelled": [
        "timestamp", "class_version", "assignment_id", "job_status"],
    "smartscheduler.JobStarted": ["timestamp", "class_version", "assignments"],
    "smartscheduler.JobCompleted": ["timestamp", "class_version", "assignments"],
    "smartscheduler.JobCancelled": [
        "timestamp", "class_version", "reason", "reason_code", "cancelled_by"],
}
"""The fields of its stored state the read models need, by topic (and
`class_version`, which must be absent: an upcast event is decoded in full)."""


class Fallback(Exception):
    """The fast path does not know this event exactly: decode it in full."""


HEX = re.compile(r"[0-9a-f]{32}").fullmatch


def uuid_text(value: Any) -> str:
    """The canonical text of a UUID stored as hex (SQLite) or given as a UUID."""
    if value.__class__ is str and len(value) == 32 and HEX(value):
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(value if isinstance(value, UUID) else UUID(value))


_SCALARS = frozenset({str, int, float, bool, type(None)})
_encoder: Any = json.encoder.c_make_encoder  # type: ignore[attr-defined]
_encode = (_encoder(None, None, json.encoder.encode_basestring_ascii, None, ": ", ", ",
                    False, False, True) if _encoder is not None else None)


def dumps(value: Any) -> str:
    """json.dumps(value) with its defaults, its C encoder made once, not per call."""
    if _encode is None:
        return json.dumps(value)
    return "".join(_encode(value, 0))


_decoder: Any = json.JSONDecoder()
scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_decoder)
"""json.loads without its checks: (value, end)."""


def parse_fields(text: str) -> list[Any]:
    """The values of an event's FIELDS from the JSON array SQLite made of them."""
    value, end = scan(text, 0)
    if end != len(text) or value.__class__ is not list:
        raise Fallback
    return value  # type: ignore[no-any-return]


def fields_of(topic: str, state: Any) -> list[Any] | None:
    """The values of the topic's FIELDS in a parsed state; None when the fast
    path cannot take them (the mapper decides, from the stored state)."""
    names = FIELDS.get(topic)
    if names is None or state.__class__ is not dict:
        return None
    try:
        return [state.get(name) if name == "class_version" else state[name]
                for name in names]
    except KeyError:
        return None


def stored_time(value: Any) -> str:
    """`format_time` of a stored `datetime_iso`; in UTC, without the datetime."""
    if value.__class__ is not dict or len(value) != 2 or value.get("_type_") != "datetime_iso":
        raise Fallback
    text = value["_data_"]
    if text.__class__ is str and text[-6:] == "+00:00":
        if len(text) == 32 and text[19] == "." and text[10] == "T":  # isoformat's two
            return text[:26] + "Z"                                   # forms in UTC
        if len(text) == 25 and text[10] == "T":
            return text[:19] + ".000000Z"
    return format_time(datetime.fromisoformat(text))


def stored_uuid(value: Any) -> str:
    if value.__class__ is not dict or len(value) != 2 or value.get("_type_") != "uuid_hex":
        raise Fallback
    text = value["_data_"]
    if text.__class__ is not str or len(text) != 32 or not HEX(text):
        raise Fallback
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def scalar(value: Any) -> Any:
    if value.__class__ not in _SCALARS:
        raise Fallback
    return value


def plain(value: Any) -> Any:
    """The value, when it holds no encoded object (which the mapper would decode)."""
    kind = value.__class__
    if kind in _SCALARS:
        return value
    if kind is list:
        for item in value:
            if item.__class__ is not str:
                plain(item)
        return value
    if kind is dict and "_type_" not in value:
        for item in value.values():
            plain(item)
        return value
    raise Fallback

