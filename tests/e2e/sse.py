"""An SSE client of the real server: GET /api/events over its own connection
(http.client), read line by line in a thread, with bounded waits for events."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.servers import Server

WAIT = 30.0


@dataclass
class Sse:
    id: str
    event: str
    data: dict[str, Any]
    lines: list[str]


class SseClient:
    """GET /api/events over its own connection, read line by line in a thread."""

    def __init__(self, server: Server, role: str = "Dispatcher", sub: str | None = None,
                 query: str = "", headers: dict[str, str] | None = None) -> None:
        self.connection = http.client.HTTPConnection(server.host, server.port, timeout=WAIT)
        self.connection.request("GET", f"/api/events{query}", headers={
            "Authorization": f"Bearer {server.token(role, sub)}",
            "Accept": "text/event-stream", **(headers or {})})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.content_type = self.response.getheader("Content-Type", "")
        self.events: list[Sse] = []
        self.comments: list[str] = []
        self.ended = False
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True, name="sse-client")
        if self.status == 200:
            self._thread.start()
        else:
            self.ended = True

    def wait_for(self, condition: Callable[[SseClient], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        with self._changed:
            while not condition(self):
                if self.ended or time.monotonic() > deadline:
                    pytest.fail(f"The stream never showed {what} (status {self.status}, "
                                f"ended: {self.ended}, error: {self.error!r}); received "
                                f"{[(e.id, e.event) for e in self.events]}")
                self._changed.wait(0.1)

    def wait_connected(self) -> SseClient:
        self.wait_for(lambda s: "connected" in s.comments, "its first line")
        return self

    def cancelled(self, job_id: str) -> Sse:
        def found(s: SseClient) -> bool:
            return any(e.event == "JobCancelled" and e.data["subject"] == job_id
                       for e in s.events)

        self.wait_for(found, f"JobCancelled of job {job_id}")
        return next(e for e in self.events
                    if e.event == "JobCancelled" and e.data["subject"] == job_id)

    def close(self) -> None:
        self._closing.set()
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(WAIT)
        self.response.close()
        self.connection.close()

    def _read(self) -> None:
        block: list[str] = []
        try:
            while not self._closing.is_set():
                raw = self.response.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                if line:
                    block.append(line)
                else:
                    self._take(block)
                    block = []
        except (OSError, ValueError, http.client.HTTPException) as error:
            if not self._closing.is_set():
                self.error = error
        finally:
            with self._changed:
                self.ended = True
                self._changed.notify_all()

    def _take(self, block: list[str]) -> None:
        with self._changed:
            values = {}
            for line in block:
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(": ")
                    values[name] = value
            if "data" in values:
                self.events.append(Sse(values["id"], values["event"],
                                       json.loads(values["data"]), block))
            self._changed.notify_all()
