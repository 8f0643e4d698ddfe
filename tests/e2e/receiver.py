"""A webhook receiver the tests run: a real HTTP server that verifies every
delivery with standardwebhooks' own verifier, and notes what it received.

`status` is what it answers (200 unless told), `hold` makes each request wait
that many seconds before the answer, `stop`/`start` take it down and up again
on the same port. Each received delivery is kept with its position, the
secrets that verified it and how many signatures it carried.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from smartscheduler.launch import HOST, free_port


@dataclass(frozen=True)
class Received:
    position: int
    webhook_id: str
    envelope: dict[str, Any]
    verified_by: tuple[str, ...]
    signatures: int
    at: float


class Receiver:
    def __init__(self, secrets: list[str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.secrets: list[str] = list(secrets or [])
        self.status = 200
        self.hold = 0.0
        self.received: list[Received] = []
        self.unverified: list[str] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver._note(body, dict(self.headers.items()))
                if receiver.hold:
                    time.sleep(receiver.hold)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _note(self, body: bytes, headers: dict[str, str]) -> None:
        verified = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified.append(secret)
            except WebhookVerificationError:
                pass
        with self._changed:
            if not verified:
                self.unverified.append(body.decode(errors="replace"))
            envelope = json.loads(body)
            self.received.append(Received(
                envelope["position"], headers.get("webhook-id", ""), envelope,
                tuple(verified), len(headers.get("webhook-signature", "").split()),
                time.monotonic()))
            self._changed.notify_all()

    def positions(self) -> list[int]:
        with self._changed:
            return [r.position for r in self.received]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Until `count` distinct positions arrived; what arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len({r.position for r in self.received}) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.received)} received, {count} expected"
                self._changed.wait(min(left, 0.2))
            return list(self.received)
