"""The real server under test: `smartscheduler serve` (gunicorn) in its own process.

`start_server` starts it on a free port and waits for /healthz, `stop` ends it
(SIGTERM, then SIGKILL to its process group): both through the launcher the
benchmarks use too, `smartscheduler.launch`. `Client` is one HTTP/1.1
connection with a bearer token.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from application.settings import Settings
from smartscheduler.launch import (
    HOST,
    NotReady,
    answers,
    launch,
    serve,
    service_env,
    smartscheduler,
    stop,
)
from web.auth import mint_token

__all__ = ["JOB", "JWT_SECRET", "STARTUP_TIMEOUT", "Client", "Reply", "Server",
           "start_server", "stop"]

JWT_SECRET = "e2e-secret-" + "s" * 40
STARTUP_TIMEOUT = 30.0

# A job with every field, as a dispatcher posts it.
JOB = {
    "type": "HVAC repair",
    "description": "No cooling on the second floor",
    "durationMinutes": 120,
    "priority": "High",
    "region": "North",
    "requiredSkills": ["hvac"],
    "location": {"address": "1 Main St", "latitude": 40.7, "longitude": -74.0},
    "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00+00:00"},
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Client:
    """One persistent HTTP/1.1 connection to the server, with a bearer token."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=30)
        self.token = token

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> Reply:
        sent = {"Accept": "application/json"}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        self.connection.request(method, path, body=payload, headers=sent)
        response = self.connection.getresponse()
        raw = response.read()
        received = {name.lower(): value for name, value in response.getheaders()}
        kind = received.get("content-type", "")
        parsed = json.loads(raw) if raw and "json" in kind else raw.decode(errors="replace")
        return Reply(response.status, received, parsed)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body, **kwargs)

    def close(self) -> None:
        self.connection.close()


@dataclass
class Server:
    host: str
    port: int
    database_url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    settings: Settings = field(default_factory=lambda: Settings(jwt_secret=JWT_SECRET))
    _clients: list[Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def token(self, role: str = "Dispatcher", sub: str | None = None) -> str:
        return mint_token(self.settings, roles=[role], sub=sub)

    def client(self, role: str | None = "Dispatcher") -> Client:
        """A new connection of its own, closed when the test ends."""
        client = Client(self.host, self.port, self.token(role) if role else None)
        self._clients.append(client)
        return client

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


def start_server(database_url: str, workdir: Path, *,
                 env: Mapping[str, str] | None = None, name: str = "server",
                 args: Sequence[str] = (), port: int | None = None) -> Server:
    """`python -m smartscheduler serve` on a free port; returns once /healthz answers.

    `env` adds SMARTSCHEDULER_* settings (Redis is off unless it names one);
    `name` names the log, `<workdir>/<name>.log`, so servers can share a workdir;
    `args` are more options of `serve` (`--workers 1`, `--threads 4`); `port`
    asks for that port instead of a free one (a server started again where a
    stopped one was, for the clients that were connected to it).
    """
    log_path = workdir / f"{name}.log"
    try:
        if port is None:
            launched = serve(database_url, JWT_SECRET, log_path, settings=env, args=args,
                             cwd=workdir, timeout=STARTUP_TIMEOUT)
        else:
            launched = launch(
                smartscheduler("serve", "--host", HOST, "--port", str(port), *args),
                log_path, env=service_env(database_url, JWT_SECRET, env), cwd=workdir,
                port=port, ready=answers("/healthz"), timeout=STARTUP_TIMEOUT)
    except NotReady as error:
        pytest.fail(str(error))
    return Server(HOST, launched.port, database_url, launched.log_path, launched.process)
