"""What the views need from the HTTP request: who asks, and on what terms."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from flask import current_app, g, request

from application.dispatch import Dispatch, Outcome
from application.errors import JobNotFound
from domain.values import Actor, Request
from projections.store import DispatchViews
from web import inputs
from web.problems import Problem
from web.services import services

REQUEST_ID = re.compile(r"^[\x20-\x7e]{1,200}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
ETAG_VALUE = re.compile(r'^"(0|[1-9][0-9]*)"$')  # strong: "01" is not "1"

View = TypeVar("View", bound=Callable[..., Any])


def dispatch() -> Dispatch:
    return services().app


def actor() -> Actor:
    return g.actor


def staff_only(view: View) -> View:
    """Refuse (403) anyone but a Dispatcher or an Admin before the body is even read.

    Put it above @blp.arguments: a role that may not do this gets 403, not a 422
    about a body it was never allowed to send.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        actor().require_staff()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def request_id() -> str:
    """The caller's X-Request-Id when it is sane, else a fresh one."""
    given = request.headers.get("X-Request-Id", "")
    return given if REQUEST_ID.match(given) else str(uuid.uuid4())


def command_request() -> Request:
    """The Request a command records: actor, request id, idempotency key, fingerprint.

    What it records must be storable by every reader, like the body (web.inputs).
    """
    who = actor()
    inputs.check_text("X-Request-Id", request.headers.get("X-Request-Id"))
    inputs.check_text("sub", who.sub)
    for role in who.roles:
        inputs.check_text("roles", role)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise Problem(422, "validation_failed", "Validation failed",
                      "Idempotency-Key must be 1 to 255 visible ASCII characters.",
                      errors={"Idempotency-Key": ["1 to 255 visible ASCII characters."]})
    fingerprint = None
    if key is not None:
        canonical = json.dumps([request.method, request.path, inputs.parsed_body()],
                               sort_keys=True, separators=(",", ":"))
        fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
    return Request(who, request_id=g.request_id, idempotency_key=key,
                   fingerprint=fingerprint)


def expected_version() -> int | None:
    """The version named by If-Match; None when absent or '*'."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    match = ETAG_VALUE.match(header.strip())
    # A weak, malformed or multi-valued tag can never match a strong version tag.
    return int(match.group(1)) if match else -1


def job_id(text: str) -> UUID:
    """A job id from the path; a malformed one is simply a job that does not exist."""
    try:
        return UUID(text)
    except ValueError:
        raise JobNotFound(text) from None


def assignment_id(text: str) -> UUID:
    """An assignment id from the path; a malformed one matches no assignment."""
    try:
        return UUID(text)
    except ValueError:
        return UUID(int=0)


def job_headers(outcome_or_version: Outcome | int) -> dict[str, str]:
    if isinstance(outcome_or_version, Outcome):
        headers = {"ETag": f'"{outcome_or_version.job.version}"'}
        if outcome_or_version.replayed:
            headers["Idempotent-Replayed"] = "true"
        return headers
    return {"ETag": f'"{outcome_or_version}"'}


# No listing reaches this page; past it, (page - 1) * page_size would overflow the
# 64-bit OFFSET of SQLite and PostgreSQL (a 500) instead of being an empty page.
LAST_POSSIBLE_PAGE = 10**16


def page_to_read(page: int) -> int:
    """The page to ask the read models for: any later page is just as empty."""
    return min(page, LAST_POSSIBLE_PAGE)


def caught_up_views() -> DispatchViews:
    """The read models, once they have applied everything committed before now.

    So a list read right after a command sees it (read-your-writes), whoever asks.
    """
    built = services()
    head = built.app.head_position()
    if not built.views.wait_for(head, built.settings.read_your_writes_timeout):
        current_app.logger.warning("Read models lag behind position %s", head)
    return built.views
