"""What the worker answers itself, before the app sees a request: problem+json.

gunicorn answers a request it cannot parse (400, 414, 431, ...) with an HTML page
of its own, and the worker's main loop refuses a head too long to wait for
(`web.framing.MAX_HEAD`). Both answers are here made like every other error of the
API: a complete HTTP/1.1 response with a problem+json body (`problem_reply`), whose
detail names the server's limits (`refusal_detail`). `ErrorPageCapture` stands in
for the client socket so that gunicorn's choice of status can be read back.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from gunicorn import util

from web.problems import PROBLEM_JSON

GUNICORN_PROBLEM_CODES = {
    400: "bad_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
    431: "request_header_fields_too_large", 500: "internal_error", 501: "not_implemented",
}
"""gunicorn's own error statuses (requests it cannot parse) -> problem codes."""


def problem_reply(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response: the problem+json body, and the connection closes."""
    code = GUNICORN_PROBLEM_CODES.get(status) or (
        "_".join(reason.lower().split()) or f"http_{status}")
    request_id = str(uuid.uuid4())
    body = json.dumps({
        "type": f"urn:smartscheduler:problem:{code}",
        "title": reason,
        "status": status,
        "detail": detail,
        "code": code,
        "requestId": request_id,
    }).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\n"
            f"Date: {util.http_date()}\r\n"
            "Connection: close\r\n"
            f"Content-Type: {PROBLEM_JSON}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"X-Request-Id: {request_id}\r\n"
            "Cache-Control: no-store\r\n"
            "\r\n")
    return head.encode("latin-1") + body


def refusal_detail(cfg: Any, status: int, exc: BaseException | None) -> str:
    """The problem's detail: the limit a 414 or 431 passed (gunicorn's config `cfg`),
    nothing of a server error, the parser's message otherwise."""
    if status == 414:
        return (f"The request line is longer than the {cfg.limit_request_line} "
                "bytes this server accepts.")
    if status == 431:
        return ("The request's header fields are more, or larger, than this server "
                f"accepts (at most {cfg.limit_request_fields} fields of "
                f"{cfg.limit_request_field_size} bytes each).")
    if status >= 500:
        return "The server could not handle this request."
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


class ErrorPageCapture:
    """Stands in for the client socket while gunicorn writes its HTML error page."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, _flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.data += data

    send = sendall

    def status_line(self) -> tuple[int, str] | None:
        """(status, reason) from "HTTP/1.1 414 URI Too Long"."""
        first = self.data.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if len(first) < 2 or not first[1].isdigit():
            return None
        return int(first[1]), first[2] if len(first) == 3 else ""
