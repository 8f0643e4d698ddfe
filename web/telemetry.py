"""Each request counted, timed and described, once its response is made.

`register(app)` adds the first hook of the app (the time a request arrives) and
one after every response: the request is counted by method, route and status,
timed by method and route, and a command (a POST, PUT, PATCH or DELETE of the
API) is counted by its name and outcome (`application.metrics`). The request's
own fields for its access line (request id, route, actor, job) are left in its
WSGI environ for the access log (`web.access_log`).

Labels stay few: the route is the URL rule's template (`/api/jobs/<job_id>`),
`<unmatched>` for any path no rule matches, and a method outside the usual ones
is OTHER, so that no client can make new series at will. The children of each
label set are kept, so a request costs two dictionary reads and three writes to
the metrics' memory.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, current_app, g, request

from application.metrics import METHODS, metrics
from web.access_log import ACCESS_FIELDS

UNMATCHED = "<unmatched>"
"""The route of a request no URL rule matches (a 404 or 405 by routing)."""

COMMAND_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

SHOWN = "smartscheduler.series_shown"
"""The app's extension set once `show_every_series` has run."""

_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_commands: dict[tuple[str, str], Any] = {}
_command_names: dict[tuple[str, str], str] = {}


def register(app: Flask) -> None:
    """Call first of the app's hooks, so that the time of arrival comes first."""
    app.before_request(_arrived)
    app.after_request(_answered)


def show_every_series(app: Flask) -> None:
    """Make the series a fresh server has yet to count, at 0, so that every metric
    is shown from the first scrape (a labelled metric shows no sample before its
    labels are first used; in multiprocess mode a series made is written, at 0, to
    this process's files): every command with outcome `ok`, and the scrape's own
    request (counted once its response is made). Once per app."""
    if app.extensions.get(SHOWN):
        return
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            for method in sorted((rule.methods or set()) & COMMAND_METHODS):
                _command_of(_command_name(rule.endpoint, method, app), "ok")
    _series_of("GET", "/metrics", 200)
    app.extensions[SHOWN] = True


def _arrived() -> None:
    g.arrived = time.perf_counter()


def _answered(response: Response) -> Response:
    rule = request.url_rule
    route = rule.rule if rule is not None else UNMATCHED
    method = request.method if request.method in METHODS else "OTHER"
    requests, duration = _series_of(method, route, response.status_code)
    requests.inc()
    arrived = g.get("arrived")
    if arrived is not None:
        duration.observe(time.perf_counter() - arrived)
    if rule is not None and method in COMMAND_METHODS and route.startswith("/api/"):
        _command_of(_command_name(rule.endpoint, method), _outcome(response)).inc()
    actor = g.get("actor")
    request.environ[ACCESS_FIELDS] = {
        "requestId": g.get("request_id"), "route": route,
        "actorSub": getattr(actor, "sub", None), "jobId": _job_id()}
    return response


def _outcome(response: Response) -> str:
    """ok, replayed, or the problem's code (`web.problems` notes it)."""
    if response.status_code < 400:
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        return "replayed" if replayed else "ok"
    return str(g.get("problem_code") or response.status_code)


def _job_id() -> str | None:
    """The job the request is about: in its path, or the one a command made."""
    found = (request.view_args or {}).get("job_id") or g.get("job_id")
    return str(found) if found is not None else None


def _series_of(method: str, route: str, status: int) -> tuple[Any, Any]:
    key = (method, route, status)
    found = _series.get(key)
    if found is None:
        made = metrics()
        found = _series[key] = (
            made.http_requests.labels(method=method, route=route, status=str(status)),
            made.http_request_duration.labels(method=method, route=route))
    return found


def _command_of(command: str, outcome: str) -> Any:
    key = (command, outcome)
    found = _commands.get(key)
    if found is None:
        found = _commands[key] = metrics().commands.labels(command=command,
                                                          outcome=outcome)
    return found


def _command_name(endpoint: str, method: str, app: Flask | None = None) -> str:
    """The command's OpenAPI operationId (`cancelJob`), else its endpoint's name."""
    key = (endpoint, method)
    name = _command_names.get(key)
    if name is None:
        view = (app or current_app).view_functions.get(endpoint)
        handler = getattr(getattr(view, "view_class", None), method.lower(), view)
        documented = getattr(handler, "_apidoc", {}).get("manual_doc", {})
        name = _command_names[key] = documented.get("operationId") or endpoint
    return name
