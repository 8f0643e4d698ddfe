"""What the API accepts at all, checked before any view runs.

Whatever is accepted must survive every reader on every backend (the read
models on SQLite and PostgreSQL, the relay, SSE, the audit trail): so a body
is refused when it is too large, not JSON, nested too deep, or holds a string
that a reader cannot store (U+0000, which PostgreSQL text cannot hold, or an
unpaired surrogate, which UTF-8 cannot encode). Query strings are held to the
same rule, since their values reach SQL.
"""

from __future__ import annotations

import json
from typing import Any

from flask import g, request
from werkzeug.exceptions import RequestEntityTooLarge

from web.problems import Problem

MAX_BODY = 1024 * 1024
MAX_DEPTH = 32
"""Containers nested deeper than this are refused (400 invalid_json)."""

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def unstorable(text: str) -> str | None:
    """Why a reader could not hold `text`, or None when every reader can."""
    if "\x00" in text:
        return "Must not contain U+0000 (NUL)."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Must not contain an unpaired surrogate."
    return None


def invalid(field: str, message: str) -> Problem:
    return Problem(422, "validation_failed", "Validation failed",
                   f"{field}: {message}", errors={field: [message]})


def check_text(field: str, text: str | None) -> None:
    """Refuse (422) a stored header or claim that a reader could not hold."""
    if text is not None and (reason := unstorable(text)):
        raise invalid(field, reason)


def check_request() -> None:
    """Refuse what no view may see: unstorable query strings and bad bodies."""
    for name, values in request.args.lists():
        for value in (name, *values):
            if reason := unstorable(value):
                raise invalid(name if value != name else "query", reason)
    if request.method in BODY_METHODS:
        _check_body()


def _check_body() -> None:
    """Parse the body once, check it, and keep it for the views (`parsed_body`)."""
    g.body = None
    data = _body()
    if not data.strip():
        return
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _invalid_json() from None
    if not request.is_json:
        raise Problem(415, "unsupported_media_type", "Unsupported media type",
                      "Send the body as application/json.")
    _check_document(document)
    g.body = document


def parsed_body() -> Any:
    """The request's JSON body as checked by `check_request` (None when empty)."""
    return getattr(g, "body", None)


def _body() -> bytes:
    """The body, read once; over MAX_BODY, with or without Content-Length, a 413."""
    data = request.get_data(cache=True)
    # werkzeug cuts a chunked body at the limit: one byte more means too large.
    if (request.content_length is None and len(data) >= MAX_BODY
            and request.environ["wsgi.input"].read(1)):
        raise RequestEntityTooLarge()
    return data


def _invalid_json(detail: str = "The request body is not valid JSON.") -> Problem:
    return Problem(400, "invalid_json", "Invalid JSON", detail)


def _check_document(document: Any) -> None:
    """Depth and strings of a parsed body, walked without recursion."""
    pending: list[tuple[Any, str, int]] = [(document, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, str):
            if reason := unstorable(value):
                raise invalid(path or "body", reason)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise _invalid_json(f"The body is nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                if reason := unstorable(key):
                    raise invalid(path or "body", f"A field name: {reason}")
                pending.append((item, where, depth + 1))
        else:
            pending.extend((item, f"{path}[{index}]", depth + 1)
                           for index, item in enumerate(value))
