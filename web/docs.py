"""OpenAPI pieces: problem responses, command headers, offline docs assets."""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any

import swagger_ui_bundle
from flask import Flask, send_from_directory
from flask_smorest import Api, Blueprint
from webargs.flaskparser import FlaskParser, is_json_request

from web import inputs
from web.schemas import ProblemSchema

PROBLEM_CONTENT = "application/problem+json"

COMMAND_HEADERS: list[dict[str, Any]] = [
    {"in": "header", "name": "If-Match", "required": False,
     "description": 'The job version the command expects, as an ETag: "4". '
                    "412 precondition_failed when the job has moved on.",
     "schema": {"type": "string"}},
    {"in": "header", "name": "Idempotency-Key", "required": False,
     "description": "Retrying with the same key and body replays the first result "
                    "(Idempotent-Replayed: true); a different body is a 422. "
                    "1 to 255 visible ASCII characters (else a 422).",
     "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                "pattern": "^[\\x21-\\x7e]{1,255}$"}},
    {"in": "header", "name": "X-Request-Id", "required": False,
     "description": "Echoed back and recorded with the events the request causes.",
     "schema": {"type": "string", "maxLength": 200}},
]

JOB_HEADERS: dict[str, Any] = {
    "ETag": {"description": 'The job version: "<version>"', "schema": {"type": "string"}},
    "X-Request-Id": {"description": "The request id", "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "true when an earlier result was replayed",
                            "schema": {"type": "string"}},
}


class CheckedBodyParser(FlaskParser):  # type: ignore[misc]
    """webargs' parser, given the JSON body that `inputs.check_request` already
    parsed and checked, instead of parsing it a second time."""

    def _raw_load_json(self, req: Any) -> Any:
        body = inputs.parsed_body()
        if body is None or not is_json_request(req):
            return super()._raw_load_json(req)
        return body


class ApiBlueprint(Blueprint):
    """A Blueprint that documents problem responses in one line, and reads the body
    that was checked at the edge."""

    ARGUMENTS_PARSER = CheckedBodyParser()

    def problems(self, *statuses: int) -> Callable[[Any], Any]:
        def decorate(view: Any) -> Any:
            for status in statuses:
                view = self.alt_response(status, http.HTTPStatus(status).name)(view)
            return view

        return decorate


class ProblemApi(Api):
    """flask-smorest's Api with RFC 9457 problem responses in the docs.

    Errors themselves are handled by web.problems, so Api's own handler is not
    registered.
    """

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        pass

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            if status < 400:
                continue
            self.spec.components.response(status.name, {
                "description": status.phrase,
                "content": {PROBLEM_CONTENT: {"schema": ProblemSchema}},
            }, lazy=True)
        self.spec.components.response("DEFAULT_ERROR", {
            "description": "A problem (RFC 9457)",
            "content": {PROBLEM_CONTENT: {"schema": ProblemSchema}},
        }, lazy=True)

    def _register_pagination_header(self) -> None:
        self.spec.components.header("PAGINATION", {
            "description": 'JSON: {"total", "total_pages", "first_page", "last_page", '
                           '"page", "previous_page", "next_page"}',
            "schema": {"type": "string"},
        }, lazy=True)


def add_offline_docs(app: Flask) -> None:
    """Serve Swagger UI's assets from the installed package: /docs needs no internet."""
    root = swagger_ui_bundle.swagger_ui_path

    def asset(filename: str) -> Any:
        return send_from_directory(root, filename, max_age=86400)

    app.add_url_rule("/docs/assets/<path:filename>", "docs_assets", asset)
